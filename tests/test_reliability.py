"""Crash safety: SIGKILL and rerun, crash leftovers, corrupt checkpoints, the directory lock, warm start,
failing map tasks and an unreachable WebHDFS, each through the ``mrtrain`` command or the public API."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import hdfs
import numpy as np
import pytest
from numpy.testing import assert_allclose

from mrtrain.cli import main
from mrtrain.storage import hdfs_fs
from mrtrain.storage.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    remove_temporaries,
)
from mrtrain.storage.lock import LOCK_NAME, CheckpointLockedError, DirectoryLock
from mrtrain.trainer import SettingsMismatchError, Trainer
from tests.datasets import poisson_data, reference_data, write

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ["--model", "logistic", "--optimizer", "lbfgs", "--l2", "0.01", "--tol", "0", "--gtol", "0",
         "--max-iter", "30", "--runner", "inline", "--json", "--no-metrics"]
RESULT_KEYS = ("coefficients", "intercept", "iterations", "passes", "objective", "converged", "stop_reason")


def cli(*args, env=None):
    """``mrtrain`` in a subprocess (``-q``: no progress lines)."""
    return subprocess.run([sys.executable, "-m", "mrtrain", "-q", *args], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, **(env or {})})


def start_cli(*args):
    return subprocess.Popen([sys.executable, "-m", "mrtrain", "-q", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def result_of(completed):
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    return {key: result[key] for key in RESULT_KEYS}


def messages(stderr):
    """The stderr lines, less the warning that a run with ``tol = gtol = 0`` stops on ``max_iter``."""
    return [line for line in stderr.strip().splitlines() if "Training stopped before converging" not in line]


def checkpoint_files(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith("ckpt-"))


def leftovers(directory):
    """Names that a finished run must not leave: temporaries and the lock."""
    return sorted(name for name in os.listdir(directory) if name.startswith(".") or name == LOCK_NAME)


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def breast_cancer(tmp_path_factory):
    """The dataset and the JSON result of an uninterrupted ``mrtrain train`` on it."""
    X, y = reference_data("breast_cancer")
    data = write(tmp_path_factory.mktemp("data") / "bc", X, y, partitions=3)
    reference = result_of(cli("train", data, *TRAIN, "--checkpoint-dir",
                              str(tmp_path_factory.mktemp("ck") / "ck")))
    assert reference["passes"] >= 20
    return data, reference


@pytest.mark.parametrize(("seed", "how"),
                         [(0, "checkpoints"), (1, "checkpoints"), (2, "delay"), (3, "delay")])
def test_sigkill_then_rerun_ends_bitwise_identical(tmp_path, breast_cancer, seed, how):
    data, reference = breast_cancer
    checkpoints = tmp_path / "ck"
    rng = np.random.default_rng(seed)
    target = int(rng.integers(2, reference["passes"] - 2))
    delay = float(rng.uniform(0.5, 2.5))
    command = ("train", data, *TRAIN, "--checkpoint-dir", str(checkpoints))
    process = start_cli(*command)
    started = time.monotonic()
    while process.poll() is None:
        if how == "checkpoints" and checkpoints.is_dir() and len(checkpoint_files(checkpoints)) >= target:
            break
        if how == "delay" and time.monotonic() - started >= delay:
            break
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    written = len(checkpoint_files(checkpoints)) if checkpoints.is_dir() else 0
    assert written < reference["passes"]
    rerun = cli(*command)
    assert result_of(rerun) == reference
    assert leftovers(checkpoints) == []


def test_kill_during_a_checkpoint_write_leaves_only_complete_checkpoints(tmp_path):
    """A writer of large checkpoints is killed while a temporary file exists: every visible checkpoint
    loads, the temporaries are ignored by loading and removed by :func:`remove_temporaries`."""
    directory = tmp_path / "ck"
    writer = (
        "import sys, numpy as np\n"
        "from mrtrain.storage.checkpoint import save_checkpoint\n"
        "x = np.random.default_rng(0).normal(size=2_000_000)\n"
        "for i in range(1000):\n"
        "    save_checkpoint(sys.argv[1], i, {'x': x + i}, {'i': i}, keep=2)\n"
    )
    killed_mid_write = 0
    for _ in range(5):
        process = subprocess.Popen([sys.executable, "-c", writer, str(directory)], cwd=ROOT)
        while process.poll() is None:
            names = os.listdir(directory) if directory.is_dir() else []
            if any(name.startswith(".ckpt-") for name in names) and any(n.startswith("ckpt-") for n in names):
                os.kill(process.pid, signal.SIGKILL)
                break
        process.wait()
        temporaries = [name for name in os.listdir(directory) if name.startswith(".ckpt-")]
        killed_mid_write += bool(temporaries)
        for _, uri in list_checkpoints(directory):
            checkpoint = load_checkpoint(uri)
            expected = np.random.default_rng(0).normal(size=1)[0] + checkpoint.iteration
            assert checkpoint.arrays["x"][0] == expected
        removed = remove_temporaries(str(directory))
        assert sorted(Path(uri).name for uri in removed) == sorted(temporaries)
        assert [name for name in os.listdir(directory) if name.startswith(".")] == []
        if killed_mid_write:
            break
    assert killed_mid_write, "no kill landed during a write"


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_crash_leftovers_and_corrupt_newest_checkpoint_through_the_cli(tmp_path, breast_cancer, damage):
    data, reference = breast_cancer
    checkpoints = tmp_path / "ck"
    command = ("train", data, *TRAIN, "--checkpoint-dir", str(checkpoints))
    assert result_of(cli(*command)) == reference
    newest = checkpoints / checkpoint_files(checkpoints)[-1]
    content = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(content[: len(content) // 2])
    else:
        middle = len(content) // 2
        newest.write_bytes(content[:middle] + bytes([content[middle] ^ 0xFF]) + content[middle + 1:])
    leftover = checkpoints / f".{newest.name}.tmp-0123456789ab"
    leftover.write_bytes(content[:100])
    rerun = cli(*command)
    assert result_of(rerun) == reference
    warnings = messages(rerun.stderr)
    assert len(warnings) == 1, rerun.stderr
    assert f"skipping invalid checkpoint {newest}" in warnings[0]
    assert leftovers(checkpoints) == []
    assert load_checkpoint(str(newest)).meta["passes"] == reference["passes"]


def test_a_second_trainer_on_the_same_directory_is_refused(tmp_path, breast_cancer):
    data, _ = breast_cancer
    checkpoints = tmp_path / "ck"
    with DirectoryLock(str(checkpoints)):
        holder = json.loads((checkpoints / LOCK_NAME).read_text())
        refused = cli("train", data, *TRAIN, "--checkpoint-dir", str(checkpoints))
        assert os.listdir(checkpoints) == [LOCK_NAME]
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert set(holder) == {"format", "owner", "host", "pid", "started", "token", "pid_namespace", "pid_start",
                           "lease_s"}
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"mrtrain: error: {checkpoints}: checkpoint directory is locked: held by pid {os.getpid()} of "
        f"{holder['owner']!r} on host {holder['host']!r} since {holder['started']!r}, which is still "
        f"running; if that run is gone, rerun with --break-lock (Python: break_lock=True) or delete "
        f"{checkpoints / LOCK_NAME}"
    ]
    assert refused.stdout == ""
    assert not checkpoints.exists()


def test_concurrent_lockers_exactly_one_wins(tmp_path):
    locker = (
        "import sys, time\n"
        "from mrtrain.storage.lock import CheckpointLockedError, DirectoryLock\n"
        "try:\n"
        "    with DirectoryLock(sys.argv[1]):\n"
        "        print('won', flush=True)\n"
        "        time.sleep(1.5)\n"
        "except CheckpointLockedError:\n"
        "    print('refused')\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", locker, str(tmp_path / "ck")], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outcomes = sorted(process.communicate()[0].strip() for process in processes)
    assert outcomes == ["refused", "refused", "refused", "won"]
    assert not (tmp_path / "ck").exists() or os.listdir(tmp_path / "ck") == []


def write_lock(directory, **fields):
    directory.mkdir(parents=True, exist_ok=True)
    holder = {"format": "mrtrain-lock", "owner": "someone", "host": socket.gethostname(), "pid": dead_pid(),
              "started": "2024-01-02T03:04:05+00:00", "token": "f" * 32, **fields}
    (directory / LOCK_NAME).write_text(json.dumps(holder))
    return holder


def test_stale_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path, breast_cancer):
    data, reference = breast_cancer
    checkpoints = tmp_path / "ck"
    holder = write_lock(checkpoints)
    rerun = cli("train", data, *TRAIN, "--checkpoint-dir", str(checkpoints))
    assert result_of(rerun) == reference
    assert messages(rerun.stderr) == [
        f"WARNING mrtrain.storage.lock: {checkpoints / LOCK_NAME}: taking over the stale lock of pid "
        f"{holder['pid']} of 'someone' on host {holder['host']!r} since '2024-01-02T03:04:05+00:00'"
    ]
    assert leftovers(checkpoints) == []


@pytest.mark.parametrize(
    ("lock", "reason"),
    [
        ({"host": "elsewhere.example"}, "on host 'elsewhere.example' since '2024-01-02T03:04:05+00:00'; a "
                                        "process on another host cannot be checked from here"),
        (None, "the lock file is unreadable (no holder recorded)"),
    ],
)
def test_lock_that_cannot_be_judged_stale_needs_break_lock(tmp_path, breast_cancer, lock, reason):
    data, reference = breast_cancer
    checkpoints = tmp_path / "ck"
    if lock is None:
        checkpoints.mkdir()
        (checkpoints / LOCK_NAME).write_text('{"format": "mrtrain-lo')
    else:
        write_lock(checkpoints, **lock)
    command = ("train", data, *TRAIN, "--checkpoint-dir", str(checkpoints))
    refused = cli(*command)
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert reason in line and "rerun with --break-lock" in line
    assert os.listdir(checkpoints) == [LOCK_NAME]
    broken = cli(*command, "--break-lock")
    assert result_of(broken) == reference
    assert "breaking the lock" in broken.stderr
    assert leftovers(checkpoints) == []


def test_lock_is_released_after_an_error_and_nothing_is_left(tmp_path):
    X, y = poisson_data()
    y[200] = -1.0
    data = write(tmp_path / "d", X, y, partitions=3)
    with pytest.raises(ValueError, match=r"partition 2: .*part-00002.parquet: row 1: column 'label'"):
        Trainer("poisson", checkpoint_dir=str(tmp_path / "ck")).fit(data)
    assert not (tmp_path / "ck").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(ValueError, match=r"row 1: column 'label'"):
        Trainer("poisson", checkpoint_dir=str(existing)).fit(data)
    assert os.listdir(existing) == []


def test_hdfs_lock_uses_create_without_overwrite():
    class Client:
        def __init__(self):
            self.files = {}

        def write(self, path, data, overwrite):
            assert overwrite is False
            if path in self.files:
                raise hdfs.HdfsError("already exists", exception="FileAlreadyExistsException")
            self.files[path] = data

    fs = hdfs_fs.HdfsFileSystem(Client, "http://nn:9870")
    fs.create_exclusive("hdfs://nn/ck/_mrtrain.lock", b"one")
    with pytest.raises(FileExistsError, match="hdfs://nn/ck/_mrtrain.lock"):
        fs.create_exclusive("hdfs://nn/ck/_mrtrain.lock", b"two")
    assert fs.client.files == {"/ck/_mrtrain.lock": b"one"}


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    X, y = reference_data("diabetes")
    return write(tmp_path_factory.mktemp("diabetes") / "d", X, y, partitions=2)


def test_resume_with_other_settings_is_refused_through_the_cli(tmp_path, diabetes):
    checkpoints = str(tmp_path / "ck")
    base = ("train", diabetes, "--model", "linear", "--optimizer", "newton", "--runner", "inline",
            "--no-metrics", "--checkpoint-dir", checkpoints)
    assert cli(*base, "--l2", "0.1").returncode == 0
    before = checkpoint_files(checkpoints)
    refused = cli(*base, "--l2", "0.01")
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert "cannot resume, the checkpoint was made with other settings (l2: checkpoint has 0.1, this run " \
           "has 0.01); use another --checkpoint-dir, or pass --warm-start" in line
    assert checkpoint_files(checkpoints) == before


def test_warm_start_starts_from_the_checkpoint_and_reruns_identically(tmp_path, diabetes):
    checkpoints = str(tmp_path / "ck")
    settings = {"optimizer": "lbfgs", "tol": 0.0, "gtol": 1e-7, "max_iter": 500, "runner": "inline"}
    first = Trainer("linear", l2=0.1, checkpoint_dir=checkpoints, **settings).fit(diabetes)
    old = [iteration for iteration, _ in list_checkpoints(checkpoints)]
    with pytest.raises(SettingsMismatchError, match=r"l2: checkpoint has 0.1, this run has 0.001"):
        Trainer("linear", l2=0.001, checkpoint_dir=checkpoints, **settings).fit(diabetes)
    warm = Trainer("linear", l2=0.001, checkpoint_dir=checkpoints, warm_start=True, **settings).fit(diabetes)
    cold = Trainer("linear", l2=0.001, **settings).fit(diabetes)
    assert warm.converged_ and cold.converged_
    assert_allclose(warm.coef_, cold.coef_, rtol=1e-5)
    assert warm.history_[0] == pytest.approx(first.objective_ - 0.05 * np.sum(first.coef_ ** 2) + 0.0005 *
                                             np.sum(first.coef_ ** 2), rel=1e-12)
    new = [iteration for iteration, _ in list_checkpoints(checkpoints)][len(old):]
    assert new == list(range(old[-1] + 1, old[-1] + 1 + warm.n_passes_))
    origin = latest_checkpoint(checkpoints).meta["warm_start"]
    assert origin["iteration"] == old[-1] and origin["settings"]["l2"] == 0.1
    # A kill after a few passes of the warm-started run: its newest checkpoints are gone.
    for _, uri in list_checkpoints(checkpoints)[len(old) + 3:]:
        os.unlink(uri)
    rerun = Trainer("linear", l2=0.001, checkpoint_dir=checkpoints, warm_start=True, **settings).fit(diabetes)
    assert rerun.theta_.tobytes() == warm.theta_.tobytes() and rerun.history_ == warm.history_


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fit_intercept": False}, SettingsMismatchError,
         r"cannot warm-start, the parameters have another layout \(fit_intercept: checkpoint has True"),
        ({"model": "poisson"}, SettingsMismatchError, r"another layout \(model: checkpoint has 'linear'"),
    ],
)
def test_warm_start_refuses_another_parameter_layout(tmp_path, kwargs, error, match):
    X, y = poisson_data()
    data = write(tmp_path / "d", X, y, partitions=2)
    checkpoints = str(tmp_path / "ck")
    Trainer("linear", max_iter=2, checkpoint_dir=checkpoints).fit(data)
    settings = {"model": "linear", "max_iter": 2, "checkpoint_dir": checkpoints, "warm_start": True, **kwargs}
    with pytest.raises(error, match=match):
        Trainer(settings.pop("model"), **settings).fit(data)


def test_warm_start_needs_a_checkpoint(tmp_path, diabetes):
    with pytest.raises(FileNotFoundError, match=r"ck: warm start needs a valid checkpoint to start from"):
        Trainer("linear", checkpoint_dir=str(tmp_path / "ck"), warm_start=True).fit(diabetes)
    assert not (tmp_path / "ck").exists()
    with pytest.raises(ValueError, match=r"'warm_start' parameter needs a 'checkpoint_dir'"):
        Trainer("linear", warm_start=True).fit(diabetes)


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_failing_mapper_is_one_line_naming_the_partition(tmp_path, runner):
    X, y = reference_data("iris")
    data = write(tmp_path / "d", X, y, partitions=1)
    result = cli("train", data, "--model", "softmax", "--runner", runner, "--checkpoint-dir",
                 str(tmp_path / "ck"), env={"MRTRAIN_FAULT_FAIL_PARTITION": "0"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"mrtrain: error: a MapReduce job failed: partition 0 ({data}/part-00000.parquet): RuntimeError: "
        f"failing the first attempt on purpose (MRTRAIN_FAULT_FAIL_PARTITION)"
    ]
    assert result.stdout == ""
    assert not (tmp_path / "ck").exists()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("command", ["ingest", "train", "checkpoint"])
def test_unreachable_webhdfs_is_retried_a_bounded_number_of_times(tmp_path, monkeypatch, caplog, capsys,
                                                                   command):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MRTRAIN_WEBHDFS_URL", url)
    monkeypatch.setattr(hdfs_fs, "BACKOFF_SECONDS", 0.01)
    source = tmp_path / "d.csv"
    source.write_text("x,label\n1,0\n2,1\n")
    if command == "ingest":
        argv, uri = ["ingest", str(source), "hdfs://nn/data/d"], "hdfs://nn/data/d"
    elif command == "train":
        argv, uri = ["train", "hdfs://nn/data/d", "--model", "linear"], "hdfs://nn/data/d"
    else:
        assert main(["-q", "ingest", str(source), str(tmp_path / "ds")]) == 0
        argv = ["train", str(tmp_path / "ds"), "--model", "linear", "--checkpoint-dir", "hdfs://nn/ck"]
        uri = "hdfs://nn/ck"
    capsys.readouterr()
    before = sorted(p.name for p in tmp_path.iterdir())
    with caplog.at_level(logging.WARNING, logger="mrtrain.storage.hdfs_fs"):
        assert main(["-q", *argv, "--runner", "inline"] if command != "ingest" else ["-q", *argv]) == 2
    retries = [r for r in caplog.records if r.name == "mrtrain.storage.hdfs_fs"]
    assert len(retries) == hdfs_fs.ATTEMPTS - 1
    assert all(f"attempt {i + 1}/{hdfs_fs.ATTEMPTS} failed" in r.getMessage() for i, r in enumerate(retries))
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"mrtrain: error: {uri}")
    assert f"WebHDFS at {url} unreachable after {hdfs_fs.ATTEMPTS} attempts" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_lock_object_refuses_and_releases(tmp_path):
    with DirectoryLock(str(tmp_path)) as held:
        with pytest.raises(CheckpointLockedError, match=r"which is still running"):
            DirectoryLock(str(tmp_path)).acquire()
        assert held.held
    assert os.listdir(tmp_path) == []
