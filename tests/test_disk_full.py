"""A full disk: every command's one-line error names the file it was writing.

Python raises a failed ``write`` or ``fsync`` (``ENOSPC``) without a file name, so ``train``, ``predict``,
``report`` and ``ingest`` used to print only ``[Errno 28] No space left on device``. The disk here is a real
small tmpfs (mounting it needs root: skipped otherwise).
"""

import os
import subprocess

import numpy as np
import pytest

from mrtrain.storage.checkpoint import list_checkpoints, load_checkpoint
from tests.command import run
from tests.datasets import write

#: Size of the full filesystem, and the room left on it for the command under test.
SIZE_KIB, FREE_KIB = 256, 12


@pytest.fixture
def full(tmp_path, monkeypatch):
    """A scratch working directory with a dataset ``ds``, a model ``ck`` and ``full``: a tmpfs with about
    ``FREE_KIB`` KiB free."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 4))
    write(tmp_path / "ds", X, (X.sum(axis=1) > 0).astype(float), partitions=2)
    np.savetxt("p.csv", np.column_stack([X, X[:, 0] > 0]), delimiter=",", header="a,b,c,d,label",
               comments="", fmt="%.17g")
    mount = tmp_path / "full"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_KIB}k", "tmpfs", str(mount)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        (mount / "filler").write_bytes(b"\0" * ((SIZE_KIB - FREE_KIB) * 1024))
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def one_line_naming(err, path):
    assert len(err) == 1, err
    assert "No space left on device" in err[0] and str(path) in err[0], err[0]
    return err[0]


def test_ingest(full, capsys):
    status, _, err = run(capsys, "ingest", "p.csv", "full/ds2", "--partitions", "2")
    assert status == 2
    one_line_naming(err, full)
    assert sorted(os.listdir(full)) == ["filler"]  # nothing partial


def test_train_keeps_earlier_checkpoints(full, capsys):
    status, _, err = run(capsys, "train", "ds", "--model", "logistic", "--runner", "inline",
                         "--checkpoint-dir", "full/ck", "--max-iter", "50", "--tol", "0", "--gtol", "0",
                         "--no-metrics")
    assert status == 2
    line = one_line_naming(err, full / "ck")
    assert "ckpt-" in line
    written = list_checkpoints(str(full / "ck"))
    assert written  # some fitted before the disk filled, each valid
    for iteration, uri in written:
        assert load_checkpoint(uri).meta["iteration"] == iteration


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_predict(full, capsys, runner):
    run(capsys, "train", "ds", "--model", "logistic", "--runner", "inline", "--checkpoint-dir", "ck",
        "--max-iter", "3", "--no-metrics")
    status, _, err = run(capsys, "predict", "ds", "--model-dir", "ck", "--output", "full/pred", "--runner",
                         runner)
    assert status == 1
    one_line_naming(err, full)
    assert sorted(os.listdir(full)) == ["filler"]


def test_report(full, capsys):
    run(capsys, "train", "ds", "--model", "logistic", "--runner", "inline", "--checkpoint-dir", "ck",
        "--max-iter", "3", "--no-metrics")
    status, _, err = run(capsys, "report", "ck", "--output", "full/rep.html")
    assert status == 2
    one_line_naming(err, full / "rep.html")
    assert sorted(os.listdir(full)) == ["filler"]
