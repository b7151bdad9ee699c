"""mrjob's filesystem interface over WebHDFS, against the real HDFS: what mrjob's hadoop runner calls."""

import uuid

import pytest

from mrtrain.mrjob_fs import WebHdfsFilesystem, webhdfs_first
from mrtrain.storage.filesystem import get_filesystem

pytestmark = pytest.mark.hadoop


@pytest.fixture
def base(hadoop_cluster):
    uri = f"{hadoop_cluster['MRTRAIN_HDFS_URL']}/user/{hadoop_cluster['MRTRAIN_HDFS_USER']}/" \
          f"mrtrain-tests/mrjob-fs-{uuid.uuid4().hex[:8]}"
    yield uri
    get_filesystem(uri).delete(uri, recursive=True)


def test_mkdir_put_ls_cat_du_rm_with_globs(base, tmp_path):
    fs = WebHdfsFilesystem()
    assert fs.can_handle_path(base) and not fs.can_handle_path(str(tmp_path))
    assert not fs.exists(base)
    fs.mkdir(f"{base}/out/logs")
    for name, data in (("part-00000", b"a\n"), ("part-00001", b"bb\n"), ("_SUCCESS", b"")):
        src = tmp_path / name
        src.write_bytes(data)
        fs.put(str(src), f"{base}/out/{name}")
    (tmp_path / "log").write_bytes(b"log line\n")
    fs.put(str(tmp_path / "log"), f"{base}/out/logs/syslog")

    assert list(fs.ls(f"{base}/out")) == [
        f"{base}/out/_SUCCESS", f"{base}/out/logs/syslog", f"{base}/out/part-00000", f"{base}/out/part-00001",
    ]
    assert list(fs.ls(f"{base}/out/part-*")) == [f"{base}/out/part-00000", f"{base}/out/part-00001"]
    assert list(fs.ls(f"{base}/*/logs")) == [f"{base}/out/logs/syslog"]
    assert b"".join(fs.cat(f"{base}/out/part-*")) == b"a\nbb\n"
    assert fs.du(f"{base}/out") == 2 + 3 + 9
    assert fs.exists(f"{base}/out/part-0000[01]") and not fs.exists(f"{base}/out/part-9*")

    fs.touchz(f"{base}/out/_SUCCESS")
    with pytest.raises(OSError, match="already exists"):
        fs.touchz(f"{base}/out/part-00000")
    fs.rm(f"{base}/out/part-*")
    assert list(fs.ls(f"{base}/out")) == [f"{base}/out/_SUCCESS", f"{base}/out/logs/syslog"]
    fs.rm(f"{base}/out")
    assert not fs.exists(f"{base}/out")
    fs.rm(f"{base}/nothing-*")  # no match: nothing to do, like `hadoop fs -rm -f`


def test_composite_sends_hdfs_to_webhdfs_and_local_paths_to_disk(base, tmp_path):
    class NoHadoop:
        def can_handle_path(self, path):  # like mrjob's HadoopFilesystem: any URI
            return "://" in path

        def __getattr__(self, name):
            raise AssertionError(f"the hadoop command was used for {name}")

    composite = webhdfs_first(NoHadoop())
    composite.mkdir(f"{base}/d")
    assert composite.exists(f"{base}/d")
    (tmp_path / "f").write_text("x")
    assert composite.exists(str(tmp_path / "f"))


def test_host_less_uris_and_compressed_files(base, tmp_path):
    """``hdfs:///path`` (the default file system's host) globs to ``hdfs:///...`` URIs, and ``.gz``
    output is decompressed, as with ``hadoop fs``."""
    import gzip

    fs = WebHdfsFilesystem()
    host_less = "hdfs:///" + base.split("/", 3)[3]  # hdfs://host:port/user/... -> hdfs:///user/...
    (tmp_path / "a.gz").write_bytes(gzip.compress(b"line 1\nline 2\n"))
    fs.mkdir(f"{host_less}/out")
    fs.put(str(tmp_path / "a.gz"), f"{host_less}/out/part-00000.gz")
    assert list(fs.ls(f"{host_less}/ou*/part-*")) == [f"{host_less}/out/part-00000.gz"]
    assert b"".join(fs.cat(f"{host_less}/out/part-*")) == b"line 1\nline 2\n"
