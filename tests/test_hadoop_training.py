"""Training, evaluation and prediction on the real single-machine Hadoop (HDFS + YARN).

Datasets and checkpoints live on ``hdfs://``; the tasks run in YARN containers and read their partitions
over WebHDFS. Every model must be bitwise the one the local runner gives on the same data.
"""

import uuid
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmarks.hadoop import logging_hadoop_conf
from mrtrain.fitted import FittedModel
from mrtrain.launcher import JobLauncher
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.mr_jobs.partition_job import FAULT_PARTITION_ENV
from mrtrain.storage.dataset import Dataset, write_dataset
from mrtrain.storage.filesystem import get_filesystem, join
from mrtrain.storage.ingest import ingest
from mrtrain.storage.lock import LOCK_NAME, CheckpointLockedError, DirectoryLock
from mrtrain.trainer import Trainer
from tests.conftest import ROOT
from tests.datasets import reference_data, write

pytestmark = pytest.mark.hadoop


@pytest.fixture(scope="module")
def hdfs_base(hadoop_cluster):
    base = f"{hadoop_cluster['MRTRAIN_HDFS_URL']}/user/{hadoop_cluster['MRTRAIN_HDFS_USER']}/" \
           f"mrtrain-tests/{uuid.uuid4().hex[:8]}"
    yield base
    get_filesystem(base).delete(base, recursive=True)


@pytest.fixture(scope="module")
def iris_pair(hdfs_base, tmp_path_factory):
    """The shipped Iris, ingested once to HDFS and once to local disk (3 partitions each)."""
    source = str(ROOT / "data" / "iris.libsvm")
    local = str(tmp_path_factory.mktemp("iris") / "iris")
    ingest(source, local, partitions=3)
    remote = join(hdfs_base, "iris")
    ingest(source, remote, partitions=3)
    return remote, local


def test_ingest_to_hdfs_gives_the_same_dataset(iris_pair):
    remote, local = (Dataset.open(uri) for uri in iris_pair)
    assert remote.checksum == local.checksum
    assert [p.sha256 for p in remote.partitions] == [p.sha256 for p in local.partitions]
    assert remote.layout == local.layout == "csr"  # libsvm stays sparse
    X_remote, y_remote, _ = remote.read_all()
    X_local, y_local, _ = local.read_all()
    for name in ("data", "indices", "indptr"):
        assert getattr(X_remote, name).tobytes() == getattr(X_local, name).tobytes()
    assert y_remote.tobytes() == y_local.tobytes()


def test_cross_validation_grid_on_yarn_equals_inline_bitwise(iris_pair, hdfs_base):
    """Per-fold sums on YARN: the same folds (row hash) and sums as in-process, to the bit."""
    remote, local = iris_pair
    settings = {"optimizer": "newton", "l2": [0.01, 0.1], "cv": 2, "max_iter": 2}
    checkpoints = join(hdfs_base, "grid-ck")
    on_yarn = Trainer("softmax", runner="hadoop", reducers=0, checkpoint_dir=checkpoints,
                      **settings).fit(remote)
    inline = Trainer("softmax", **settings).fit(local)
    assert on_yarn.theta_.tobytes() == inline.theta_.tobytes()
    assert on_yarn.cv_results_ == inline.cv_results_
    assert FittedModel.load(checkpoints).cv_results_ == inline.cv_results_


def test_softmax_on_yarn_equals_local_runner_bitwise(iris_pair, hdfs_base, tmp_path):
    remote, local = iris_pair
    settings = {"optimizer": "newton", "l2": 0.01, "max_iter": 2}
    checkpoints = join(hdfs_base, "softmax-ck")
    on_yarn = Trainer("softmax", runner="hadoop", checkpoint_dir=checkpoints, **settings).fit(remote)
    on_local = Trainer("softmax", runner="local", **settings).fit(local)
    assert on_yarn.theta_.tobytes() == on_local.theta_.tobytes()
    assert on_yarn.history_ == on_local.history_
    loaded = FittedModel.load(checkpoints)
    assert loaded.theta_.tobytes() == on_yarn.theta_.tobytes()

    metrics_yarn = loaded.evaluate(remote, runner="hadoop")
    metrics_local = loaded.evaluate(local, runner="local")
    assert metrics_yarn == metrics_local

    output = join(hdfs_base, "softmax-predictions")
    manifest = loaded.predict_dataset(remote, output, runner="hadoop")
    assert manifest["n_rows"] == 150
    fs = get_filesystem(output)
    assert fs.listdir(output) == ["_predictions.json"] + [f"part-{i:05d}.parquet" for i in range(3)]
    local_output = str(tmp_path / "predictions")
    loaded.predict_dataset(local, local_output, runner="local")
    for name in ("part-00000.parquet", "part-00001.parquet", "part-00002.parquet"):
        tmp = tmp_path / f"yarn-{name}"
        tmp.write_bytes(fs.read_bytes(join(output, name)))
        assert pq.read_table(tmp).equals(pq.read_table(tmp_path / "predictions" / name))


def test_logistic_on_yarn_equals_local_runner_bitwise(hdfs_base, tmp_path):
    X, y = reference_data("breast_cancer")
    remote = write(join(hdfs_base, "breast-cancer"), X, y, partitions=3)
    local = write(tmp_path / "breast-cancer", X, y, partitions=3)
    settings = {"optimizer": "lbfgs", "l2": 0.01, "max_iter": 2}
    on_yarn = Trainer("logistic", runner="hadoop", **settings).fit(remote)
    on_local = Trainer("logistic", runner="local", **settings).fit(local)
    assert on_yarn.theta_.tobytes() == on_local.theta_.tobytes()
    assert on_yarn.n_passes_ == 3


def test_a_failed_map_attempt_is_retried_and_changes_nothing(iris_pair, monkeypatch, caplog):
    """The pass runs in uber mode (small), where YARN gives a task one attempt: the launcher runs it again
    in containers, where Hadoop retries the failed attempt."""
    remote, _ = iris_pair
    dataset = Dataset.open(remote)
    spec = {"kind": "softmax", "n_features": 4, "classes": dataset.classes, "fit_intercept": True}
    thetas = np.random.default_rng(0).normal(size=(2, 15))
    with JobLauncher(dataset, spec, runner="hadoop") as launcher:
        clean = launcher.sum_vector(MRGradient, thetas, {"hessian": 2})
        monkeypatch.setenv(FAULT_PARTITION_ENV, "1")
        retried = launcher.sum_vector(MRGradient, thetas, {"hessian": 2})
        counters = launcher.last_counters
    assert retried.tobytes() == clean.tobytes()
    failed = sum(group.get("Failed map tasks", 0) for step in counters for group in step.values())
    assert failed == 1, counters
    assert "MRGradient failed in YARN's uber mode" in caplog.text


def test_checkpoint_directory_lock_on_hdfs(iris_pair, hdfs_base):
    remote, _ = iris_pair
    checkpoints = join(hdfs_base, "locked-ck")
    with DirectoryLock(checkpoints):
        with pytest.raises(CheckpointLockedError, match="checkpoint directory is locked: held by"):
            Trainer("softmax", runner="hadoop", checkpoint_dir=checkpoints).fit(remote)
        assert LOCK_NAME in get_filesystem(checkpoints).listdir(checkpoints)
    assert not get_filesystem(checkpoints).exists(checkpoints)  # the lock made it and removed it empty


def test_passes_on_yarn_use_the_partition_cache_map_only_and_no_hadoop_fs_commands(
    iris_pair, hadoop_cluster, tmp_path
):
    remote, _ = iris_pair
    dataset = Dataset.open(remote)
    spec = {"kind": "softmax", "n_features": 4, "classes": dataset.classes, "fit_intercept": True}
    thetas = np.random.default_rng(0).normal(size=(2, 15))
    conf_path, calls = logging_hadoop_conf(hadoop_cluster["conf_path"], str(tmp_path))
    counters = []
    with JobLauncher(dataset, spec, runner="hadoop", conf_path=conf_path) as launcher:
        for _ in range(2):
            reduced = launcher.sum_vector(MRGradient, thetas, {"hessian": 1})
            counters.append(launcher.last_counters[0]["mrtrain"])
    with JobLauncher(dataset, spec, runner="hadoop", conf_path=conf_path, reducers=0) as launcher:
        map_only = launcher.sum_vector(MRGradient, thetas, {"hessian": 1})
        counters.append(launcher.last_counters[0]["mrtrain"])
    assert map_only.tobytes() == reduced.tobytes()
    assert counters[0]["partitions cached"] == 3 and "partitions from cache" not in counters[0]
    assert counters[1]["partitions from cache"] == 3 and counters[2]["partitions from cache"] == 3
    log = Path(calls).read_text()
    commands = [line.split()[0] for line in log.splitlines()]
    # HDFS work goes over WebHDFS: per job only `hadoop jar`, and `hadoop version` once per launcher.
    assert commands == ["version", "jar", "jar", "version", "jar"], log
    # mrjob and mrtrain come from the launcher's one code zip (with bytecode), not a zip mrjob uploads per job
    assert "mrjob.zip" not in log and log.count("/mrtrain-code.zip#mrtrain-code.zip") == 3, log
    # three small partitions: every pass asks YARN for uber mode (the maps in the application master's JVM)
    assert log.count("mapreduce.job.ubertask.enable=true") == 3, log


def test_sparse_model_of_2_to_the_20_features_on_yarn_equals_local_runner_bitwise(hdfs_base, tmp_path):
    """Sparse partitions read over WebHDFS in YARN containers; a million-coefficient model."""
    from scipy.sparse import csr_array, random_array

    rng = np.random.default_rng(20)
    n, d = 3000, 2**20
    X = csr_array(random_array((n, d), density=8 / d, format="csr", rng=rng))
    X.sort_indices()
    y = (X @ rng.normal(size=d) > 0).astype(float)
    remote = join(hdfs_base, "sparse-2-20")
    write_dataset(remote, X, y, partitions=2)
    local = str(tmp_path / "sparse-2-20")
    write_dataset(local, X, y, partitions=2)
    assert Dataset.open(remote).layout == "csr"
    settings = {"optimizer": "lbfgs", "l2": 1e-3, "max_iter": 2, "reducers": 0}
    on_yarn = Trainer("logistic", runner="hadoop", **settings).fit(remote)
    on_local = Trainer("logistic", runner="local", **settings).fit(local)
    assert on_yarn.coef_.shape == (d,)
    assert on_yarn.theta_.tobytes() == on_local.theta_.tobytes()
    assert on_yarn.history_[-1] < on_yarn.history_[0]
