"""Hostile and unlucky input: reads bounded to regular files of a known size, dense allocations bounded
before they happen, every manifest field checked, manifest facts checked against the partitions, wide
CSV files, and partition settings validated before anything is read."""

import contextlib
import hashlib
import io
import json
import os
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mrtrain.storage import dataset as dataset_module
from mrtrain.storage import manifest as manifest_module
from mrtrain.storage import partition_read, partition_write
from mrtrain.storage.dataset import (
    MAX_MANIFEST_BYTES,
    Dataset,
    read_partition,
    write_dataset,
)
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import FileStat, FileTooLargeError
from mrtrain.storage.hdfs_fs import HdfsFileSystem
from mrtrain.storage.ingest import ingest
from mrtrain.storage.local_fs import LOCAL
from tests.command import run, tree
from tests.datasets import edit_manifest


def small_dataset(path, partitions=2, weights=False):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 3))
    y = (rng.random(10) > 0.5).astype(float)
    w = rng.random(10) + 0.5 if weights else None
    write_dataset(str(path), X, y, w, partitions=partitions)
    return str(path)


def replace_partition(data, index, table):
    """Write ``table`` as partition ``index`` and make the manifest agree (bytes, sha256, checksum)."""
    path = Path(data) / f"part-{index:05d}.parquet"
    pq.write_table(table, path)
    content = path.read_bytes()

    def edit(manifest):
        manifest["partitions"][index].update(bytes=len(content), sha256=hashlib.sha256(content).hexdigest())

    edit_manifest(data, edit)
    return str(path)


# ---- 1. reads: regular files only, optionally capped -------------------------------------------------

@contextlib.contextmanager
def fifo_reader(path):
    """Call ``LOCAL.read_bytes`` on a FIFO in a thread; yield the thread's outcome after up to 5 s.

    A reader blocked in the FIFO's open is released on the way out, so a failing test cannot hang.
    """
    os.mkfifo(path)
    outcome = {}

    def target():
        try:
            outcome["data"] = LOCAL.read_bytes(str(path))
        except OSError as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(5)
    try:
        yield outcome
    finally:
        if thread.is_alive():
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(5)


def test_read_bytes_refuses_a_fifo_without_blocking(tmp_path):
    with fifo_reader(tmp_path / "fifo") as outcome:
        assert "error" in outcome, "read_bytes blocked on a FIFO"
        assert str(outcome["error"]) == f"{tmp_path / 'fifo'}: expected a regular file, found a FIFO"


def test_read_bytes_refuses_a_device_and_a_directory(tmp_path):
    with pytest.raises(OSError, match=r"^/dev/zero: expected a regular file, found a character device$"):
        LOCAL.read_bytes("/dev/zero")
    with pytest.raises(IsADirectoryError):
        LOCAL.read_bytes(str(tmp_path))


def test_read_bytes_max_bytes(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    assert LOCAL.read_bytes(str(path), max_bytes=10) == b"0123456789"
    assert LOCAL.read_bytes(f"file://{path}", max_bytes=10) == b"0123456789"
    with pytest.raises(FileTooLargeError, match=rf"^{path}: expected a file of at most 9 bytes, found 10 "
                                                rf"bytes$"):
        LOCAL.read_bytes(str(path), max_bytes=9)
    with pytest.raises(DataError, match="at most 0 bytes"):
        LOCAL.read_bytes(str(path), max_bytes=0)
    with pytest.raises(OSError, match="at most 0 bytes"):
        LOCAL.read_bytes(str(path), max_bytes=0)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match=rf"The 'max_bytes' parameter of read_bytes must be an int >= 0 "
                                             rf"or None. Got {bad!r} instead."):
            LOCAL.read_bytes(str(path), max_bytes=bad)


class FakeWebHdfs:
    """The two calls of ``hdfs.Client`` that ``HdfsFileSystem.read_bytes`` makes, over a dict."""

    def __init__(self, files):
        self.files = files
        self.reads = []

    def status(self, path, strict=True):
        if path not in self.files:
            return None
        content = self.files[path]
        if content is None:
            return {"type": "DIRECTORY", "length": 0, "modificationTime": 1}
        return {"type": "FILE", "length": len(content), "modificationTime": 1}

    @contextlib.contextmanager
    def read(self, path, length=None):
        self.reads.append((path, length))
        yield io.BytesIO(self.files[path][:length])


def test_hdfs_read_bytes_checks_the_status_before_reading():
    client = FakeWebHdfs({"/d/f": b"0123456789", "/d": None})
    fs = HdfsFileSystem(lambda: client, "http://nn:9870")
    assert fs.read_bytes("hdfs://nn/d/f") == b"0123456789"
    assert fs.read_bytes("hdfs://nn/d/f", max_bytes=10) == b"0123456789"
    assert client.reads == [("/d/f", None), ("/d/f", 11)]
    with pytest.raises(FileTooLargeError,
                       match=r"^hdfs://nn/d/f: expected a file of at most 4 bytes, found 10 bytes$"):
        fs.read_bytes("hdfs://nn/d/f", max_bytes=4)
    with pytest.raises(IsADirectoryError):
        fs.read_bytes("hdfs://nn/d")
    with pytest.raises(FileNotFoundError):
        fs.read_bytes("hdfs://nn/d/missing")
    assert len(client.reads) == 2
    assert fs.stat("hdfs://nn/d/f") == FileStat(10, 1_000_000, 1_000_000)


def fifo_call(path, fn):
    """Call ``fn()`` in a thread while ``path`` is a FIFO; return its exception, or fail after 5 s.

    A call blocked in the FIFO's open is released afterwards, so a failing test cannot hang.
    """
    outcome = {}

    def target():
        try:
            fn()
        except Exception as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail(f"blocked on the FIFO {path}")
    return outcome.get("error")


def test_a_fifo_in_place_of_the_manifest_is_refused_without_blocking(tmp_path):
    data = small_dataset(tmp_path / "d")
    manifest = Path(data) / "_dataset.json"
    manifest.unlink()
    os.mkfifo(manifest)
    error = fifo_call(manifest, lambda: Dataset.open(data))
    assert isinstance(error, OSError) and str(error) == f"{manifest}: expected a regular file, found a FIFO"


def test_a_manifest_over_the_cap_is_refused_unread(tmp_path):
    data = small_dataset(tmp_path / "d")
    manifest = Path(data) / "_dataset.json"
    manifest.write_bytes(b" " * (MAX_MANIFEST_BYTES + 1))
    with pytest.raises(DataError, match=rf"^{manifest}: expected a file of at most {MAX_MANIFEST_BYTES} "
                                        rf"bytes, found {MAX_MANIFEST_BYTES + 1} bytes$"):
        Dataset.open(data)


@pytest.mark.parametrize(("source", "message"), [
    ("1 1:0.5 10000000:1\n0 1:0.2\n", "line 1: expected an index <= 1048576 (MAX_FEATURES, the most "
                                      "dense features), found '10000000:1'"),
    ("1 1:0.5\n0 2147483648:1\n", "line 2: expected an index <= 1048576 (MAX_FEATURES, the most dense "
                                  "features), found '2147483648:1'"),
    ("1 1048576:1\n" * 300, "line 257: expected at most 268435456 dense values (MAX_DENSE_CELLS, rows x "
                            "features), found 257 rows x 1048576 features; the dimension comes from "
                            "index 1048576 on line 1; if that is a mistake, pass --n-features"),
])
def test_libsvm_dimensions_are_bounded_before_allocating(tmp_path, capsys, source, message):
    (tmp_path / "x.libsvm").write_text(source)
    status, out, err = run(capsys, "ingest", str(tmp_path / "x.libsvm"), str(tmp_path / "d"), "--dense")
    assert (status, out, err) == (2, "", [f"mrtrain: error: {tmp_path / 'x.libsvm'}: {message}"])
    assert tree(tmp_path) == ["x.libsvm"]


def test_n_features_over_the_limit_is_refused_before_reading(tmp_path):
    with pytest.raises(ValueError, match=r"The 'n_features' parameter must be an int in \[1, 1048576\] "
                                         r"\(MAX_FEATURES\) or None. Got 2147483648 instead."):
        ingest(tmp_path / "missing.libsvm", tmp_path / "d", n_features=2**31, dense=True)


def test_a_device_source_is_refused(tmp_path, capsys):
    status, out, err = run(capsys, "ingest", "/dev/zero", str(tmp_path / "d"), "--format", "csv")
    assert (status, out, err) == (2, "", ["mrtrain: error: /dev/zero: expected a regular file, found a "
                                          "character device"])
    assert tree(tmp_path) == []


@pytest.fixture
def small_limits(monkeypatch):
    """Lower MAX_DENSE_CELLS to 11 and MAX_FEATURES to 5 wherever they are read."""
    from mrtrain.storage import ingest as ingest_module

    set_limit(monkeypatch, "MAX_DENSE_CELLS", 11, ingest_module)
    set_limit(monkeypatch, "MAX_FEATURES", 5, ingest_module)


def set_limit(monkeypatch, name, value, *more_modules):
    """Set the dataset limit ``name`` to ``value`` in every storage module that reads it."""
    modules = [module for module in (dataset_module, manifest_module, partition_read, partition_write,
                                     *more_modules) if hasattr(module, name)]
    assert manifest_module in modules
    for module in modules:
        monkeypatch.setattr(module, name, value)


def write_source(path, fmt, n, d):
    X = np.arange(n * d, dtype=float).reshape(n, d)
    y = np.arange(n, dtype=float) % 2
    if fmt == "csv":
        lines = [",".join([f"x{j}" for j in range(d)] + ["label"])]
        lines += [",".join(str(v) for v in [*row, label]) for row, label in zip(X, y, strict=True)]
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "libsvm":
        path.write_text("".join(f"{label} " + " ".join(f"{j + 1}:{v + 1}" for j, v in enumerate(row)) + "\n"
                                for row, label in zip(X, y, strict=True)))
    elif fmt == "parquet":
        pq.write_table(pa.table({**{f"x{j}": X[:, j] for j in range(d)}, "label": y}), path)
    else:
        np.savez_compressed(path, X=X, y=y)


@pytest.mark.parametrize("fmt", ["csv", "libsvm", "parquet", "npz"])
def test_every_source_format_is_bounded_in_dense_values(tmp_path, small_limits, fmt):
    src = tmp_path / f"s.{fmt}"
    write_source(src, fmt, 4, 3)
    where = f"{src}: line 4" if fmt == "libsvm" else str(src)
    with pytest.raises(DataError, match=rf"^{where}: expected at most 11 dense values \(MAX_DENSE_CELLS, "
                                        rf"rows x features\), found 4 rows x 3 features"):
        ingest(src, tmp_path / "d", dense=fmt == "libsvm")
    write_source(src, fmt, 3, 3)
    assert ingest(src, tmp_path / "d", dense=fmt == "libsvm").n_rows == 3


@pytest.mark.parametrize("fmt", ["csv", "parquet", "npz"])
def test_every_source_format_is_bounded_in_features(tmp_path, small_limits, fmt):
    src = tmp_path / f"s.{fmt}"
    write_source(src, fmt, 1, 6)
    with pytest.raises(DataError, match=rf"^{src}: .*expected at most 5 .*\(MAX_FEATURES\), found 6$"):
        ingest(src, tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_write_dataset_is_bounded(tmp_path, small_limits):
    with pytest.raises(DataError, match=r"X: expected at most 5 columns \(MAX_FEATURES\), found 6"):
        write_dataset(str(tmp_path / "d"), np.zeros((1, 6)), np.zeros(1))
    with pytest.raises(ValueError, match=r"The 'partitions' parameter must be at least 2 for 4 rows, so "
                                         r"that a partition holds at most 11 values \(MAX_DENSE_CELLS\). "
                                         r"Got 1 instead."):
        write_dataset(str(tmp_path / "d"), np.zeros((4, 3)), np.zeros(4), partitions=1)
    ds = write_dataset(str(tmp_path / "d"), np.zeros((4, 3)), np.zeros(4))
    assert [p.rows for p in ds.partitions] == [2, 2]
    assert not Path(tmp_path / "e").exists()


def test_the_manifest_does_not_grow_with_the_dimension(tmp_path):
    src = tmp_path / "x.libsvm"
    src.write_text("1 1:0.5 200000:1\n0 1:0.2\n")
    ds = ingest(src, tmp_path / "d")
    manifest = tmp_path / "d" / "_dataset.json"
    assert ds.n_features == 200_000 and manifest.stat().st_size < 2000
    assert "feature_names" not in json.loads(manifest.read_text())
    opened = Dataset.open(str(tmp_path / "d"))
    assert opened.feature_names[:2] == ["f0", "f1"] and len(opened.feature_names) == 200_000
    X, y, _ = opened.read_all()
    assert X.shape == (2, 200_000) and X[0, 199_999] == 1 and X[1, 0] == 0.2
    edit_manifest(opened.uri, lambda m: m.update(feature_names=[f"f{j}" for j in range(200_000)]))
    assert Dataset.open(opened.uri).feature_names[-1] == "f199999"
    named = write_dataset(str(tmp_path / "n"), np.zeros((2, 2)), np.zeros(2), feature_names=["a", "b"])
    assert Dataset.open(named.uri).feature_names == ["a", "b"]


# ---- 2. every manifest field checked -----------------------------------------------------------------

def test_deeply_nested_manifest_json(tmp_path):
    data = small_dataset(tmp_path / "d")
    (Path(data) / "_dataset.json").write_text("[" * 200_000)
    with pytest.raises(DataError, match=r"_dataset.json: not valid JSON: nested too deeply$"):
        Dataset.open(data)


def test_non_finite_json_constants_in_the_manifest(tmp_path):
    data = small_dataset(tmp_path / "d")
    path = Path(data) / "_dataset.json"
    path.write_text(path.read_text().replace('"n_rows": 10', '"n_rows": NaN'))
    with pytest.raises(DataError, match=r"_dataset.json: not valid JSON: NaN is not a JSON number"):
        Dataset.open(data)


def set_partition(index, **fields):
    return lambda m: m["partitions"][index].update(fields)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m["label"].update(classes=[None, 1]),
     "label.classes[0]: expected a finite integer-valued number, found None"),
    (lambda m: m["label"].update(classes=[1.0, 0.0]),
     "label.classes[1]: expected a label greater than the previous one 1.0, found 0.0"),
    (lambda m: m["label"].update(classes=[10**400]),
     "label.classes[0]: expected a finite integer-valued number, found 10000"),
    (lambda m: m["label"].update(classes=[0.5]), "label.classes[0]: expected a finite integer-valued number, "
                                                 "found 0.5"),
    (lambda m: m["label"].update(classes=[True]), "label.classes[0]: expected a finite integer-valued "
                                                  "number, found True"),
    (lambda m: m["label"].update(classes=list(range(1001))),
     "label.classes: expected null or a list of 1 to 1000 labels, found [0, 1, 2,"),
    (lambda m: m["label"].update(classes="01"), "label.classes: expected null or a list of 1 to 1000 labels, "
                                                "found '01'"),
    (lambda m: m["label"].update(name=["y"]), "label.name: expected a string, found ['y']"),
    (lambda m: m["label"].update(extra=1), "label: expected only the keys ['absent', 'class_names', "
                                           "'classes', 'name'], found also ['extra']"),
    (lambda m: m.update(n_features="3"), "n_features: expected an int in [1, 1048576] (MAX_FEATURES), "
                                         "found '3'"),
    (lambda m: m.update(n_features=2**40), "n_features: expected an int in [1, 1048576] (MAX_FEATURES), "
                                           "found 1099511627776"),
    (lambda m: m.update(version=True), "version: expected 1, found True"),
    (lambda m: m.update(feature_names=["a", "a", "b"]),
     "feature_names: expected a list of 3 distinct strings"),
    (lambda m: m.update(extra={}), "expected only the keys"),
    (lambda m: m.update(n_rows=10.0), "n_rows: expected the partitions' total 10, found 10.0"),
    (lambda m: m.update(partitions={}), "partitions: expected a list of 1 to 10000 partitions "
                                        "(MAX_PARTITIONS), found {}"),
    (set_partition(0, rows=-1), "partitions[0].rows: expected an int in [0, 89478485] (MAX_DENSE_CELLS / "
                                "n_features), found -1"),
    (set_partition(0, rows=10**18), "partitions[0].rows: expected an int in [0, 89478485]"),
    (set_partition(0, bytes="1"), "partitions[0].bytes: expected an int in [0, 9223372036854775807], found "
                                  "'1'"),
    (set_partition(0, sha256="A" * 64), "partitions[0].sha256: expected 64 lowercase hex digits"),
    (set_partition(1, file="../x"), "partitions[1].file: expected 'part-00001.parquet', found '../x'"),
    (set_partition(1, size=3), "partitions[1]: expected only the keys ['bytes', 'file', 'rows', 'sha256'], "
                               "found also ['size']"),
    (lambda m: m["partitions"].__setitem__(0, 5), "partitions[0]: expected a JSON object, found 5"),
])
def test_every_manifest_field_is_checked(tmp_path, edit, message):
    data = small_dataset(tmp_path / "d")
    edit_manifest(data, edit)
    with pytest.raises(DataError) as caught:
        Dataset.open(data)
    assert str(caught.value).startswith(f"{data}/_dataset.json: {message}"), caught.value
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


def test_a_crafted_manifest_through_the_cli(tmp_path, capsys):
    data = small_dataset(tmp_path / "d")
    edit_manifest(data, lambda m: m["label"].update(classes=[None, 1]))
    status, out, err = run(capsys, "train", data, "--model", "logistic", "--runner", "inline",
                           "--checkpoint-dir", str(tmp_path / "ck"))
    assert (status, out, err) == (2, "", [f"mrtrain: error: {data}/_dataset.json: label.classes[0]: "
                                          "expected a finite integer-valued number, found None"])
    assert not (tmp_path / "ck").exists()


# ---- 3. manifest facts checked against the partitions ------------------------------------------------

def test_rows_per_partition_are_compared_with_the_parquet_metadata(tmp_path):
    data = small_dataset(tmp_path / "d")

    def move_a_row(manifest):
        manifest["partitions"][0]["rows"] += 1
        manifest["partitions"][1]["rows"] -= 1

    edit_manifest(data, move_a_row)
    ds = Dataset.open(data)
    with pytest.raises(DataError, match=rf"^{data}/part-00000.parquet: expected 6 rows as _dataset.json "
                                        rf"says, "
                                        r"found 5$"):
        ds.read_partition(0)
    with pytest.raises(DataError, match=r"part-00000.parquet: expected 6 rows"):
        ds.read_all()


def test_a_declared_weight_column_must_be_there(tmp_path):
    data = small_dataset(tmp_path / "d")
    edit_manifest(data, lambda m: m.update(weight="weight"))
    with pytest.raises(DataError, match=rf"^{data}/part-00000.parquet: missing column 'weight', which "
                                        r"_dataset.json declares; found columns \['features', 'label'\]$"):
        Dataset.open(data).read_all()
    weighted = small_dataset(tmp_path / "w", weights=True)
    edit_manifest(weighted, lambda m: m.update(weight=None))
    with pytest.raises(DataError, match=r"part-00000.parquet: unexpected column 'weight': _dataset.json "
                                        r"declares no weight$"):
        Dataset.open(weighted).read_partition(0)


def test_a_partition_larger_than_the_manifest_says_is_refused_unread(tmp_path):
    data = small_dataset(tmp_path / "d")
    edit_manifest(data, set_partition(1, bytes=100))
    with pytest.raises(DataError, match=r"part-00001.parquet: expected a file of at most 100 bytes, found "
                                        r"\d+"):
        Dataset.open(data).read_partition(1)


# ---- 4. wide CSV -------------------------------------------------------------------------------------

def test_a_csv_whose_lines_exceed_the_parser_block(tmp_path):
    d = 2000
    names = [f"feature_{j:04d}_" + "x" * 600 for j in range(d)]
    rows = np.arange(3 * d, dtype=float).reshape(3, d)
    lines = [",".join([*names, "label"])] + [",".join([*map(str, row), "1"]) for row in rows]
    (tmp_path / "wide.csv").write_text("\n".join(lines) + "\n")
    assert len(lines[0]) > 2**20
    ds = ingest(tmp_path / "wide.csv", tmp_path / "d")
    X, y, _ = ds.read_all()
    np.testing.assert_array_equal(X, rows)
    assert ds.feature_names == names and y.tolist() == [1, 1, 1]


@pytest.mark.parametrize(("text", "message"), [
    ("a,label\n1,0\n" + "9" * 200_000 + ",1\n",
     "line 3: expected fields of at most 131072 characters, found a longer one"),
    ('a,label\n1,0\n"2,1\n' + "3,4\n" * 40_000,
     "line 3: expected fields of at most 131072 characters, found a longer one (an unclosed quote?)"),
])
def test_a_csv_field_over_the_csv_modules_limit(tmp_path, capsys, text, message):
    (tmp_path / "x.csv").write_text(text)
    status, out, err = run(capsys, "ingest", str(tmp_path / "x.csv"), str(tmp_path / "d"))
    assert (status, out, err) == (2, "", [f"mrtrain: error: {tmp_path / 'x.csv'}: {message}"])
    assert tree(tmp_path) == ["x.csv"]


# ---- 5. partition settings validated before the source is read ----------------------------------------

@pytest.mark.parametrize(("options", "message"), [
    ({"partition_size_mb": float("inf")}, "The 'partition_size_mb' parameter must be a number > 0, finite. "
                                          "Got inf instead."),
    ({"partition_size_mb": float("nan")}, "The 'partition_size_mb' parameter must be a number > 0, finite. "
                                          "Got nan instead."),
    ({"partition_size_mb": -1}, "The 'partition_size_mb' parameter must be a number > 0, finite. Got -1 "
                                "instead."),
    ({"partition_size_mb": 10**400}, "The 'partition_size_mb' parameter must be a number > 0, finite. Got "
                                     f"{10**400} instead."),
    ({"partition_size_mb": True}, "The 'partition_size_mb' parameter must be a number > 0, finite. Got True "
                                  "instead."),
    ({"partitions": 0}, r"The 'partitions' parameter must be an int in [1, 10000] (MAX_PARTITIONS) or None. "
                        r"Got 0 "
                        "instead."),
    ({"partitions": 10_001}, "The 'partitions' parameter must be an int in [1, 10000] (MAX_PARTITIONS) or "
                             "None. Got 10001 instead."),
    ({"partitions": 2.0}, "The 'partitions' parameter must be an int in [1, 10000] (MAX_PARTITIONS) or None. "
                          "Got 2.0 instead."),
    ({"dtype": "float16"}, "The 'dtype' parameter must be one of ('float64', 'float32'). Got 'float16' "
                           "instead."),
])
def test_ingest_parameters_are_checked_before_the_source_is_read(tmp_path, options, message):
    with pytest.raises(ValueError) as caught:
        ingest(tmp_path / "missing.csv", tmp_path / "d", **options)
    assert str(caught.value) == message


def test_a_partition_size_that_gives_too_many_partitions(tmp_path, monkeypatch):
    set_limit(monkeypatch, "MAX_PARTITIONS", 4)
    (tmp_path / "s.csv").write_text("a,label\n" + "1,0\n" * 10)
    with pytest.raises(ValueError, match=r"The 'partition_size_mb' parameter must be at least 4.57764e-05 "
                                         r"for 10 rows of 16 bytes, so that there are at most 4 partitions "
                                         r"\(MAX_PARTITIONS\). Got 1e-09 instead."):
        ingest(tmp_path / "s.csv", tmp_path / "d", partition_size_mb=1e-9)
    assert tree(tmp_path) == ["s.csv"]


# ---- 6. non-finite values in a partition with a valid checksum ----------------------------------------

def features_table(X, y, w=None):
    columns = {"features": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1]),
               "label": pa.array(y)}
    if w is not None:
        columns["weight"] = pa.array(w)
    return pa.table(columns)


@pytest.mark.parametrize(("column", "row", "value", "message"), [
    ("X", 2, np.nan, "row 3: column 'features', feature 1: expected a finite number, found nan"),
    ("X32", 0, np.inf, "row 1: column 'features', feature 1: expected a finite number, found inf"),
    ("y", 4, -np.inf, "row 5: column 'label': expected a finite number, found -inf"),
    ("w", 1, np.nan, "row 2: column 'weight': expected a finite number, found nan"),
    ("w", 3, -2.0, "row 4: column 'weight': expected a weight >= 0, found -2.0"),
])
def test_read_partition_refuses_non_finite_values(tmp_path, column, row, value, message):
    data = small_dataset(tmp_path / "d", weights=True)
    X, y, w = (np.array(a) for a in Dataset.open(data).read_partition(0))
    target = {"X": X, "X32": X, "y": y, "w": w}[column]
    target[(row, 1) if column.startswith("X") else row] = value
    if column == "X32":
        X = X.astype(np.float32)
    path = replace_partition(data, 0, features_table(X, y, w))
    if column == "X32":
        edit_manifest(data, lambda m: m.update(dtype="float32"))
    with pytest.raises(DataError, match=rf"^{path}: {message}$".replace("(", r"\(").replace(")", r"\)")):
        Dataset.open(data).read_partition(0)
    with pytest.raises(DataError, match="expected a"):
        read_partition(path)


def test_a_map_task_refuses_a_crafted_non_finite_partition(tmp_path, capsys):
    data = small_dataset(tmp_path / "d")
    X, y, _ = (np.array(a) for a in Dataset.open(data).read_partition(1))
    X[1, 2] = np.inf
    path = replace_partition(data, 1, features_table(X, y))
    status, out, err = run(capsys, "train", data, "--model", "logistic", "--runner", "inline",
                           "--no-partition-cache", "--checkpoint-dir", str(tmp_path / "ck"))
    assert (status, out) == (2, "")
    assert err == [f"mrtrain: error: partition 1: {path}: row 2: column 'features', feature 2: expected a "
                   "finite number, found inf"]
    assert not (tmp_path / "ck").exists()
