"""Relative paths with mrjob's inline runner, which changes the working directory while a task runs.

The inline runner ``os.chdir``s into each task's working directory inside the driver's own process. The
checkpoint writer's thread and the lock's lease thread run meanwhile; with a relative ``--checkpoint-dir``
they wrote checkpoints into the task's directory (lost with it), failed to rename them ("No such file or
directory: 'ck/.ckpt-000008.parquet.tmp-…'") or found the lock gone ("the lock was broken by another run:
pid None"). Every entry point now makes local paths absolute once, and the storage objects whose threads
outlive a call do so themselves.
"""

import os
import threading
import time

import numpy as np
import pytest

from mrtrain import FittedModel, Trainer
from mrtrain.storage import lock as lock_module
from mrtrain.storage.checkpoint import list_checkpoints, load_checkpoint
from mrtrain.storage.checkpoint_writer import CheckpointWriter
from mrtrain.storage.filesystem import absolute
from mrtrain.storage.lock import LOCK_NAME, DirectoryLock
from tests.command import run
from tests.datasets import write

#: Runs of each end-to-end test: before the fix a 12-pass softmax run lost the race in most runs.
RUNS = 4
MAX_ITER = 12


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A scratch directory as the working directory, holding the dataset ``ds`` (a softmax problem whose
    checkpoints are large enough to be written while the next pass runs)."""
    rng = np.random.default_rng(3)
    n, d, k = 2000, 60, 6
    X = rng.normal(size=(n, d))
    y = np.argmax(X @ rng.normal(size=(d, k)) + rng.gumbel(size=(n, k)), axis=1).astype(float)
    write(tmp_path / "ds", X, y, partitions=4)
    monkeypatch.chdir(tmp_path)
    # Renewals every 0.1 s, so that the lease thread runs during the passes of a short training.
    monkeypatch.setattr(lock_module, "LEASE_SECONDS", 0.6)
    return tmp_path


def check_directory(directory, iterations):
    """Every checkpoint 0..iterations is in ``directory``, valid, and nothing else is there (no lock, no
    temporary)."""
    assert sorted(os.listdir(directory)) == [f"ckpt-{i:06d}.parquet" for i in range(iterations + 1)]
    for iteration, uri in list_checkpoints(str(directory)):
        assert load_checkpoint(uri).meta["iteration"] == iteration


def test_absolute():
    cwd = os.getcwd()
    assert absolute("ck") == os.path.join(cwd, "ck")
    assert absolute("./a//b/") == os.path.join(cwd, "a", "b")
    assert absolute("a/../b") == os.path.join(cwd, "a/../b")  # kept: through a symlink ".." is not lexical
    for unchanged in ("/abs/path", "hdfs://nn:8020/x", "file:///x", "", "  ", None):
        assert absolute(unchanged) == unchanged


def test_lock_and_writer_keep_their_directory_when_the_working_directory_changes(tmp_path, monkeypatch):
    """The lease thread renews and the writer's thread writes in the directory named when they were made,
    whatever the working directory is when they run."""
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    lock = DirectoryLock("ck", lease=0.3)  # renews every 0.05 s
    with lock, CheckpointWriter("ck") as writer:
        os.chdir(tmp_path / "elsewhere")  # what the inline runner does during a task
        for iteration in range(3):
            writer.save(iteration, {"x": np.arange(1000.0) + iteration}, {"iteration": iteration})
        time.sleep(0.5)
        lock.check_held()
        assert (tmp_path / "ck" / LOCK_NAME).is_file()
    assert os.listdir(tmp_path / "elsewhere") == []
    assert sorted(os.listdir(tmp_path / "ck")) == [f"ckpt-{i:06d}.parquet" for i in range(3)]


def test_cli_inline_runner_relative_checkpoint_dir(scratch, capsys):
    for attempt in range(RUNS):
        status, _, err = run(capsys, "train", "ds", "--model", "softmax", "--runner", "inline",
                             "--checkpoint-dir", f"ck{attempt}", "--max-iter", str(MAX_ITER), "--no-metrics")
        assert status == 0, err
        check_directory(scratch / f"ck{attempt}", MAX_ITER)
        # A rerun resumes from the relative directory, and inspect / evaluate read it.
        status, out, err = run(capsys, "evaluate", "ds", "--model-dir", f"ck{attempt}", "--runner", "inline")
        assert status == 0, err
    assert sorted(os.listdir(scratch)) == [f"ck{i}" for i in range(RUNS)] + ["ds"]


def test_trainer_inline_runner_relative_checkpoint_dir(scratch):
    for attempt in range(RUNS):
        trainer = Trainer("softmax", runner="inline", checkpoint_dir=f"rel{attempt}", max_iter=MAX_ITER)
        fitted = trainer.fit("ds")
        check_directory(scratch / f"rel{attempt}", MAX_ITER)
        loaded = FittedModel.load(f"rel{attempt}")
        np.testing.assert_array_equal(loaded.theta_, fitted.theta_)
    assert sorted(os.listdir(scratch)) == ["ds"] + [f"rel{i}" for i in range(RUNS)]


def test_trainer_keeps_the_directory_it_was_given(scratch):
    """A Trainer made in one directory and fitted from another writes where it was told, the way the
    path read when it was made."""
    trainer = Trainer("softmax", runner="inline", checkpoint_dir="ck", max_iter=2)
    (scratch / "other").mkdir()
    os.chdir(scratch / "other")
    trainer.fit(str(scratch / "ds"))
    check_directory(scratch / "ck", 2)
    assert os.listdir(scratch / "other") == []


def test_no_thread_left_after_fit(scratch):
    Trainer("softmax", runner="inline", checkpoint_dir="ck", max_iter=2).fit("ds")
    assert [t.name for t in threading.enumerate() if t.name.startswith(("lease", "checkpoint-"))] == []


def test_estimator_inline_runner_relative_paths(scratch):
    """The estimators, on arrays (their temporary copy) and on a relative dataset path, with a relative
    checkpoint directory."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression as Reference

    from mrtrain.estimators import LogisticRegression

    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 5))
    y = (X @ rng.normal(size=5) + rng.logistic(size=300) > 0).astype(float)
    for attempt in range(RUNS):
        model = LogisticRegression(l2=0.01, runner="inline", partitions=3, checkpoint_dir=f"est{attempt}",
                                   max_iter=200).fit(X, y)
        reference = Reference(C=1 / (300 * 0.01), tol=1e-10, max_iter=1000).fit(X, y)
        np.testing.assert_allclose(model.coef_.ravel(), reference.coef_.ravel(), rtol=1e-5, atol=1e-6)
        assert lock_module.LOCK_NAME not in os.listdir(scratch / f"est{attempt}")
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        on_path = LogisticRegression(runner="inline", checkpoint_dir="est-ds", max_iter=MAX_ITER).fit("ds")
    assert on_path.n_features_in_ == 60
    check_directory(scratch / "est-ds", MAX_ITER)
