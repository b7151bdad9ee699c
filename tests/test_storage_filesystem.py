"""Tests for mrtrain.storage.filesystem, mrtrain.storage.local_fs and mrtrain.storage.hdfs_fs."""

import os
import subprocess
import sys

import hdfs
import pytest
import requests

from mrtrain.storage import hdfs_fs
from mrtrain.storage.filesystem import basename, get_filesystem, join, parent, split_scheme, temp_sibling
from mrtrain.storage.local_fs import LocalFileSystem, local_path


@pytest.fixture(params=["plain", "file"])
def root(request, tmp_path):
    """A temporary directory as a plain path and as a file:// URI."""
    return str(tmp_path) if request.param == "plain" else f"file://{tmp_path}"


def test_write_read_round_trip_creates_parents(root):
    fs = get_filesystem(root)
    uri = join(root, "a", "b", "x.bin")
    fs.write_bytes(uri, b"\x00payload\xff")
    assert fs.read_bytes(uri) == b"\x00payload\xff"
    assert fs.size(uri) == 9
    assert fs.exists(uri) and not fs.isdir(uri)
    assert fs.isdir(join(root, "a", "b"))
    assert fs.listdir(join(root, "a", "b")) == ["x.bin"]


def test_write_replaces_and_leaves_no_temporary(root):
    fs = get_filesystem(root)
    uri = join(root, "x.bin")
    fs.write_bytes(uri, b"old")
    fs.write_bytes(uri, b"new")
    assert fs.read_bytes(uri) == b"new"
    assert fs.listdir(root) == ["x.bin"]


def test_failed_write_keeps_old_content(tmp_path, monkeypatch):
    fs = LocalFileSystem()
    uri = str(tmp_path / "x.bin")
    fs.write_bytes(uri, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        fs.write_bytes(uri, b"new")
    assert fs.read_bytes(uri) == b"old"
    assert os.listdir(tmp_path) == ["x.bin"]


def test_listdir_is_sorted(root):
    fs = get_filesystem(root)
    for name in ["c", "a", "b"]:
        fs.write_bytes(join(root, name), b"")
    assert fs.listdir(root) == ["a", "b", "c"]


@pytest.mark.parametrize("method", ["read_bytes", "listdir", "size", "delete"])
def test_missing_path_raises_file_not_found_naming_it(root, method):
    fs = get_filesystem(root)
    with pytest.raises(FileNotFoundError, match="nope"):
        getattr(fs, method)(join(root, "nope"))


def test_delete_directory_needs_recursive(root):
    fs = get_filesystem(root)
    fs.write_bytes(join(root, "d", "f"), b"1")
    with pytest.raises(OSError, match="not empty"):
        fs.delete(join(root, "d"))
    fs.delete(join(root, "d"), recursive=True)
    assert not fs.exists(join(root, "d"))


def test_rename_refuses_existing_destination(root):
    fs = get_filesystem(root)
    fs.write_bytes(join(root, "src"), b"1")
    fs.write_bytes(join(root, "dst"), b"2")
    with pytest.raises(FileExistsError, match="dst"):
        fs.rename(join(root, "src"), join(root, "dst"))
    fs.rename(join(root, "src"), join(root, "new"))
    assert fs.listdir(root) == ["dst", "new"]
    with pytest.raises(FileNotFoundError, match="src"):
        fs.rename(join(root, "src"), join(root, "other"))


def test_rename_directory(root):
    fs = get_filesystem(root)
    fs.write_bytes(join(root, "d", "f"), b"1")
    fs.rename(join(root, "d"), join(root, "e"))
    assert fs.read_bytes(join(root, "e", "f")) == b"1"


def test_makedirs_is_idempotent(root):
    fs = get_filesystem(root)
    fs.makedirs(join(root, "x", "y"))
    fs.makedirs(join(root, "x", "y"))
    assert fs.isdir(join(root, "x", "y"))


@pytest.mark.parametrize(
    ("uri", "names", "expected"),
    [
        ("/a/b", ("c", "d"), "/a/b/c/d"),
        ("hdfs://nn:8020/a", ("b",), "hdfs://nn:8020/a/b"),
        ("hdfs://nn:8020/a/", ("b",), "hdfs://nn:8020/a/b"),
        ("file:///a", ("b",), "file:///a/b"),
    ],
)
def test_join(uri, names, expected):
    assert join(uri, *names) == expected


@pytest.mark.parametrize(
    ("uri", "expected_parent", "expected_name"),
    [("/a/b/c", "/a/b", "c"), ("hdfs://nn:8020/a/b/", "hdfs://nn:8020/a", "b"), ("c", ".", "c")],
)
def test_parent_and_basename(uri, expected_parent, expected_name):
    assert parent(uri) == expected_parent
    assert basename(uri) == expected_name


def test_temp_sibling_is_hidden_unique_and_next_to_target():
    first, second = temp_sibling("hdfs://nn/a/b.parquet"), temp_sibling("hdfs://nn/a/b.parquet")
    assert first != second
    assert first.startswith("hdfs://nn/a/.b.parquet.tmp-")


@pytest.mark.parametrize("uri", ["s3://bucket/x", "http://host/x"])
def test_unsupported_scheme(uri):
    with pytest.raises(ValueError, match="unsupported URI scheme"):
        split_scheme(uri)


@pytest.mark.parametrize("uri", ["file://otherhost/x", "hdfs://nn/x"])
def test_local_path_refuses_remote(uri):
    with pytest.raises(ValueError, match=uri):
        local_path(uri)


@pytest.fixture
def hadoop_env(monkeypatch, tmp_path):
    """Clear the environment variables that configure WebHDFS."""
    for name in ["MRTRAIN_WEBHDFS_URL", "HADOOP_CONF_DIR", "HADOOP_HOME", "MRTRAIN_HDFS_USER",
                 "HADOOP_USER_NAME"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _write_site(directory, address):
    directory.mkdir(exist_ok=True)
    (directory / "hdfs-site.xml").write_text(
        "<configuration><property><name>dfs.namenode.http-address</name>"
        f"<value>{address}</value></property></configuration>"
    )


def test_webhdfs_url_from_environment(hadoop_env):
    hadoop_env.setenv("MRTRAIN_WEBHDFS_URL", "http://nn:9870/")
    assert hdfs_fs.webhdfs_url() == "http://nn:9870"


@pytest.mark.parametrize(
    ("address", "uri", "expected"),
    [
        ("nn.example:9870", None, "http://nn.example:9870"),
        ("0.0.0.0:9870", "hdfs://host1:8020/x", "http://host1:9870"),
        ("0.0.0.0:9870", None, "http://127.0.0.1:9870"),
    ],
)
def test_webhdfs_url_from_hdfs_site(hadoop_env, tmp_path, address, uri, expected):
    _write_site(tmp_path / "conf", address)
    hadoop_env.setenv("HADOOP_CONF_DIR", str(tmp_path / "conf"))
    assert hdfs_fs.webhdfs_url(uri) == expected


def test_webhdfs_url_missing(hadoop_env):
    with pytest.raises(ValueError, match="MRTRAIN_WEBHDFS_URL"):
        hdfs_fs.webhdfs_url()


def test_hdfs_user_order(hadoop_env):
    hadoop_env.setenv("HADOOP_USER_NAME", "hadoopuser")
    assert hdfs_fs.hdfs_user() == "hadoopuser"
    hadoop_env.setenv("MRTRAIN_HDFS_USER", "mrtrainuser")
    assert hdfs_fs.hdfs_user() == "mrtrainuser"


def test_client_is_cached_per_url_and_user(hadoop_env):
    hadoop_env.setenv("MRTRAIN_WEBHDFS_URL", "http://cache-test:9870")
    hadoop_env.setenv("MRTRAIN_HDFS_USER", "a")
    first = get_filesystem("hdfs://nn/x")
    assert get_filesystem("hdfs://nn/y") is first
    hadoop_env.setenv("MRTRAIN_HDFS_USER", "b")
    assert get_filesystem("hdfs://nn/x") is not first
    client = first.client
    assert isinstance(client, hdfs.InsecureClient)
    assert (client.url, client._session.params["user.name"]) == ("http://cache-test:9870", "a")


def test_the_cli_imports_no_webhdfs_client_until_hdfs_is_used():
    """The ``hdfs`` package and ``requests`` (about 0.2 s of imports) load only when HDFS is used, not with
    the CLI that every local command starts."""
    code = ("import sys, mrtrain.cli, mrtrain.allreduce, mrtrain.launcher; "
            "print(sorted({'hdfs', 'requests'} & set(sys.modules)))")
    found = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert found.strip() == "[]"


class FlakyClient:
    """A stand-in WebHDFS client whose ``status`` fails ``failures`` times, then succeeds."""

    def __init__(self, failures, error=None):
        self.failures = failures
        self.calls = 0
        self.error = error

    def status(self, path, strict=True):
        self.calls += 1
        if self.error is not None:
            raise self.error
        if self.calls <= self.failures:
            raise requests.exceptions.ConnectionError("connection refused")
        return {"type": "FILE", "length": 7, "modificationTime": 1700000000000}


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(hdfs_fs, "BACKOFF_SECONDS", 0.0)


def test_transient_errors_are_retried(no_backoff, caplog):
    client = FlakyClient(failures=hdfs_fs.ATTEMPTS - 1)
    fs = hdfs_fs.HdfsFileSystem(lambda: client, "http://nn:9870")
    assert fs.size("hdfs://nn/data/x") == 7
    assert client.calls == hdfs_fs.ATTEMPTS
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == hdfs_fs.ATTEMPTS - 1


def test_retries_are_bounded(no_backoff):
    client = FlakyClient(failures=100)
    fs = hdfs_fs.HdfsFileSystem(lambda: client, "http://nn:9870")
    with pytest.raises(ConnectionError, match=r"hdfs://nn/data/x: status failed.*unreachable"):
        fs.exists("hdfs://nn/data/x")
    assert client.calls == hdfs_fs.ATTEMPTS


def test_remote_file_not_found_maps_to_file_not_found(no_backoff):
    error = hdfs.HdfsError("File does not exist: /x", exception="FileNotFoundException")
    fs = hdfs_fs.HdfsFileSystem(lambda: FlakyClient(0, error), "http://nn:9870")
    with pytest.raises(FileNotFoundError, match="hdfs://nn/x"):
        fs.size("hdfs://nn/x")


def test_other_remote_errors_name_the_uri(no_backoff):
    error = hdfs.HdfsError("Permission denied", exception="AccessControlException")
    fs = hdfs_fs.HdfsFileSystem(lambda: FlakyClient(0, error), "http://nn:9870")
    with pytest.raises(OSError, match="hdfs://nn/x: status failed: Permission denied"):
        fs.exists("hdfs://nn/x")


@pytest.mark.hadoop
def test_hdfs_round_trip(hadoop_cluster):
    base = join(os.environ["MRTRAIN_HDFS_URL"], "tmp", "mrtrain-test-fs", os.urandom(4).hex())
    fs = get_filesystem(base)
    try:
        fs.write_bytes(join(base, "a", "x.bin"), b"one")
        fs.write_bytes(join(base, "a", "x.bin"), b"two")
        assert fs.read_bytes(join(base, "a", "x.bin")) == b"two"
        assert fs.size(join(base, "a", "x.bin")) == 3
        assert fs.listdir(join(base, "a")) == ["x.bin"]
        assert fs.isdir(join(base, "a")) and not fs.isdir(join(base, "a", "x.bin"))
        with pytest.raises(FileExistsError, match="x.bin"):
            fs.rename(join(base, "a"), join(base, "a", "x.bin"))
        fs.rename(join(base, "a"), join(base, "b"))
        assert fs.listdir(base) == ["b"]
        with pytest.raises(FileNotFoundError, match="missing"):
            fs.read_bytes(join(base, "missing"))
    finally:
        fs.delete(base, recursive=True)
    assert not fs.exists(base)


def test_stat_changes_when_a_file_is_replaced_and_refuses_special_files(tmp_path):
    fs = get_filesystem(str(tmp_path))
    uri = str(tmp_path / "x.bin")
    fs.write_bytes(uri, b"abc")
    before = fs.stat(uri)
    assert before.size == 3
    fs.write_bytes(uri, b"xyz")
    assert fs.stat(uri) != before
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="regular file was expected"):
        fs.stat(str(fifo))
    with pytest.raises(IsADirectoryError):
        fs.stat(str(tmp_path))
