"""The estimators' copy of their training data (``mrtrain-estimator-<pid>-...``) is swept after a SIGKILL.

``fit`` on arrays writes the rows to a temporary dataset and removes it afterwards, also on error; a
process killed outright cannot, and the copy (a full copy of the user's data) used to stay for ever. The
next fit now removes it the way launchers remove dead runs' staging directories: same user, same host,
and the recorded process gone or its pid given to a process that started at another time.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from mrtrain.estimators import LinearRegression
from mrtrain.storage.lock import process_start

#: The estimators' copies: ``<tempdir>/mrtrain-estimator-<pid>-<random>``, holding a marker file.
ESTIMATOR_PREFIX = "mrtrain-estimator-"
STAGING_MARKER = "_owner.json"

#: A fit that is killed by SIGKILL (``kill``) or waits to be (``wait``) once its data copy is written.
FIT = """
import os, signal, sys, time
import numpy as np
from mrtrain.estimators import LinearRegression

class Stopped(LinearRegression):
    def _train(self, data):
        if sys.argv[1] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(600)

X = np.random.default_rng(0).normal(size=(50, 3))
Stopped(partitions=2).fit(X, X.sum(axis=1))
"""


@pytest.fixture
def tmpdir_root(tmp_path, monkeypatch):
    """A private temporary-file root for this process and the children it starts."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setenv("TMPDIR", str(root))
    return root


def copies(root):
    return sorted(name for name in os.listdir(root) if name.startswith(ESTIMATOR_PREFIX))


def start_fit(root, how):
    """A child process fitting an estimator; returned once its data copy is on disk."""
    child = subprocess.Popen([sys.executable, "-c", FIT, how], cwd=os.path.dirname(os.path.dirname(__file__)))
    deadline = time.monotonic() + 120
    while not any(name.startswith(f"{ESTIMATOR_PREFIX}{child.pid}-") and
                  os.path.isdir(os.path.join(root, name, "data")) for name in os.listdir(root)):
        assert time.monotonic() < deadline, "the fit did not start"
        time.sleep(0.05)
    return child


def fit_here():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    model = LinearRegression(partitions=2).fit(X, X @ np.array([1.0, -2.0, 3.0]) + 0.5)
    np.testing.assert_allclose(model.coef_, [1.0, -2.0, 3.0], rtol=1e-6)


def test_a_killed_fit_leaves_its_copy_to_the_next_fit(tmpdir_root):
    killed, alive = start_fit(tmpdir_root, "kill"), start_fit(tmpdir_root, "wait")
    try:
        assert killed.wait() == -signal.SIGKILL
        left = [name for name in copies(tmpdir_root) if name.startswith(f"{ESTIMATOR_PREFIX}{killed.pid}-")]
        assert len(left) == 1  # the SIGKILL left it behind
        live = [name for name in copies(tmpdir_root) if name.startswith(f"{ESTIMATOR_PREFIX}{alive.pid}-")]
        fit_here()
        # The dead process's copy is gone, the live process's is kept, and this fit removed its own.
        assert copies(tmpdir_root) == live
    finally:
        alive.kill()
        alive.wait()


def write_copy(root, pid, suffix, **marker):
    path = root / f"{ESTIMATOR_PREFIX}{pid}-{suffix}"
    (path / "data").mkdir(parents=True)
    (path / STAGING_MARKER).write_text(json.dumps({"format": "mrtrain-staging", "host": socket.gethostname(),
                                                    "pid": pid, **marker}))
    return path


def test_a_reused_pid_does_not_keep_a_dead_fits_copy(tmpdir_root):
    """A marker naming a live pid with another start time is a dead process's whose pid was reused;
    one naming this process with its own start time, or another host, is kept."""
    reused = write_copy(tmpdir_root, os.getppid(), "reused", start=process_start(os.getppid()) + 1)
    own = write_copy(tmpdir_root, os.getpid(), "own", start=process_start(os.getpid()))
    other_host = write_copy(tmpdir_root, os.getppid(), "remote", host="elsewhere.example", start=0)
    fit_here()
    assert not reused.exists() and own.exists() and other_host.exists()
