"""Tests for mrtrain.storage.checkpoint: exact round trip, corruption detection, fallback, retention."""

import io
import logging
import os
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mrtrain.storage.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from mrtrain.storage.errors import DataError

MARKER = 8.125e-7


def make_arrays(seed=0):
    """Seeded arrays of several shapes with awkward bit patterns."""
    rng = np.random.default_rng(seed)
    coef = rng.normal(size=(3, 4))
    coef[0, 0] = -0.0
    coef[0, 1] = 5e-324
    coef[0, 2] = MARKER
    coef[1, 0] = np.nan
    coef[1, 1] = -np.inf
    return {
        "coef": coef,
        "intercept": np.float64(-0.0),
        "history": rng.normal(size=7),
        "empty": np.empty((0, 2)),
        "counts": np.arange(5),
    }


META = {"model": "logistic", "l2": 0.1, "objective": [1 / 3, 2 / 3, 1e-300], "nested": {"a": [1]}}


def test_round_trip_is_bitwise(tmp_path):
    arrays = make_arrays()
    uri = save_checkpoint(str(tmp_path), 12, arrays, META)
    assert os.path.basename(uri) == "ckpt-000012.parquet"
    checkpoint = load_checkpoint(uri)
    assert checkpoint.iteration == 12 and checkpoint.uri == uri
    assert checkpoint.meta == META
    assert sorted(checkpoint.arrays) == sorted(arrays)
    for name, value in arrays.items():
        expected = np.asarray(value, dtype=np.float64)
        loaded = checkpoint.arrays[name]
        assert loaded.dtype == np.float64 and loaded.shape == expected.shape
        assert loaded.tobytes() == expected.tobytes(), name


def test_meta_floats_round_trip_exactly(tmp_path):
    values = list(np.random.default_rng(1).normal(size=50))
    uri = save_checkpoint(str(tmp_path), 0, {}, {"values": [float(v) for v in values]})
    assert load_checkpoint(uri).meta["values"] == values


def test_list_and_latest(tmp_path):
    for iteration in [3, 1, 10]:
        save_checkpoint(str(tmp_path), iteration, {"x": np.array([float(iteration)])}, {})
    (tmp_path / "ckpt-notanumber.parquet").write_bytes(b"")
    (tmp_path / "other.txt").write_bytes(b"")
    assert [it for it, _ in list_checkpoints(str(tmp_path))] == [1, 3, 10]
    latest = latest_checkpoint(str(tmp_path))
    assert latest.iteration == 10 and latest.arrays["x"][0] == 10.0


def test_missing_directory(tmp_path):
    assert list_checkpoints(str(tmp_path / "none")) == []
    assert latest_checkpoint(str(tmp_path / "none")) is None


@pytest.mark.parametrize("keep", [1, 2, 5])
def test_keep_last_n(tmp_path, keep):
    for iteration in range(4):
        save_checkpoint(str(tmp_path), iteration, {"x": np.zeros(2)}, {}, keep=keep)
    assert [it for it, _ in list_checkpoints(str(tmp_path))] == list(range(4))[-keep:]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def _corrupt(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "flipped_value":
        at = data.index(np.float64(MARKER).tobytes())
        path.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:])
    elif how == "flipped_meta":
        at = data.index(b'"logistic"') + 1
        path.write_bytes(data[:at] + b"L" + data[at + 1:])


@pytest.mark.parametrize(
    ("how", "match"),
    [
        ("truncated", r"ckpt-000005.parquet: not a readable Parquet file"),
        ("empty", r"ckpt-000005.parquet: not a readable Parquet file"),
        ("flipped_value", r"ckpt-000005.parquet: (not a readable Parquet file|content checksum)"),
        ("flipped_meta", r"ckpt-000005.parquet: content checksum mismatch: expected [0-9a-f]{64}, "
                         r"found [0-9a-f]{64}"),
    ],
)
def test_corruption_is_detected(tmp_path, how, match):
    uri = save_checkpoint(str(tmp_path), 5, make_arrays(), META)
    _corrupt(tmp_path / "ckpt-000005.parquet", how)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(uri)


def test_checkpoint_error_is_a_data_error():
    assert issubclass(CheckpointError, DataError)


def _write_table(path, table, metadata):
    pq.write_table(table.replace_schema_metadata(metadata), path)


def _valid_metadata(tmp_path):
    uri = save_checkpoint(str(tmp_path / "ref"), 5, {"x": np.ones(2)}, {"a": 1})
    return pq.ParquetFile(uri).metadata.metadata, pq.read_table(uri)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({b"mrtrain.format": b"something-else"},
         r"wrong format tag: expected 'mrtrain-checkpoint', found 'something-else'"),
        ({b"mrtrain.version": b"99"}, r"unsupported version: expected 1, found '99'"),
        ({b"mrtrain.iteration": b"-3"}, r"iteration: expected an int >= 0, found '-3'"),
        ({b"mrtrain.meta": b"{not json"}, r"meta is not valid JSON"),
        ({b"mrtrain.meta": b"[1]"}, r"meta: expected a JSON object, found list"),
        ({b"mrtrain.sha256": b"0" * 64}, r"content checksum mismatch: expected 0{64}"),
    ],
)
def test_wrong_header(tmp_path, change, match):
    metadata, table = _valid_metadata(tmp_path)
    path = tmp_path / "ckpt-000005.parquet"
    _write_table(path, table, {**metadata, **change})
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(str(path))


def test_plain_parquet_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "ckpt-000001.parquet"
    pq.write_table(pa.table({"a": [1.0]}), path)
    with pytest.raises(CheckpointError, match=r"missing metadata key 'mrtrain.format'"):
        load_checkpoint(str(path))


class Exploit:
    """Unpickling this records that pickle ran; a safe loader never triggers it."""

    triggered = []

    def __reduce__(self):
        return (Exploit.triggered.append, ("unpickled",))


@pytest.mark.parametrize(("protocol", "meta_match"), [
    (0, r"meta is not valid JSON"),
    (pickle.HIGHEST_PROTOCOL, r"metadata 'mrtrain.meta' is not UTF-8"),
])
def test_pickled_payload_is_refused(tmp_path, protocol, meta_match):
    metadata, table = _valid_metadata(tmp_path)
    payload = pickle.dumps(Exploit(), protocol=protocol)
    crafted = pa.table({
        "name": table.column("name"),
        "shape": table.column("shape"),
        "values": pa.array([payload], pa.binary()),
    })
    path = tmp_path / "ckpt-000005.parquet"
    _write_table(path, crafted, {**metadata, b"mrtrain.meta": payload, b"pandas": payload})
    with pytest.raises(CheckpointError, match=rf"ckpt-000005.parquet: {meta_match}"):
        load_checkpoint(str(path))
    _write_table(path, crafted, metadata)
    with pytest.raises(CheckpointError, match=r"column 'values': expected list<item: double>, "
                                              r"found binary"):
        load_checkpoint(str(path))
    assert Exploit.triggered == []


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (pa.table({"name": ["x"], "shape": [[3]], "values": [[1.0, 2.0]]}),
         r"array 'x': shape \[3\] does not match 2 values"),
        (pa.table({"name": ["x", "x"], "shape": [[1], [1]], "values": [[1.0], [2.0]]}),
         r"duplicate array names"),
        (pa.table({"name": ["x"], "shape": [[1]],
                   "values": pa.array([[None]], pa.list_(pa.float64()))}),
         r"column 'values' has 1 null values"),
        (pa.table({"name": ["x"], "shape": [[1]]}), r"missing column 'values'"),
        (pa.table({"name": ["x"], "shape": [[1]], "values": [[1.0]], "extra": [1]}),
         r"expected columns \['name', 'shape', 'values'\]"),
    ],
)
def test_wrong_table(tmp_path, table, match):
    metadata, _ = _valid_metadata(tmp_path)
    path = tmp_path / "ckpt-000005.parquet"
    _write_table(path, table, metadata)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(str(path))


def test_corrupt_newest_falls_back_with_one_warning(tmp_path, caplog):
    save_checkpoint(str(tmp_path), 1, {"x": np.array([1.0])}, {})
    save_checkpoint(str(tmp_path), 2, {"x": np.array([2.0])}, {})
    _corrupt(tmp_path / "ckpt-000002.parquet", "truncated")
    with caplog.at_level(logging.WARNING, logger="mrtrain.storage.checkpoint"):
        latest = latest_checkpoint(str(tmp_path))
    assert latest.iteration == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "ckpt-000002.parquet" in message and "not a readable Parquet file" in message
    assert "\n" not in message


def test_all_corrupt_gives_none(tmp_path, caplog):
    save_checkpoint(str(tmp_path), 1, {"x": np.array([1.0])}, {})
    _corrupt(tmp_path / "ckpt-000001.parquet", "empty")
    assert latest_checkpoint(str(tmp_path)) is None
    assert len(caplog.records) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"iteration": -1}, r"'iteration' parameter must be an int >= 0. Got -1"),
        ({"iteration": True}, r"'iteration' parameter must be an int >= 0. Got True"),
        ({"keep": 0}, r"'keep' parameter must be an int >= 1 or None. Got 0"),
        ({"meta": [1]}, r"'meta' parameter must be a dict. Got list"),
        ({"meta": {"f": io.BytesIO()}}, r"'meta' parameter must be JSON-serializable"),
        ({"arrays": {"s": np.array(["a"])}}, r"array 's' must be real numeric .* Got dtype <U1"),
        ({"arrays": {1: np.zeros(1)}}, r"array names must be str. Got 1"),
    ],
)
def test_save_validates_inputs(tmp_path, kwargs, match):
    args = {"iteration": 1, "arrays": {"x": np.zeros(1)}, "meta": {}, **kwargs}
    keep = args.pop("keep", None)
    with pytest.raises(ValueError, match=match):
        save_checkpoint(str(tmp_path), args["iteration"], args["arrays"], args["meta"], keep=keep)
    assert os.listdir(tmp_path) == []


@pytest.mark.hadoop
def test_hdfs_checkpoints(hadoop_cluster):
    base = f"{os.environ['MRTRAIN_HDFS_URL']}/tmp/mrtrain-test-ckpt/{os.urandom(4).hex()}"
    arrays = make_arrays()
    for iteration in range(3):
        save_checkpoint(base, iteration, arrays, META, keep=2)
    assert [it for it, _ in list_checkpoints(base)] == [1, 2]
    latest = latest_checkpoint(base)
    assert latest.iteration == 2 and latest.meta == META
    assert latest.arrays["coef"].tobytes() == arrays["coef"].tobytes()
