"""The csr dataset layout, and libsvm / sparse ``.npz`` ingest that never densifies."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import sparse

from mrtrain.cli import main
from mrtrain.storage import dataset as dataset_module
from mrtrain.storage import manifest as manifest_module
from mrtrain.storage import partition_read, partition_write
from mrtrain.storage.dataset import Dataset, encode_partition, read_partition, write_dataset
from mrtrain.storage.errors import DataError
from mrtrain.storage.ingest import ingest
from tests.datasets import edit_manifest


def random_csr(n, d, density, seed=0, empty_rows=()):
    rng = np.random.default_rng(seed)
    X = sparse.random_array((n, d), density=density, format="csr", rng=rng, dtype=np.float64)
    X = sparse.lil_array(X)
    for row in empty_rows:
        X[row, :] = 0
    return sparse.csr_array(X)


def replace_partition(data, index, content):
    """Write ``content`` as partition ``index`` and make the manifest agree (bytes, sha256, checksum)."""
    (Path(data) / f"part-{index:05d}.parquet").write_bytes(content)

    def edit(manifest):
        manifest["partitions"][index].update(bytes=len(content), sha256=hashlib.sha256(content).hexdigest())

    edit_manifest(data, edit)


def csr_table(offsets, indices, values, labels, n_features=None):
    offsets = pa.array(np.asarray(offsets, dtype=np.int32))
    table = pa.table({
        "indices": pa.ListArray.from_arrays(offsets, pa.array(np.asarray(indices, dtype=np.int32))),
        "values": pa.ListArray.from_arrays(offsets, pa.array(np.asarray(values, dtype=np.float64))),
        "label": pa.array(np.asarray(labels, dtype=np.float64)),
    })
    if n_features is not None:
        table = table.replace_schema_metadata({b"mrtrain.n_features": str(n_features).encode()})
    return table


def parquet_bytes(table):
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


# ---- 1. the csr layout ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("weighted", [False, True])
def test_csr_round_trip(tmp_path, dtype, weighted):
    lil = sparse.lil_array(random_csr(60, 40, 0.1, empty_rows=(0, 3, 5, 7, 59)))
    lil[5, 39] = 2.5  # a row with one value, in the last column
    X = sparse.csr_array(lil)
    y = np.arange(60, dtype=float) % 3
    w = np.linspace(0, 2, 60) if weighted else None
    ds = write_dataset(str(tmp_path / "d"), X, y, w, partitions=4, dtype=dtype)
    opened = Dataset.open(ds.uri)
    assert (opened.layout, opened.nnz, opened.n_features, opened.dtype) == ("csr", X.nnz, 40, dtype)
    manifest = json.loads((tmp_path / "d" / "_dataset.json").read_text())
    assert manifest["layout"] == "csr" and sum(p["nnz"] for p in manifest["partitions"]) == X.nnz
    for i, part in enumerate(opened.partitions):
        Xp, yp, wp = opened.read_partition(i)
        assert isinstance(Xp, sparse.csr_array) and Xp.shape == (part.rows, 40) and Xp.nnz == part.nnz
        assert Xp.dtype == np.dtype(dtype) and Xp.indices.dtype == np.int32
        assert Xp.indptr.dtype in (np.int32, np.int64) and Xp.has_sorted_indices
    Xr, yr, wr = opened.read_all()
    np.testing.assert_array_equal(Xr.toarray(), X.toarray().astype(dtype))
    np.testing.assert_array_equal(yr, y)
    if weighted:
        np.testing.assert_array_equal(wr, w)
    else:
        assert wr is None


def test_a_csr_partition_shares_the_arrow_buffers(tmp_path):
    ds = write_dataset(str(tmp_path / "d"), random_csr(30, 10, 0.3), np.zeros(30))
    data = Path(ds.partitions[0].uri).read_bytes()
    table = pq.ParquetFile(pa.BufferReader(data)).read()
    X, _, _ = dataset_module.decode_partition(table, "p", 10)
    values = table.column("values").chunk(0).values.to_numpy()
    indices = table.column("indices").chunk(0).values.to_numpy()
    assert np.shares_memory(X.data, values) and np.shares_memory(X.indices, indices)


def test_sparse_input_of_any_format_is_never_densified(tmp_path, monkeypatch):
    X = random_csr(20, 8, 0.3)
    inputs = {"coo": sparse.coo_array(X), "csc": sparse.csc_matrix(X), "csr": sparse.csr_matrix(X)}
    for cls in (sparse.csr_array, sparse.csr_matrix, sparse.coo_array, sparse.csc_matrix):
        for method in ("toarray", "todense"):
            monkeypatch.setattr(cls, method, lambda *a, **k: pytest.fail("densified"))
    for name, matrix in inputs.items():
        ds = write_dataset(str(tmp_path / name), matrix, np.ones(20))
        Xr, _, _ = ds.read_all()
        assert ds.layout == "csr" and (Xr != X).nnz == 0


def test_duplicate_and_unsorted_entries_are_made_canonical(tmp_path):
    X = sparse.coo_array(([1.0, 2.0, 3.0], ([0, 0, 0], [4, 1, 4])), shape=(1, 5))
    ds = write_dataset(str(tmp_path / "d"), X, np.zeros(1))
    Xr, _, _ = ds.read_all()
    assert Xr.indices.tolist() == [1, 4] and Xr.data.tolist() == [2.0, 4.0]


def test_sparse_write_errors(tmp_path):
    X = random_csr(4, 3, 0.9, seed=1)
    bad = X.copy()
    bad.data[2] = np.nan
    row = int(np.searchsorted(bad.indptr, 2, side="right"))
    with pytest.raises(DataError, match=rf"d: row {row}: feature {bad.indices[2]}: expected a finite number, "
                                        r"found nan$"):
        write_dataset(str(tmp_path / "d"), bad, np.zeros(4))
    with pytest.raises(DataError, match=r"d: row 1: feature 0: expected a value that fits float32, "
                                        r"found 1e\+300"):
        write_dataset(str(tmp_path / "d"), X * 0 + sparse.csr_array(([1e300], ([0], [0])), shape=(4, 3)),
                      np.zeros(4), dtype="float32")
    with pytest.raises(DataError, match=r"d: X: expected at most 1073741824 columns \(MAX_SPARSE_FEATURES\), "
                                        r"found 1073741825$"):
        write_dataset(str(tmp_path / "d"), sparse.csr_array((2, 2**30 + 1)), np.zeros(2))
    with pytest.raises(DataError, match=r"d: y: expected shape \(4,\), found \(3,\)"):
        write_dataset(str(tmp_path / "d"), X, np.zeros(3))
    assert not (tmp_path / "d").exists()


def test_csr_partitions_are_balanced_by_bytes(tmp_path):
    # 100 heavy rows (200 values) then 900 empty ones: balancing rows would put all values in one partition.
    X = sparse.vstack([random_csr(100, 1000, 0.2), sparse.csr_array((900, 1000))], format="csr")
    ds = write_dataset(str(tmp_path / "d"), sparse.csr_array(X), np.zeros(1000), partition_size_mb=0.1)
    sizes = [p.bytes for p in ds.partitions]
    assert len(sizes) > 2 and max(sizes) < 2 * min(sizes[:-1])
    assert sum(p.rows for p in ds.partitions) == 1000 and sum(p.nnz for p in ds.partitions) == X.nnz
    with pytest.raises(ValueError, match=r"The 'partitions' parameter must be an int in \[1, 3\]"):
        write_dataset(str(tmp_path / "e"), sparse.csr_array((3, 4)), np.zeros(3), partitions=4)


def test_partition_nnz_is_bounded(tmp_path, monkeypatch):
    for module in (dataset_module, manifest_module, partition_read, partition_write):
        monkeypatch.setattr(module, "MAX_PARTITION_NNZ", 10)
    X = sparse.csr_array(np.ones((6, 4)))
    with pytest.raises(ValueError, match=r"The 'partitions' parameter must be at least 3 for 6 rows and 24 "
                                         r"stored values, so that a partition holds at most 10 "
                                         r"\(MAX_PARTITION_NNZ\). Got 2 instead."):
        write_dataset(str(tmp_path / "d"), X, np.zeros(6), partitions=2)
    ds = write_dataset(str(tmp_path / "d"), X, np.zeros(6))
    assert [p.nnz for p in ds.partitions] == [8, 8, 8]


def test_old_dense_manifests_still_open(tmp_path):
    ds = write_dataset(str(tmp_path / "d"), np.arange(6.0).reshape(3, 2), np.zeros(3))
    manifest = json.loads((tmp_path / "d" / "_dataset.json").read_text())
    assert "layout" not in manifest and "nnz" not in manifest["partitions"][0]
    opened = Dataset.open(ds.uri)
    assert (opened.layout, opened.nnz) == ("dense", 6)
    X, _, _ = opened.read_partition(0)
    assert isinstance(X, np.ndarray) and X.shape == (3, 2)
    edit_manifest(ds.uri, lambda m: m.update(layout="dense"))
    assert Dataset.open(ds.uri).layout == "dense"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m.update(layout="coo"), r"layout: expected one of \('dense', 'csr'\), found 'coo'"),
    (lambda m: m.update(layout=None), r"layout: expected one of \('dense', 'csr'\), found None"),
    (lambda m: m["partitions"][0].pop("nnz"),
     r"partitions\[0\]: expected keys .*, found them missing \['nnz'\]"),
    (lambda m: m["partitions"][0].update(nnz=-1), r"partitions\[0\].nnz: expected an int in \[0, \d+\] "),
    (lambda m: m["partitions"][0].update(nnz=1.0), r"partitions\[0\].nnz: expected an int"),
    (lambda m: m["partitions"][0].update(nnz=10**9), r"partitions\[0\].nnz: expected an int in \[0, \d+\]"),
    (lambda m: m.update(n_features=2**30 + 1), r"n_features: expected an int in \[1, 1073741824\] "
                                               r"\(MAX_SPARSE_FEATURES\), found 1073741825"),
    (lambda m: m.pop("layout"), r"partitions\[0\]: expected only the keys .*, found also \['nnz'\]"),
])
def test_bad_csr_manifests_are_refused(tmp_path, edit, message):
    ds = write_dataset(str(tmp_path / "d"), random_csr(20, 30, 0.2), np.zeros(20), partitions=2)
    edit_manifest(ds.uri, edit)
    with pytest.raises(DataError, match=rf"^{tmp_path / 'd' / '_dataset.json'}: {message}"):
        Dataset.open(ds.uri)


def test_a_wrong_nnz_is_refused_on_read(tmp_path):
    ds = write_dataset(str(tmp_path / "d"), random_csr(20, 30, 0.2), np.zeros(20), partitions=2)
    nnz = ds.partitions[0].nnz
    edit_manifest(ds.uri, lambda m: m["partitions"][0].update(nnz=nnz - 1))
    with pytest.raises(DataError, match=rf"part-00000.parquet: expected {nnz - 1} stored values \(nnz\) as "
                                        r"_dataset.json says, found"):
        Dataset.open(ds.uri).read_partition(0)


def test_a_dense_manifest_over_a_csr_partition_is_refused(tmp_path):
    ds = write_dataset(str(tmp_path / "d"), random_csr(20, 30, 0.2), np.zeros(20))
    edit_manifest(ds.uri, lambda m: (m.pop("layout"), m["partitions"][0].pop("nnz")))
    with pytest.raises(DataError, match=r"part-00000.parquet: expected a dense partition \(column "
                                        r"'features'\) as _dataset.json says, found columns "
                                        r"\['indices', 'values', 'label'\]"):
        Dataset.open(ds.uri).read_partition(0)


@pytest.mark.parametrize(("table", "message"), [
    (csr_table([0, 2, 3], [1, 20, 0], [1, 2, 3], [0, 1]), None),
    (csr_table([0, 2, 3], [1, 30, 0], [1, 2, 3], [0, 1]),
     r"row 1: column 'indices': expected a feature index in \[0, 30\), found 30"),
    (csr_table([0, 2, 3], [5, 2, 0], [1, 2, 3], [0, 1]),
     r"row 1: column 'indices': expected strictly increasing indices \(previous 5\), found 2"),
    (csr_table([0, 1, 3], [5, 2, 2], [1, 2, 3], [0, 1]),
     r"row 2: column 'indices': expected strictly increasing indices \(previous 2\), found 2"),
    (csr_table([0, 1, 3], [5, 2, 7], [1, np.inf, 3], [0, 1]),
     r"row 2: column 'values', feature 2: expected a finite number, found inf"),
    (csr_table([0, 1, 3], [5, 2, 7], [1, 2, 3], [0, 1], n_features=29),
     r"expected 30 features, found 29"),
])
def test_csr_partitions_are_checked_on_read(tmp_path, table, message):
    ds = write_dataset(str(tmp_path / "d"), random_csr(2, 30, 0.2, seed=3), np.zeros(2))
    if message is None:  # indices and values of different list lengths
        values = pa.ListArray.from_arrays(pa.array(np.array([0, 1, 3], np.int32)),
                                          pa.array([1.0, 2.0, 3.0]))
        table = table.set_column(1, "values", values)
        message = r"row 1: columns 'indices' and 'values': expected lists of the same lengths, found 2 " \
                  r"indices and 1 values"
    nnz = len(table.column("values").chunk(0).values)
    edit_manifest(ds.uri, lambda m: m["partitions"][0].update(nnz=nnz))
    replace_partition(ds.uri, 0, parquet_bytes(table))
    with pytest.raises(DataError, match=rf"^{tmp_path / 'd' / 'part-00000.parquet'}: {message}$"):
        Dataset.open(ds.uri).read_partition(0)


def test_read_partition_detects_the_layout_without_a_manifest(tmp_path):
    ds = write_dataset(str(tmp_path / "d"), random_csr(5, 7, 0.5), np.zeros(5))
    X, _, _ = read_partition(ds.partitions[0].uri)
    assert isinstance(X, sparse.csr_array) and X.shape == (5, 7)
    with pytest.raises(DataError, match=r"expected 8 features, found 7"):
        read_partition(ds.partitions[0].uri, n_features=8)
    content = encode_partition(sparse.csr_array(np.eye(3)), np.zeros(3))
    assert pq.ParquetFile(pa.BufferReader(content)).schema_arrow.field("indices").type == pa.list_(pa.int32())


# ---- 2. libsvm ingest stays sparse ------------------------------------------------------------------

def write_libsvm(path, X, y):
    lines = []
    for i in range(X.shape[0]):
        cols, vals = X.indices[X.indptr[i]:X.indptr[i + 1]], X.data[X.indptr[i]:X.indptr[i + 1]]
        pairs = [f"{j + 1}:{float(v)!r}" for j, v in zip(cols, vals, strict=True)]
        lines.append(" ".join([repr(float(y[i])), *pairs]))
    path.write_text("\n".join(lines) + "\n")


def test_libsvm_ingest_equals_scikit_learn(tmp_path):
    from sklearn.datasets import load_svmlight_file

    src = tmp_path / "d.libsvm"
    X = random_csr(300, 500, 0.02, seed=5, empty_rows=(4, 9))
    write_libsvm(src, X, np.arange(300) % 4 - 1.0)
    ds = ingest(src, tmp_path / "d", partitions=3)
    Xr, yr, wr = ds.read_all()
    Xs, ys = load_svmlight_file(str(src), n_features=500)
    assert ds.layout == "csr" and isinstance(Xr, sparse.csr_array) and wr is None
    np.testing.assert_array_equal(Xr.indptr, Xs.indptr)
    np.testing.assert_array_equal(Xr.indices, Xs.indices)
    np.testing.assert_array_equal(Xr.data, Xs.data)
    np.testing.assert_array_equal(yr, ys)


def test_libsvm_dense_option_keeps_the_dense_layout(tmp_path, capsys):
    src = tmp_path / "d.libsvm"
    src.write_text("1 2:5\n0 1:1\n")
    assert main(["-q", "ingest", str(src), str(tmp_path / "d"), "--dense", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["layout"], summary["nnz"], summary["density"]) == ("dense", 4, 1.0)
    assert isinstance(Dataset.open(str(tmp_path / "d")).read_partition(0)[0], np.ndarray)


def test_ingest_prints_the_dataset_facts(tmp_path, capsys):
    src = tmp_path / "d.libsvm"
    src.write_text("1 2:5 7:1\n0 1:1\n")
    assert main(["-q", "ingest", str(src), str(tmp_path / "d"), "--n-features", "10"]) == 0
    out = capsys.readouterr().out
    assert "layout: csr" in out and "features: 10" in out and "nnz: 3" in out and "density: 0.15" in out


@pytest.mark.parametrize(("text", "options", "message"), [
    ("1 2:5\n0 1:1 11:2\n", ["--n-features", "10"],
     "line 2: expected an index <= n_features=10, found '11:2'"),
    ("1 1073741825:1\n", [], "line 1: expected an index <= 1073741824 (MAX_SPARSE_FEATURES), "
                             "found '1073741825:1'"),
    ("1 1:1\n0 1:1 3:nan\n", [], "line 2: column 'feature 2': expected a finite number, found nan"),
])
def test_libsvm_index_errors(tmp_path, capsys, text, options, message):
    src = tmp_path / "d.libsvm"
    src.write_text(text)
    assert main(["-q", "ingest", str(src), str(tmp_path / "d"), *options]) == 2
    out, err = capsys.readouterr()
    assert (out, err.strip()) == ("", f"mrtrain: error: {src}: {message}")
    assert not (tmp_path / "d").exists()


def test_n_features_is_bounded_for_sparse_sources(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"The 'n_features' parameter must be an int in \[1, 1073741824\] "
                                         r"\(MAX_SPARSE_FEATURES\) or None. Got 1073741825 instead."):
        ingest(tmp_path / "missing.libsvm", tmp_path / "d", n_features=2**30 + 1)


def test_a_libsvm_file_of_2_24_features_ingests_in_memory_proportional_to_nnz(tmp_path):
    import time
    import tracemalloc

    rng = np.random.default_rng(7)
    n, per_row, d = 50_000, 10, 2**24
    columns = np.sort(rng.choice(d, size=(n, per_row)), axis=1)
    src = tmp_path / "wide.libsvm"
    with src.open("w") as out:
        for i in range(n):
            out.write(f"{i % 2} " + " ".join(f"{c + 1}:0.5" for c in np.unique(columns[i])) + "\n")
    started = time.perf_counter()
    tracemalloc.start()
    ds = ingest(src, tmp_path / "d", n_features=d, partition_size_mb=2)
    X, y, _ = ds.read_partition(0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - started < 30
    assert ds.layout == "csr" and ds.n_features == d and len(ds.partitions) > 1
    assert ds.nnz == sum(len(np.unique(row)) for row in columns)
    assert X.shape == (ds.partitions[0].rows, d)
    assert peak < 200 * 2**20  # a dense 50k x 2**24 array would be 6.7 TB


# ---- 3. sparse .npz ingest --------------------------------------------------------------------------

def sparse_npz(path, X, **extra):
    saved = path.with_name("saved.npz")
    sparse.save_npz(saved, X)
    with np.load(saved) as npz:
        np.savez(path, **dict(npz), **extra)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_npz_ingest(tmp_path, fmt):
    X = random_csr(40, 25, 0.1, seed=9)
    y, w = np.arange(40) % 2.0, np.linspace(1, 2, 40)
    sparse_npz(tmp_path / "d.npz", X.asformat(fmt), label=y, weight=w)
    ds = ingest(tmp_path / "d.npz", tmp_path / "d")
    Xr, yr, wr = ds.read_all()
    assert ds.layout == "csr" and (Xr != X).nnz == 0 and ds.has_weight
    np.testing.assert_array_equal(yr, y)
    np.testing.assert_array_equal(wr, w)


@pytest.mark.parametrize(("extra", "message"), [
    ({}, r"expected the arrays of scipy.sparse.save_npz for a csr or csc matrix \['format', 'shape', 'data', "
         r"'indices', 'indptr'\], plus 'label' and optionally 'weight', "
         r"found \['_is_array', 'data', 'format', 'indices', 'indptr', 'shape'\]"),
    ({"label": np.zeros(3)}, r"array 'label': expected 4 numbers \(shape \(4,\)\), found shape \(3,\)"),
])
def test_bad_sparse_npz(tmp_path, extra, message):
    sparse_npz(tmp_path / "d.npz", sparse.csr_array(np.eye(4)), **extra)
    with pytest.raises(DataError, match=rf"^{tmp_path / 'd.npz'}: {message}"):
        ingest(tmp_path / "d.npz", tmp_path / "d")
    assert not (tmp_path / "d").exists()
