"""Hostile checkpoint directories: renamed, crafted and oversized checkpoints, odd lock files, and the
temporary files of failed and killed jobs. Every case ends in the previous valid checkpoint (with one
warning) or one clear error line, never a traceback, a hang or a leftover."""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mrtrain.fitted import FittedModel, latest_training_checkpoint, validate_checkpoint
from mrtrain.launcher import JobLauncher, make_local_staging
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.storage import checkpoint as checkpoint_module
from mrtrain.storage.checkpoint import (
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from mrtrain.storage.dataset import Dataset
from mrtrain.storage.errors import CheckpointError
from mrtrain.storage.lock import LOCK_NAME, CheckpointLockedError, DirectoryLock, pid_namespace, process_start
from mrtrain.trainer import Trainer
from tests.command import run
from tests.datasets import poisson_data, write

ITERATIONS = 4


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A dataset and the checkpoint directory of ``ITERATIONS`` L-BFGS iterations of a Poisson model."""
    X, y = poisson_data()
    data = write(tmp_path_factory.mktemp("data") / "d", X, y, partitions=2)
    checkpoints = tmp_path_factory.mktemp("ck") / "ck"
    Trainer("poisson", optimizer="lbfgs", max_iter=ITERATIONS, tol=0, gtol=0,
            checkpoint_dir=str(checkpoints)).fit(data)
    assert [it for it, _ in list_checkpoints(str(checkpoints))] == list(range(ITERATIONS + 1))
    return data, checkpoints


@pytest.fixture
def ck(tmp_path, trained):
    """A private copy of the trained checkpoint directory."""
    copy = tmp_path / "ck"
    shutil.copytree(trained[1], copy)
    return copy


def newest(ck):
    return ck / checkpoint_name(ITERATIONS)


def resave(path, *, meta=None, arrays=None, iteration=None):
    """Rewrite checkpoint ``path`` with changed meta or arrays and a valid content checksum."""
    loaded = load_checkpoint(str(path))
    new_meta = meta(dict(loaded.meta)) if meta else loaded.meta
    new_arrays = arrays(dict(loaded.arrays)) if arrays else loaded.arrays
    path.unlink()
    uri = save_checkpoint(str(path.parent), loaded.iteration if iteration is None else iteration,
                          new_arrays, new_meta)
    os.replace(uri, path)


def skipped(caplog):
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]


# 1. Checkpoint names are not trusted.

def test_a_checkpoint_copied_to_a_newer_name_is_skipped_by_every_reader(ck, trained, caplog, capsys):
    fake = ck / checkpoint_name(999_999_999_999)
    shutil.copy(ck / checkpoint_name(1), fake)
    with caplog.at_level(logging.WARNING):
        model = FittedModel.load(str(ck))
    assert model.n_iter_ == ITERATIONS
    assert skipped(caplog) == [f"skipping invalid checkpoint {fake}: iteration: expected 999999999999 (as "
                               f"in the file name), found 1; using {ck / checkpoint_name(ITERATIONS)} "
                               f"(iteration {ITERATIONS}) instead, the newest valid checkpoint"]
    status, out, _ = run(capsys, "inspect", str(ck), "--json")
    assert status == 0 and json.loads(out)["iterations"] == ITERATIONS
    Trainer("poisson", optimizer="lbfgs", max_iter=ITERATIONS + 2, tol=0, gtol=0, checkpoint_dir=str(ck),
            keep_checkpoints=2).fit(trained[0])
    found = [it for it, _ in list_checkpoints(str(ck))]
    assert found == [ITERATIONS + 1, ITERATIONS + 2, 999_999_999_999]
    assert FittedModel.load(str(ck)).n_iter_ == ITERATIONS + 2


@pytest.mark.parametrize("name", ["ckpt-000009.parquet\n", "ckpt-00000\u0669.parquet",
                                  "ckpt-\uff10\uff10\uff10\uff10\uff10\uff19.parquet",
                                  "ckpt-" + "9" * 19 + ".parquet"])
def test_only_plain_checkpoint_names_count(ck, name):
    shutil.copy(newest(ck), ck / name)
    assert [it for it, _ in list_checkpoints(str(ck))] == list(range(ITERATIONS + 1))
    assert latest_training_checkpoint(str(ck)).iteration == ITERATIONS


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_special_file_named_like_a_checkpoint_is_skipped(ck, kind, caplog):
    path = ck / checkpoint_name(ITERATIONS + 1)
    if kind == "directory":
        path.mkdir()
        (path / "x").write_text("x")
    else:
        os.mkfifo(path)
    with caplog.at_level(logging.WARNING):
        assert FittedModel.load(str(ck)).n_iter_ == ITERATIONS
    [message] = skipped(caplog)
    assert message.startswith(f"skipping invalid checkpoint {path}: ") and "regular file" in message


def _craft_shape(path, shape, n_values):
    table = pq.read_table(path)
    metadata = table.schema.metadata
    names = table.column("name").to_pylist()
    shapes = table.column("shape").to_pylist()
    values = table.column("values").to_pylist()
    at = names.index("state.x")
    shapes[at], values[at] = shape, [0.0] * n_values
    crafted = pa.table({"name": names, "shape": pa.array(shapes, pa.list_(pa.int64())),
                        "values": pa.array(values, pa.list_(pa.float64()))})
    pq.write_table(crafted.replace_schema_metadata(metadata), path)


@pytest.mark.parametrize(("shape", "n_values", "reason"), [
    ([2**62, 4], 0, r"array 'state.x': shape \[4611686018427387904, 4\] does not match 0 values"),
    ([2**32, 2**32], 0, r"array 'state.x': shape \[4294967296, 4294967296\] does not match 0 values"),
    ([0, 2**62], 0, r"array 'state.x': shape \[0, 4611686018427387904\]: "),
    ([1] * 40, 1, r"array 'state.x': shape \[1, 1, .*\] does not match 1 values"),
])
def test_overflowing_or_mismatched_shapes_fall_back(ck, shape, n_values, reason, caplog):
    _craft_shape(newest(ck), shape, n_values)
    with pytest.raises(CheckpointError, match=rf"{newest(ck)}: {reason}"):
        load_checkpoint(str(newest(ck)))
    with caplog.at_level(logging.WARNING):
        assert latest_checkpoint(str(ck)).iteration == ITERATIONS - 1


# 2. Checkpoint metadata is not trusted.

def _drop(key):
    def change(meta):
        del meta[key]
        return meta
    return change


def _set(key, value):
    def change(meta):
        meta[key] = value
        return meta
    return change


def _set_setting(key, value):
    def change(meta):
        meta["settings"] = {**meta["settings"], key: value}
        return meta
    return change


@pytest.mark.parametrize(("change", "reason"), [
    (_drop("settings"), "meta field 'settings': expected an object, found no value"),
    (_set("history", [{}]), r"meta field 'history\[0\]': expected a finite number, found \{\}"),
    (_set("history", [1.0, float("nan")]), r"meta field 'history\[1\]': expected a finite number, found NaN"),
    (_set("iteration", None), "meta field 'iteration': expected an int >= 0, found null"),
    (_set("iteration", True), "meta field 'iteration': expected an int >= 0, found true"),
    (_set("iteration", 3), r"meta fields 'checkpoint_base' \+ 'iteration': expected 4 \(the checkpoint's "
                           r"iteration\), found 0 \+ 3"),
    (_set("passes", -1), "meta field 'passes': expected an int >= 0, found -1"),
    (_set("converged", "yes"), "meta field 'converged': expected true or false, found \"yes\""),
    (_set("state_scalars", {}), r"meta field 'state_scalars': expected the keys \['evaluated'\], found \[\]"),
    (_set("state_scalars", {"evaluated": 1.5}), "meta field 'state_scalars.evaluated': expected an int >= 0"),
    (_set("warm_start", {"checkpoint": 1}), "meta field 'warm_start.checkpoint': expected a string"),
    (_set_setting("model", "forest"), r"meta field 'settings.model': expected a string in \[.*'linear', .*"
                                      r"'softmax'\], found \"forest\""),
    (_set_setting("optimizer", None), "meta field 'settings.optimizer': expected a string in"),
    (_set_setting("l2", float("inf")), "meta field 'settings.l2': expected a finite number >= 0, found "
                                       "Infinity"),
    (_set_setting("n_features", 0), "meta field 'settings.n_features': expected an int >= 1, found 0"),
    (_set_setting("classes", [0.0, 1.0]), "meta field 'settings' does not describe a model: Model 'poisson' "
                                          "takes no classes"),
])
def test_bad_meta_falls_back_to_the_previous_checkpoint(ck, change, reason, caplog):
    resave(newest(ck), meta=change)
    with pytest.raises(CheckpointError, match=rf"{newest(ck)}: {reason}"):
        validate_checkpoint(load_checkpoint(str(newest(ck))))
    with caplog.at_level(logging.WARNING):
        model = FittedModel.load(str(ck))
    assert model.n_iter_ == ITERATIONS - 1
    [message] = skipped(caplog)
    assert message.startswith(f"skipping invalid checkpoint {newest(ck)}: ")


@pytest.mark.parametrize(("change", "reason"), [
    (lambda a: {**a, "state.x": np.zeros(7)},
     r"array 'state.x': expected shape \(5,\) for 5 parameters, found \(7,\)"),
    (lambda a: {**a, "state.grad": np.zeros((5, 1))},
     r"array 'state.grad': expected shape \(5,\) for 5 parameters, found \(5, 1\)"),
    (lambda a: {**a, "state.s": np.zeros((2, 5)), "state.y": np.zeros((3, 5))},
     r"array 'state.y': expected the shape of 'state.s' \(2, 5\), found \(3, 5\)"),
    (lambda a: {**a, "state.x": np.array([0, 0, np.nan, 0, 0])},
     r"array 'state.x': expected finite values, found nan at flat index 2"),
    (lambda a: {**a, "state.x": np.array([0, 0, 0, -np.inf, 0])},
     r"array 'state.x': expected finite values, found -inf at flat index 3"),
    (lambda a: {**a, "state.scale": np.float64(np.nan)}, r"array 'state.scale': expected finite values"),
    (lambda a: {k: v for k, v in a.items() if k != "state.grad"}, r"arrays: expected \['state.grad', "),
])
def test_bad_parameter_arrays_fall_back_naming_the_file(ck, change, reason, caplog, capsys):
    resave(newest(ck), arrays=change)
    with caplog.at_level(logging.WARNING):
        assert FittedModel.load(str(ck)).n_iter_ == ITERATIONS - 1
    [message] = skipped(caplog)
    assert message.startswith(f"skipping invalid checkpoint {newest(ck)}: ")
    assert len(message.splitlines()) == 1
    for iteration in range(ITERATIONS):
        (ck / checkpoint_name(iteration)).unlink()
    status, out, err = run(capsys, "inspect", str(ck))
    assert status == 2 and out == ""
    assert err == [f"mrtrain: error: {ck}: no valid checkpoint found"]


def test_trainer_resumes_from_the_newest_valid_checkpoint(ck, trained, caplog):
    resave(newest(ck), meta=_set("history", [{}]))
    with caplog.at_level(logging.INFO, logger="mrtrain"):
        model = Trainer("poisson", optimizer="lbfgs", max_iter=ITERATIONS + 1, tol=0, gtol=0,
                        checkpoint_dir=str(ck)).fit(trained[0])
    assert model.n_iter_ == ITERATIONS + 1
    assert f"resuming from {ck / checkpoint_name(ITERATIONS - 1)} (iteration {ITERATIONS - 1})" in [
        r.getMessage() for r in caplog.records]
    previous = ck / checkpoint_name(ITERATIONS - 1)
    assert skipped(caplog) == [f"skipping invalid checkpoint {newest(ck)}: meta field 'history[0]': expected "
                               f"a finite number, found {{}}; using {previous} (iteration {ITERATIONS - 1}) "
                               "instead, the newest valid checkpoint"]


def test_size_caps(ck, monkeypatch, caplog):
    size = newest(ck).stat().st_size
    monkeypatch.setattr(checkpoint_module, "MAX_CHECKPOINT_BYTES", size - 1)
    with pytest.raises(CheckpointError, match=rf"{newest(ck)}: expected at most {size - 1} bytes, found "
                                              rf"{size}"):
        load_checkpoint(str(newest(ck)))
    monkeypatch.setattr(checkpoint_module, "MAX_CHECKPOINT_BYTES", 2**31)
    resave(newest(ck), meta=_set("padding", "x" * 5000))
    monkeypatch.setattr(checkpoint_module, "MAX_META_BYTES", 4096)
    with pytest.raises(CheckpointError, match=r"meta: expected at most 4096 bytes of JSON, found 5\d\d\d"):
        load_checkpoint(str(newest(ck)))
    with pytest.raises(ValueError, match=r"The 'meta' parameter must be at most 4096 bytes as JSON"):
        save_checkpoint(str(ck), 99, {}, {"padding": "x" * 5000})
    with caplog.at_level(logging.WARNING):
        assert FittedModel.load(str(ck)).n_iter_ == ITERATIONS - 1


def test_deeply_nested_meta_is_an_invalid_checkpoint(ck):
    path = newest(ck)
    table = pq.read_table(path)
    metadata = {**table.schema.metadata, b"mrtrain.meta": b"[" * 100_000}
    pq.write_table(table.replace_schema_metadata(metadata), path)
    with pytest.raises(CheckpointError, match=rf"{path}: meta is not valid JSON: nested too deeply"):
        load_checkpoint(str(path))


@pytest.mark.parametrize(("text", "expected"),
                         [("\u00b2", ">= 0"), ("-1", ">= 0"), ("1" * 19, "<= " + "9" * 18)])
def test_odd_iteration_headers_are_invalid(ck, text, expected):
    path = newest(ck)
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"mrtrain.iteration":
                                                  text.encode()}), path)
    with pytest.raises(CheckpointError, match=rf"{path}: iteration: expected an int {expected}, found"):
        load_checkpoint(str(path))
    with pytest.raises(ValueError, match=r"The 'iteration' parameter must be an int <= 9{18}. Got 10{18}"):
        save_checkpoint(str(ck), 10**18, {}, {})


# 3. Lock files are not trusted.

def _lock_json(**fields):
    holder = {"format": "mrtrain-lock", "owner": "someone", "host": socket.gethostname(), "pid": dead_pid(),
              "started": "2024-01-02T03:04:05+00:00", "token": "f" * 32, **fields}
    return json.dumps(holder)


def _make_lock(path, kind):
    if kind == "dangling symlink":
        path.symlink_to(path.parent / "missing")
    elif kind == "directory":
        path.mkdir()
        (path / "inside").write_text("x")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "nested":
        path.write_text("[" * 4000)
    elif kind == "huge pid":
        path.write_text(_lock_json(pid=10**20))
    elif kind == "pid text":
        path.write_text(_lock_json(pid="42"))
    elif kind == "large":
        path.write_text(_lock_json(owner="x" * 10_000))


@pytest.mark.parametrize(("kind", "problem"), [
    ("dangling symlink", "something that is not a readable file is in the way (a dangling symlink?)"),
    ("directory", "expected a file, found a directory"),
    ("fifo", "expected a regular file, found a FIFO"),
    ("nested", "expected a JSON object, found values nested too deeply"),
    ("huge pid", "field 'pid': expected a process id in [1, 2147483647], found 100000000000000000000"),
    ("pid text", "field 'pid': expected int, found \"42\""),
    ("large", "expected a file of at most 4096 bytes, found 10"),
])
def test_odd_lock_files_are_refused_in_one_line_and_broken_with_break_lock(tmp_path, kind, problem):
    lock_path = tmp_path / LOCK_NAME
    _make_lock(lock_path, kind)
    alarm = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("acquire() hangs"))
    signal.alarm(20)
    try:
        with pytest.raises(CheckpointLockedError) as refused:
            DirectoryLock(str(tmp_path)).acquire()
        [line] = str(refused.value).splitlines()
        assert line.startswith(f"{tmp_path}: checkpoint directory is locked: the lock file is unreadable (no "
                               f"holder recorded): {problem}")
        assert line.endswith(f"rerun with --break-lock (Python: break_lock=True) or delete {lock_path}")
        with DirectoryLock(str(tmp_path), break_lock=True) as lock:
            assert lock.held and json.loads(lock_path.read_text())["token"] == lock.token
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, alarm)
    assert os.listdir(tmp_path) == [] and not os.path.lexists(lock_path)


def test_odd_lock_through_the_cli(tmp_path, trained, capsys):
    ck = tmp_path / "ck"
    ck.mkdir()
    _make_lock(ck / LOCK_NAME, "huge pid")
    command = ("train", trained[0], "--model", "poisson", "--runner", "inline", "--max-iter", "1",
               "--no-metrics", "--checkpoint-dir", str(ck))
    status, out, err = run(capsys, *command)
    assert status == 2 and out == ""
    assert len(err) == 1 and "field 'pid': expected a process id in [1, 2147483647]" in err[0]
    status, out, err = run(capsys, *command, "--break-lock")
    assert status == 0


# 4. Job temporaries never outlive their run.

@pytest.fixture
def tmpdir_root(tmp_path, monkeypatch):
    """A private temporary-file root for this process (mrjob and the launcher use tempfile's)."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_a_failed_job_leaves_no_temporary_files(tmp_path, tmpdir_root, runner):
    X, y = poisson_data()
    y[200] = -1.0
    data = write(tmp_path / "bad", X, y, partitions=2)
    with pytest.raises(Exception, match=r"partition 1: .*column 'label'|Step 1 of 1 failed"):
        Trainer("poisson", runner=runner, max_iter=2).fit(data)
    assert os.listdir(tmpdir_root) == []


def test_staging_is_private_and_holds_mrjobs_temporaries(trained, tmpdir_root):
    dataset = Dataset.open(trained[0])
    spec = {"kind": "poisson", "n_features": dataset.n_features, "classes": None, "fit_intercept": True}
    with JobLauncher(dataset, spec, runner="inline") as launcher:
        staging = launcher.local_staging
        assert os.stat(staging).st_mode & 0o777 == 0o700
        args = launcher._args({}, np.zeros((1, 5)), os.path.join(staging, "job-000000"))
        assert args[args.index("--local-tmp-dir") + 1] == staging
        launcher.sum_vector(MRGradient, np.zeros((1, 5)), {"hessian": 0})
        assert os.listdir(tmpdir_root) == [os.path.basename(staging)]
    assert os.listdir(tmpdir_root) == []


def _marker(pid, host=None, start=None):
    """An owner marker, as a run of ``pid`` writes it (with ``start``: as one started then writes it)."""
    marker = {"format": "mrtrain-staging", "pid": pid, "host": host or socket.gethostname()}
    return marker if start is None else {**marker, "pid_ns": pid_namespace(), "start": start}


def _staging(root, pid, suffix, host=None, marker=True, start=None):
    path = root / f"mrtrain-job-{pid}-{suffix}"
    path.mkdir()
    (path / "params.npy").write_bytes(b"x" * 100)
    if marker:
        (path / "_owner.json").write_text(json.dumps(_marker(pid, host, start)))
    return path


def test_the_next_run_removes_only_dead_runs_leftovers(tmpdir_root, tmp_path):
    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal\nfrom mrtrain.launcher import make_local_staging\n"
         "make_local_staging()\nos.kill(os.getpid(), signal.SIGKILL)"],
        env={**os.environ, "TMPDIR": str(tmpdir_root)}, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert killed.returncode == -signal.SIGKILL
    [left] = os.listdir(tmpdir_root)
    pid = dead_pid()
    kept = [
        _staging(tmpdir_root, os.getpid(), "live"),
        _staging(tmpdir_root, os.getpid(), "livestarted", start=process_start(os.getpid())),
        _staging(tmpdir_root, pid, "elsewhere", host="elsewhere.example"),
        _staging(tmpdir_root, pid, "nomarker", marker=False),
        _staging(tmpdir_root, os.getppid(), "parent"),
    ]
    target = _staging(tmp_path, pid, "target")
    (tmpdir_root / target.name.replace("target", "symlink")).symlink_to(target)
    dead = _staging(tmpdir_root, pid, "dead")
    # This pid, but a process started at another time wrote the marker: that process is gone.
    reused = _staging(tmpdir_root, os.getpid(), "reused", start=process_start(os.getpid()) - 1)
    staging = make_local_staging()
    assert sorted(os.listdir(tmpdir_root)) == sorted(
        [p.name for p in kept] + [target.name.replace("target", "symlink"), os.path.basename(staging)])
    assert not dead.exists() and not reused.exists() and left not in os.listdir(tmpdir_root)
    assert target.exists()
    shutil.rmtree(staging)


@pytest.mark.hadoop
def test_the_next_run_on_hdfs_removes_only_dead_runs_staging_directories(hadoop_cluster, tmp_path):
    """A run on HDFS data stages under /user/<user>/tmp/mrtrain/<id>; a run killed there leaves it. The
    next launcher over HDFS removes it, judged as local leftovers are (host, pid, its start time), and
    keeps a live run's, another host's and one without a marker."""
    from mrtrain.launcher import STAGING_MARKER, hdfs_staging_dir, hdfs_staging_root
    from mrtrain.storage.filesystem import get_filesystem, join

    url = hadoop_cluster["MRTRAIN_HDFS_URL"]
    fs = get_filesystem(hdfs_staging_root(url))
    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal\nfrom mrtrain.launcher import make_hdfs_staging\n"
         f"print(make_hdfs_staging({url!r}), flush=True)\nos.kill(os.getpid(), signal.SIGKILL)"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = killed.stdout.strip()
    assert fs.exists(join(left, STAGING_MARKER))

    def staged(marker):
        path = hdfs_staging_dir(url)
        fs.write_bytes(join(path, "partitions.txt"), b"0\tx\n")
        if marker is not None:
            fs.write_bytes(join(path, STAGING_MARKER), json.dumps(marker).encode())
        return path

    pid, me = dead_pid(), os.getpid()
    kept = [staged(_marker(me, start=process_start(me))), staged(_marker(pid, host="elsewhere.example")),
            staged(None)]
    dead = [staged(_marker(pid)), staged(_marker(me, start=process_start(me) - 1))]
    X, y = poisson_data()
    home = f"{url}/user/{hadoop_cluster['MRTRAIN_HDFS_USER']}"
    data = write(f"{home}/mrtrain-tests/sweep-{os.urandom(4).hex()}", X, y, partitions=2)
    dataset = Dataset.open(data)
    spec = {"kind": "poisson", "n_features": dataset.n_features, "classes": None, "fit_intercept": True}
    try:
        with JobLauncher(dataset, spec, runner="hadoop") as launcher:
            assert json.loads(fs.read_bytes(join(launcher.staging, STAGING_MARKER)))["pid"] == me
            assert [fs.exists(path) for path in [left, *dead]] == [False] * 3
            assert [fs.exists(path) for path in kept] == [True] * 3
        assert not fs.exists(launcher.staging)
    finally:
        for path in [*kept, data]:
            fs.delete(path, recursive=True)
