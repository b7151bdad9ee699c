"""Tests for mrtrain.storage.dataset: format, zero-copy reads, atomic writes and validation."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mrtrain.storage import dataset as dataset_module
from mrtrain.storage.dataset import (
    Dataset,
    encode_partition,
    features_to_numpy,
    label_classes,
    partition_bounds,
    read_partition,
    write_dataset,
)
from mrtrain.storage.errors import DataError


def make_data(n=100, d=3, seed=0, weights=True):
    """Seeded data with awkward bit patterns: -0.0, subnormals, huge values."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[0, 0] = -0.0
    X[1 % n, d - 1] = 5e-324
    X[2 % n, 0] = 1.7e308
    y = rng.integers(0, 3, size=n).astype(np.float64)
    w = rng.random(n) if weights else None
    return X, y, w


def same_bits(a, b):
    return a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("weights", [True, False])
@pytest.mark.parametrize("partitions", [1, 3, 7])
def test_round_trip_is_bitwise(tmp_path, weights, partitions):
    X, y, w = make_data(weights=weights)
    written = write_dataset(tmp_path / "ds", X, y, w, partitions=partitions)
    ds = Dataset.open(str(tmp_path / "ds"))
    assert ds.manifest == written.manifest
    X2, y2, w2 = ds.read_all()
    assert same_bits(X2, X) and same_bits(y2, y)
    assert (w2 is None) if w is None else same_bits(w2, w)
    assert ds.has_weight == weights
    assert (ds.n_rows, ds.n_features, len(ds.partitions)) == (100, 3, partitions)


def test_float32_features(tmp_path):
    X, y, _ = make_data(weights=False)
    X[2, 0] = 3.0e38
    ds = write_dataset(tmp_path / "ds", X, y, dtype="float32")
    X2, _, _ = ds.read_partition(0)
    assert X2.dtype == np.float32 and ds.dtype == "float32"
    assert same_bits(X2, X.astype(np.float32))


def test_float32_overflow(tmp_path):
    X, y, _ = make_data(weights=False)
    with pytest.raises(DataError, match=r"row 3: feature 0: expected a value that fits float32, "
                                        r"found .*1.7e\+308"):
        write_dataset(tmp_path / "ds", X, y, dtype="float32")


def test_manifest_contents(tmp_path):
    X, y, w = make_data(n=10, d=2)
    write_dataset(tmp_path / "ds", X, y, w, feature_names=["a", "b"], label_name="species",
                  partitions=2)
    manifest = json.loads((tmp_path / "ds" / "_dataset.json").read_text())
    assert manifest["format"] == "mrtrain-dataset" and manifest["version"] == 1
    assert manifest["feature_names"] == ["a", "b"]
    assert manifest["label"] == {"name": "species", "classes": sorted(set(y.tolist()))}
    assert manifest["weight"] == "weight"
    assert [p["file"] for p in manifest["partitions"]] == ["part-00000.parquet",
                                                          "part-00001.parquet"]
    assert [p["rows"] for p in manifest["partitions"]] == [5, 5]
    for part in manifest["partitions"]:
        assert part["bytes"] == os.path.getsize(tmp_path / "ds" / part["file"])
    assert sorted(os.listdir(tmp_path)) == ["ds"]


@pytest.mark.parametrize(("n", "partitions", "sizes"),
                         [(10, 3, [3, 4, 3]), (5, 5, [1] * 5), (7, 1, [7])])
def test_partition_bounds_by_count(n, partitions, sizes):
    bounds = partition_bounds(n, 8, partitions)
    assert [b - a for a, b in bounds] == sizes
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))


def test_partition_by_size(tmp_path):
    X, y, _ = make_data(n=1000, d=15, weights=False)
    ds = write_dataset(tmp_path / "ds", X, y, partition_size_mb=0.05)
    rows_per_part = int(0.05 * 2**20 // (15 * 8 + 8))
    assert len(ds.partitions) == -(-1000 // rows_per_part)
    rows = [p.rows for p in ds.partitions]
    assert sum(rows) == 1000 and max(rows) - min(rows) <= 1


@pytest.mark.parametrize("partitions", [0, 11, 2.5])
def test_partition_count_out_of_range(tmp_path, partitions):
    X, y, _ = make_data(n=10)
    with pytest.raises(ValueError, match=r"'partitions' parameter must be an int in \[1, 10\]"):
        write_dataset(tmp_path / "ds", X, y, partitions=partitions)


def test_zero_copy_decode_shares_arrow_memory():
    X = np.arange(24.0).reshape(8, 3)
    array = pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), 3)
    buffer = np.frombuffer(array.values.buffers()[1], dtype=np.float64)
    decoded = features_to_numpy(array, "mem")
    assert np.shares_memory(decoded, buffer) and decoded.flags.c_contiguous
    sliced = features_to_numpy(array.slice(2, 4), "mem")
    assert np.shares_memory(sliced, buffer)
    assert same_bits(sliced, X[2:6])


def test_read_partition_is_a_read_only_view(tmp_path):
    X, y, w = make_data()
    ds = write_dataset(tmp_path / "ds", X, y, w)
    X2, _, _ = read_partition(ds.partitions[0].uri)
    assert X2.flags.c_contiguous and not X2.flags.writeable and X2.base is not None


def test_chunked_features_are_combined(tmp_path):
    X, y, _ = make_data(n=10, weights=False)
    path = tmp_path / "part.parquet"
    pq.write_table(pq.read_table(pa.BufferReader(encode_partition(X, y))), path, row_group_size=3)
    table = pq.read_table(path)
    assert table.column("features").num_chunks > 1
    X2, y2, w2 = read_partition(str(path), n_features=3)
    assert same_bits(X2, X) and same_bits(y2, y) and w2 is None


def test_zero_row_partition(tmp_path):
    path = tmp_path / "part.parquet"
    path.write_bytes(encode_partition(np.empty((0, 4)), np.empty(0), np.empty(0)))
    X, y, w = read_partition(str(path), n_features=4)
    assert X.shape == (0, 4) and y.shape == (0,) and w.shape == (0,)


def test_wrong_n_features(tmp_path):
    X, y, _ = make_data(weights=False)
    ds = write_dataset(tmp_path / "ds", X, y)
    with pytest.raises(DataError, match=r"part-00000.parquet: column 'features': expected 4 "
                                         r"features, found 3"):
        read_partition(ds.partitions[0].uri, n_features=4)


def test_sha256_mismatch(tmp_path):
    X, y, _ = make_data(weights=False)
    ds = write_dataset(tmp_path / "ds", X, y)
    with pytest.raises(DataError, match=r"part-00000.parquet: sha256 mismatch: expected 0+, found"):
        read_partition(ds.partitions[0].uri, expected_sha256="0" * 64)


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        ({"label": pa.array([1.0])}, r"missing column 'features'"),
        ({"features": pa.array([1.0]), "label": pa.array([1.0])},
         r"column 'features': expected fixed_size_list<double or float>, found double"),
        ({"features": pa.FixedSizeListArray.from_arrays(pa.array([1.0]), 1),
          "label": pa.array([1], pa.int64())}, r"column 'label': expected type double, found int64"),
        ({"features": pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0]), 1),
          "label": pa.array([1.0, None])}, r"row 2: column 'label' is null"),
        ({"features": pa.FixedSizeListArray.from_arrays(pa.array([1.0, None]), 1),
          "label": pa.array([1.0, 2.0])}, r"row 2: feature 0 is null"),
    ],
)
def test_wrong_schema(tmp_path, columns, match):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table(columns), path)
    with pytest.raises(DataError, match=match):
        read_partition(str(path))


def test_not_parquet(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"bad.parquet: not a readable Parquet file"):
        read_partition(str(path))


def test_open_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope: dataset directory does not exist"):
        Dataset.open(str(tmp_path / "nope"))


def test_open_file_instead_of_directory(tmp_path):
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(DataError, match=r"expected a dataset directory, found a file"):
        Dataset.open(str(tmp_path / "f"))


def test_open_without_manifest(tmp_path):
    (tmp_path / "ds").mkdir()
    with pytest.raises(DataError, match=r"ds: not an mrtrain dataset: no _dataset.json"):
        Dataset.open(str(tmp_path / "ds"))


def test_open_missing_partition(tmp_path):
    X, y, _ = make_data(weights=False)
    write_dataset(tmp_path / "ds", X, y, partitions=2)
    os.unlink(tmp_path / "ds" / "part-00001.parquet")
    with pytest.raises(DataError, match=r"part-00001.parquet: partition file listed in "
                                        r"_dataset.json is missing"):
        Dataset.open(str(tmp_path / "ds"))


@pytest.mark.parametrize(
    ("edit", "rechecksum", "match"),
    [
        (lambda m: m.update(n_rows=5), True, r"n_rows: expected the partitions' total 100, found 5"),
        (lambda m: m.update(format="x"), True, r"format: expected 'mrtrain-dataset', found 'x'"),
        (lambda m: m.update(feature_names=["a"]), True, r"feature_names: expected a list of 3"),
        (lambda m: m["partitions"][0].update(sha256="0"), False, r"checksum: expected [0-9a-f]+"),
        (lambda m: m.pop("dtype"), False, r"missing \['dtype'\]"),
    ],
)
def test_open_tampered_manifest(tmp_path, edit, rechecksum, match):
    X, y, _ = make_data(weights=False)
    write_dataset(tmp_path / "ds", X, y, partitions=2)
    path = tmp_path / "ds" / "_dataset.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    if rechecksum:
        manifest["checksum"] = dataset_module.manifest_checksum(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=match):
        Dataset.open(str(tmp_path / "ds"))


def test_open_invalid_json(tmp_path):
    X, y, _ = make_data(weights=False)
    write_dataset(tmp_path / "ds", X, y)
    (tmp_path / "ds" / "_dataset.json").write_text("{")
    with pytest.raises(DataError, match=r"_dataset.json: not valid JSON"):
        Dataset.open(str(tmp_path / "ds"))


@pytest.mark.parametrize(
    ("field", "row", "value", "match"),
    [
        ("X", 2, np.nan, r"row 3: feature 1: expected a finite number, found .*nan"),
        ("X", 0, np.inf, r"row 1: feature 1: expected a finite number, found .*inf"),
        ("y", 4, np.nan, r"row 5: label: expected a finite number"),
        ("w", 1, -np.inf, r"row 2: weight: expected a finite number"),
        ("w", 6, -0.5, r"row 7: weight: expected >= 0, found .*-0.5"),
    ],
)
def test_write_rejects_bad_values(tmp_path, field, row, value, match):
    X, y, w = make_data(n=10)
    arrays = {"X": X, "y": y, "w": w}
    target = arrays[field]
    if target.ndim == 2:
        target[row, 1] = value
    else:
        target[row] = value
    with pytest.raises(DataError, match=match):
        write_dataset(tmp_path / "ds", X, y, w)
    assert os.listdir(tmp_path) == []


def test_write_rejects_no_rows(tmp_path):
    with pytest.raises(DataError, match=r"no rows"):
        write_dataset(tmp_path / "ds", np.empty((0, 3)), np.empty(0))


@pytest.mark.parametrize(("X", "y", "match"), [
    (np.zeros(3), np.zeros(3), r"X: expected a 2-d array with >= 1 column, found shape \(3,\)"),
    (np.zeros((3, 2)), np.zeros(4), r"y: expected shape \(3,\), found \(4,\)"),
])
def test_write_rejects_bad_shapes(tmp_path, X, y, match):
    with pytest.raises(DataError, match=match):
        write_dataset(tmp_path / "ds", X, y)


def test_write_rejects_existing_destination(tmp_path):
    X, y, _ = make_data(weights=False)
    (tmp_path / "ds").mkdir()
    with pytest.raises(FileExistsError, match=r"ds: destination already exists"):
        write_dataset(tmp_path / "ds", X, y)


def test_write_rejects_bad_options(tmp_path):
    X, y, _ = make_data(weights=False)
    with pytest.raises(ValueError, match=r"'dtype' parameter must be one of .* Got 'int8'"):
        write_dataset(tmp_path / "ds", X, y, dtype="int8")
    with pytest.raises(ValueError, match=r"'feature_names' parameter must be 3 distinct names"):
        write_dataset(tmp_path / "ds", X, y, feature_names=["a", "a", "b"])
    with pytest.raises(ValueError, match=r"'partition_size_mb' parameter must be a number > 0"):
        write_dataset(tmp_path / "ds", X, y, partition_size_mb=0)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    X, y, _ = make_data(weights=False)
    calls = []

    def failing_encode(*args):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return encode_partition(*args)

    monkeypatch.setattr(dataset_module, "encode_partition", failing_encode)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(tmp_path / "ds", X, y, partitions=3)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        (np.array([2.0, 0.0, 2.0, 1.0]), [0.0, 1.0, 2.0]),
        (np.array([-1.0, 1.0]), [-1.0, 1.0]),
        (np.array([0.5, 1.0]), None),
        (np.arange(1001.0), None),
        (np.arange(1000.0), list(np.arange(1000.0))),
    ],
)
def test_label_classes(y, expected):
    assert label_classes(y) == expected
