"""The map tasks' ``shuffle bytes`` counter: the size of every record they emit, summed by the launcher.

The reference is the records themselves: encoded with the protocol's own ``write`` (plus the newline that
ends each line), either read back from a map-only job's output or rebuilt from the same partition vectors
cut into the shards a job with reducers emits.
"""

import base64
import logging

import numpy as np
import pytest
import scipy.sparse as sp

from mrtrain.launcher import JobLauncher, shuffle_bytes
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.mr_jobs.partition_job import SHUFFLE_BYTES, split_shards
from mrtrain.mr_jobs.protocols import TaggedVectorProtocol, encode_vector, encoded_length
from mrtrain.storage.dataset import Dataset
from tests.datasets import reference_data, write

IRIS_SPEC = {"kind": "softmax", "n_features": 4, "classes": [0.0, 1.0, 2.0], "fit_intercept": True}
WIDE = 20_000
WIDE_SPEC = {"kind": "logistic", "n_features": WIDE, "classes": [0.0, 1.0], "fit_intercept": True}


def _vectors():
    rng = np.random.default_rng(0)
    mostly_zero = np.zeros(1000)
    mostly_zero[rng.choice(1000, 40, replace=False)] = rng.normal(size=40)
    with_negative_zeros = mostly_zero.copy()
    with_negative_zeros[:30] = -0.0  # -0.0 is stored like any other value
    # 8 of 24 entries stored: 8 * 12 bytes (int32 position, float64 value) < 24 * 8 is False: dense.
    at_threshold = np.zeros(24)
    at_threshold[:8] = 1.0
    below_threshold = at_threshold.copy()
    below_threshold[7] = 0.0
    vectors = [np.zeros(0), np.zeros(5), mostly_zero, with_negative_zeros, at_threshold, below_threshold]
    return vectors + [rng.normal(size=n) for n in range(1, 8)] + [rng.normal(size=4001)]


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: f"n{len(v)}-stored{np.count_nonzero(v)}")
def test_encoded_length_is_the_length_of_the_encoding(vector):
    assert encoded_length(vector) == len(encode_vector(vector))
    record = ("12", (345, vector))
    assert TaggedVectorProtocol().size(*record) == len(TaggedVectorProtocol().write(*record))


def test_both_forms_are_measured():
    forms = {encode_vector(vector)[:1] == "~" for vector in _vectors()}
    assert forms == {True, False}


def _record_bytes(records):
    protocol = TaggedVectorProtocol()
    return sum(len(protocol.write(key, value)) + 1 for key, value in records)


def _iris(tmp_path):
    X, y = reference_data("iris")
    return Dataset.open(write(tmp_path / "iris", X, y, partitions=3))


def _wide(tmp_path):
    """A csr dataset of 20,000 features, 60 rows of 5 entries each: its gradients are mostly zeros."""
    rng = np.random.default_rng(3)
    rows = 60
    indices = np.sort(rng.choice(WIDE, size=(rows, 5), replace=False, shuffle=False), axis=1)
    X = sp.csr_array((np.ones(rows * 5), indices.ravel(), np.arange(0, rows * 5 + 1, 5)), shape=(rows, WIDE))
    y = (rng.random(rows) < 0.5).astype(float)
    return Dataset.open(write(tmp_path / "wide", X, y, partitions=2))


@pytest.mark.parametrize("make, spec, m", [(_iris, IRIS_SPEC, 3), (_wide, WIDE_SPEC, 2)],
                         ids=["iris", "wide"])
def test_map_only_counter_is_the_size_of_the_output_records(tmp_path, make, spec, m):
    dataset = make(tmp_path)
    p = (spec["n_features"] + 1) * (len(spec["classes"]) if spec["kind"] == "softmax" else 1)
    thetas = np.random.default_rng(1).normal(scale=0.1, size=(m, p))
    with JobLauncher(dataset, spec, runner="inline", reducers=0) as launcher:
        records = launcher.run(MRGradient, thetas, {"hessian": 0}, ["--map-only"])
        counted = launcher.last_shuffle_bytes
        per_step = [step["mrtrain"][SHUFFLE_BYTES] for step in launcher.last_counters]
    assert len(records) == len(dataset.partitions)
    assert counted == _record_bytes(records) == sum(per_step)
    if spec is WIDE_SPEC:  # the gradients touch few features: the records went sparse, and are shorter
        assert all(encode_vector(vector).startswith("~") for _, (_, vector) in records)
        dense = sum(len(base64.b64encode(vector.tobytes())) for _, (_, vector) in records)
        assert counted < dense / 10


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_counter_with_reducers_is_the_size_of_every_shard_record(tmp_path, runner):
    dataset = _iris(tmp_path)
    thetas = np.random.default_rng(2).normal(scale=0.1, size=(2, 15))
    with JobLauncher(dataset, IRIS_SPEC, runner="inline", reducers=0) as launcher:
        tagged = [value for _, value in launcher.run(MRGradient, thetas, {"hessian": 1}, ["--map-only"])]
    expected = _record_bytes(
        (str(shard), (partition_id, piece))
        for partition_id, vector in tagged
        for shard, piece in enumerate(split_shards(vector, 3))
    )
    with JobLauncher(dataset, IRIS_SPEC, runner=runner, reducers=3) as launcher:
        launcher.sum_vector(MRGradient, thetas, {"hessian": 1})
        assert launcher.last_shuffle_bytes == expected


def test_launcher_logs_the_bytes_of_every_job(tmp_path, caplog):
    dataset = _iris(tmp_path)
    with caplog.at_level(logging.INFO, logger="mrtrain.launcher"), \
            JobLauncher(dataset, IRIS_SPEC, runner="inline") as launcher:
        sizes = []
        for m in (1, 4):
            launcher.sum_vector(MRGradient, np.zeros((m, 15)), {"hessian": 0})
            sizes.append(launcher.last_shuffle_bytes)
    messages = [record.getMessage() for record in caplog.records if "emitted" in record.getMessage()]
    assert messages == [f"MRGradient: the map tasks emitted {size} bytes" for size in sizes]
    assert sizes[1] > 3 * sizes[0] > 0  # four points' sums against one


def test_shuffle_bytes_adds_the_steps_and_ignores_other_counters():
    counters = [{"mrtrain": {SHUFFLE_BYTES: 10, "rows read": 7}, "other": {SHUFFLE_BYTES: 100}},
                {}, {"mrtrain": {SHUFFLE_BYTES: 5}}]
    assert shuffle_bytes(counters) == 15
    assert shuffle_bytes([]) == 0


@pytest.mark.parametrize("shards", [1, 3])
def test_tree_benchmarks_dense_size_is_the_protocols_size_of_dense_records(shards):
    from benchmarks.tree_yarn import dense_record_bytes

    vector = np.random.default_rng(4).normal(size=1001)  # no zero: every record is dense
    expected = _record_bytes((str(shard), (partition_id, piece)) for partition_id in range(3)
                             for shard, piece in enumerate(split_shards(vector, shards)))
    assert dense_record_bytes(len(vector), 3, shards) == expected


def test_tree_histogram_passes_go_sparse_where_the_nodes_leave_bins_empty(tmp_path):
    """Deep nodes hold few rows, so most of their histogram bins are empty: those passes' records take the
    protocol's sparse form (fewer bytes than dense), the root's full histograms stay dense."""
    from benchmarks.tree_yarn import PassRecorder
    from mrtrain.training.run import RunOptions, TrainingRun
    from mrtrain.tree_training import TreeConfig, fit_in_run

    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(float)
    dataset = Dataset.open(write(tmp_path / "d", X, y, partitions=2))
    config = TreeConfig(n_trees=1, max_depth=4, max_bins=64, min_child_weight=0.0)
    with PassRecorder(2) as recorder:
        fit_in_run(TrainingRun(dataset, RunOptions(runner="inline")), config)
    levels = [row for row in recorder.rows[2:] if row["length"] > 2]
    assert levels[0]["shuffle bytes"] == levels[0]["dense bytes"]
    assert levels[-1]["shuffle bytes"] < levels[-1]["dense bytes"] / 2
    assert all(row["shuffle bytes"] <= row["dense bytes"] for row in levels)
