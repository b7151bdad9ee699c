"""Checkpoints written in the background (:class:`CheckpointWriter`): snapshots, order, pruning, errors."""

import os
import threading

import numpy as np
import pytest

from mrtrain.storage import checkpoint as checkpoint_module
from mrtrain.storage.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from mrtrain.storage.checkpoint_writer import CheckpointWriter


def hold_writes(monkeypatch):
    """Make every background write wait until the returned event is set."""
    release = threading.Event()
    original = checkpoint_module.write_validated

    def held(*args):
        assert release.wait(10)
        return original(*args)

    monkeypatch.setattr("mrtrain.storage.checkpoint_writer.write_validated", held)
    return release


def test_save_snapshots_the_arrays_so_the_caller_may_change_them_at_once(tmp_path):
    x = np.arange(200_000, dtype=np.float64)
    with CheckpointWriter(tmp_path) as writer:
        writer.save(0, {"x": x}, {"note": "first"})
        x += 1.0  # the optimizer's next step, while checkpoint 0 may still be written
        writer.save(1, {"x": x}, {"note": "second"})
    first, second = (load_checkpoint(uri) for _, uri in list_checkpoints(tmp_path))
    np.testing.assert_array_equal(first.arrays["x"], np.arange(200_000, dtype=np.float64))
    np.testing.assert_array_equal(second.arrays["x"], np.arange(200_000, dtype=np.float64) + 1.0)
    assert (first.meta, second.meta) == ({"note": "first"}, {"note": "second"})


def test_the_files_are_those_of_save_checkpoint_bit_for_bit(tmp_path):
    arrays = {"w": np.random.default_rng(0).normal(size=(3, 1000)), "b": np.float64(0.5)}
    with CheckpointWriter(tmp_path / "background") as writer:
        writer.save(7, arrays, {"a": [1, 2.5]})
    foreground = save_checkpoint(tmp_path / "foreground", 7, arrays, {"a": [1, 2.5]})
    background = list_checkpoints(tmp_path / "background")[0][1]
    assert open(background, "rb").read() == open(foreground, "rb").read()


def test_writes_run_one_at_a_time_in_order_and_keep_prunes(tmp_path, monkeypatch):
    active, overlapped, order = [], [], []
    original = checkpoint_module.write_validated

    def tracking(directory, iteration, arrays, meta_json, keep):
        overlapped.append(bool(active))
        active.append(iteration)
        try:
            return original(directory, iteration, arrays, meta_json, keep)
        finally:
            order.append(iteration)
            active.remove(iteration)

    monkeypatch.setattr("mrtrain.storage.checkpoint_writer.write_validated", tracking)
    with CheckpointWriter(tmp_path, keep=2) as writer:
        for iteration in range(6):
            writer.save(iteration, {"x": np.full(50_000, float(iteration))}, {})
    assert order == list(range(6)) and not any(overlapped)
    assert [iteration for iteration, _ in list_checkpoints(tmp_path)] == [4, 5]


def test_the_caller_runs_while_a_write_is_under_way(tmp_path, monkeypatch):
    """``save`` returns before the write ends: the pass that follows overlaps it."""
    release = hold_writes(monkeypatch)
    with CheckpointWriter(tmp_path) as writer:
        writer.save(0, {"x": np.zeros(10)}, {})
        assert list_checkpoints(tmp_path) == []  # not written yet, and save has returned
        release.set()
    assert [iteration for iteration, _ in list_checkpoints(tmp_path)] == [0]


def test_a_failed_write_is_raised_by_the_next_save_and_nothing_is_written(tmp_path):
    target = tmp_path / "not-a-directory"
    target.write_text("a file where the checkpoint directory should be")
    writer = CheckpointWriter(target)
    writer.save(0, {"x": np.zeros(3)}, {})
    with pytest.raises(OSError):
        writer.save(1, {"x": np.zeros(3)}, {})
    writer.wait()  # the error was handed over once; the writer is usable again
    assert target.read_text().startswith("a file")


def test_leaving_the_block_raises_the_last_write_error(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_module, "MAX_CHECKPOINT_BYTES", 1000)
    with pytest.raises(ValueError, match=r"ckpt-000000\.parquet: the checkpoint would be \d+ bytes, more "
                                         r"than the 1000 read back"):
        with CheckpointWriter(tmp_path) as writer:
            writer.save(0, {"x": np.zeros(10_000)}, {})
    assert list_checkpoints(tmp_path) == [] and os.listdir(tmp_path) == []


def test_an_error_of_the_run_wins_and_the_last_checkpoint_is_still_written(tmp_path, caplog):
    with pytest.raises(KeyboardInterrupt):
        with CheckpointWriter(tmp_path) as writer:
            writer.save(3, {"x": np.ones(100_000)}, {})
            raise KeyboardInterrupt
    (found,) = list_checkpoints(tmp_path)
    np.testing.assert_array_equal(load_checkpoint(found[1]).arrays["x"], np.ones(100_000))


def test_a_write_error_under_another_error_is_logged(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(checkpoint_module, "MAX_CHECKPOINT_BYTES", 1000)
    with pytest.raises(RuntimeError, match="the pass failed"):
        with CheckpointWriter(tmp_path) as writer:
            writer.save(0, {"x": np.zeros(10_000)}, {})
            raise RuntimeError("the pass failed")
    assert "checkpoint write failed while the run stopped on another error" in caplog.text
    assert list_checkpoints(tmp_path) == []


def test_a_second_ctrl_c_while_leaving_still_waits_for_the_last_write(tmp_path, monkeypatch, caplog):
    """The caller releases the directory's lock after the block: a Ctrl-C during the final wait must not
    let it go while the write (and its pruning) is under way."""
    release = hold_writes(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        with CheckpointWriter(tmp_path) as writer:
            writer.save(0, {"x": np.ones(10)}, {})
            real_join, interrupted = writer._thread.join, []

            def join_interrupted_once():
                if not interrupted:
                    interrupted.append(True)
                    release.set()
                    raise KeyboardInterrupt  # the second Ctrl-C, during the wait
                real_join()

            writer._thread.join = join_interrupted_once
            raise KeyboardInterrupt  # the first Ctrl-C, during the pass
    assert interrupted and [iteration for iteration, _ in list_checkpoints(tmp_path)] == [0]
    assert "still writing the last checkpoint" in caplog.text


@pytest.mark.hadoop
def test_on_hdfs_every_thread_talks_to_webhdfs_through_its_own_session(hadoop_cluster, tmp_path):
    """A training checkpointing to HDFS: the main thread (the lock, listing, resume), the checkpoint
    writer's threads and the lock's lease thread all use WebHDFS at once. ``requests.Session`` is not safe
    to share between threads: every session must serve one thread only. Every checkpoint is there, and the
    model is bitwise the one checkpointed to a local directory."""
    import requests

    from mrtrain.storage.filesystem import get_filesystem
    from mrtrain.trainer import Trainer
    from tests.datasets import reference_data, write

    users = {}
    send = requests.Session.send

    def recorded(session, request, **kwargs):
        users.setdefault(id(session), set()).add(threading.current_thread().name)
        return send(session, request, **kwargs)

    X, y = reference_data("breast_cancer")
    data = write(tmp_path / "data", X, y, partitions=2)
    directory = f"{hadoop_cluster['MRTRAIN_HDFS_URL']}/user/{hadoop_cluster['MRTRAIN_HDFS_USER']}/" \
                f"mrtrain-tests/writer-{os.urandom(4).hex()}"
    settings = {"optimizer": "lbfgs", "l2": 0.01, "max_iter": 8, "tol": 0.0, "gtol": 0.0}
    local = Trainer("logistic", checkpoint_dir=str(tmp_path / "ck"), **settings).fit(data)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(requests.Session, "send", recorded)
            on_hdfs = Trainer("logistic", checkpoint_dir=directory, **settings).fit(data)
        assert list_checkpoints(directory)[-1][0] == list_checkpoints(str(tmp_path / "ck"))[-1][0] == 8
    finally:
        get_filesystem(directory).delete(directory, recursive=True)
    assert on_hdfs.theta_.tobytes() == local.theta_.tobytes()
    writers = {name for names in users.values() for name in names if name.startswith("checkpoint-")}
    assert len(writers) == 9, users  # checkpoints 0..8, each written in its own thread
    shared = {session: names for session, names in users.items() if len(names) > 1}
    assert shared == {}, shared
