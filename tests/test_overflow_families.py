"""Overflow outside the GLMs: k-means, naive Bayes and the MLP refuse float64 overflow as the GLMs do, with
one line ending in the same advice (:data:`mrtrain.engine.overflow.RESCALE_ADVICE`); a checkpoint a reader
would skip is never written; a reader that falls back to an older checkpoint names the one it uses."""

import json
import logging

import numpy as np
import pytest

from mrtrain.engine.overflow import RESCALE_ADVICE, OverflowDataError
from mrtrain.fitted import FittedModel, validate_new_checkpoint
from mrtrain.storage.checkpoint import checkpoint_name, load_checkpoint, save_checkpoint
from mrtrain.storage.checkpoint_writer import CheckpointWriter
from mrtrain.trainer import Trainer

from .command import run, tree
from .datasets import write


def blobs(seed=0, n=120, d=3, scale=1.0):
    """Two well-separated blobs, labels 0 and 1, the features multiplied by ``scale``."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, d)) + 4.0 * y[:, None]
    return X * scale, y.astype(float)


# (model options, how the features are made too large): 1e200 squared overflows every sum of squares; naive
# Bayes' multinomial counts overflow in their sums alone.
FAMILIES = {
    "kmeans": (["--model", "kmeans", "--k", "2"], 1e200),
    "gaussian-nb": (["--model", "gaussian-nb"], 1e200),
    "multinomial-nb": (["--model", "multinomial-nb"], 1e307),
    "mlp-relu": (["--model", "mlp", "--layers", "4", "--activation", "relu"], 1e307),
}


def overflowing(tmp_path, family):
    options, scale = FAMILIES[family]
    X, y = blobs(scale=1.0)
    X = np.abs(X) * scale if family == "multinomial-nb" else X * scale
    write(tmp_path / "data", X, y)
    return options


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_refuses_overflow_in_one_line_and_writes_no_checkpoint(tmp_path, capsys, monkeypatch,
                                                                          family):
    options = overflowing(tmp_path, family)
    monkeypatch.chdir(tmp_path)  # as a user types it: relative paths in a scratch directory
    status, out, err = run(capsys, "train", "data", *options, "--checkpoint-dir", "ck")
    assert status == 2 and out == "", err
    assert len(err) == 1 and err[0].startswith(f"mrtrain: error: {tmp_path / 'data'}"), err
    assert RESCALE_ADVICE in err[0], err
    assert "not finite" in err[0], err
    assert not [name for name in tree(tmp_path) if "ckpt-" in name]


@pytest.mark.parametrize("family", ["kmeans", "gaussian-nb", "multinomial-nb"])
def test_the_python_api_raises_the_overflow_error(tmp_path, family):
    options = overflowing(tmp_path, family)
    model = options[1]
    k = {"k": 2} if model == "kmeans" else {}
    with pytest.raises(OverflowDataError, match=RESCALE_ADVICE):
        Trainer(model, checkpoint_dir=str(tmp_path / "ck"), **k).fit(str(tmp_path / "data"))
    assert not list((tmp_path / "ck").glob("ckpt-*"))


def test_kmeans_evaluate_refuses_overflowing_data_instead_of_printing_inf(tmp_path, capsys, monkeypatch):
    X, y = blobs()
    write(tmp_path / "small", X, y)
    write(tmp_path / "huge", X * 1e200, y)
    monkeypatch.chdir(tmp_path)
    status, _, err = run(capsys, "train", "small", "--model", "kmeans", "--k", "2", "--checkpoint-dir", "km")
    assert status == 0, err
    status, out, err = run(capsys, "evaluate", "huge", "--model-dir", "km")
    assert status == 2 and out == "" and len(err) == 1 and err[0].endswith(RESCALE_ADVICE), err


def kmeans_checkpoint(tmp_path):
    X, y = blobs()
    data = write(tmp_path / "d", X, y)
    fitted = Trainer("kmeans", k=2, tol=0, checkpoint_dir=str(tmp_path / "ck")).fit(data)
    assert fitted.n_iter_ >= 2
    return load_checkpoint(str(tmp_path / "ck" / checkpoint_name(fitted.n_iter_)))


@pytest.mark.parametrize("damage", ["history", "centers"])
def test_a_checkpoint_a_reader_would_skip_is_never_written(tmp_path, damage):
    good = kmeans_checkpoint(tmp_path)
    meta = json.loads(json.dumps(good.meta))
    arrays = dict(good.arrays)
    if damage == "history":
        meta["history"][-1] = float("inf")
    else:
        arrays["kmeans.centers"] = arrays["kmeans.centers"] * np.inf
    target = tmp_path / "new"
    name = checkpoint_name(good.iteration).replace(".", r"\.")
    with pytest.raises(OverflowDataError, match=rf"new/{name}: not written: .*{RESCALE_ADVICE}"):
        save_checkpoint(str(target), good.iteration, arrays, meta, validate=validate_new_checkpoint)
    with CheckpointWriter(str(target), validate=validate_new_checkpoint) as writer:
        with pytest.raises(OverflowDataError, match="not written"):
            writer.save(good.iteration, arrays, meta)
    assert not target.exists() or not list(target.iterdir())
    save_checkpoint(str(target), good.iteration, good.arrays, good.meta, validate=validate_new_checkpoint)
    assert load_checkpoint(str(target / checkpoint_name(good.iteration))).meta == good.meta


def test_evaluate_names_the_older_checkpoint_it_falls_back_to(tmp_path, capsys, monkeypatch, caplog):
    last = kmeans_checkpoint(tmp_path).iteration
    newest = tmp_path / "ck" / checkpoint_name(last)
    content = newest.read_bytes()
    newest.write_bytes(content[: len(content) // 2])
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING):
        status, _, err = run(capsys, "evaluate", "d", "--model-dir", "ck")
        assert status == 0, err
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    ck = tmp_path / "ck"  # named as the paths are used: made absolute where they entered
    assert warnings[0].startswith(f"skipping invalid checkpoint {ck / checkpoint_name(last)}: ")
    assert warnings[0].endswith(f"; using {ck / checkpoint_name(last - 1)} (iteration {last - 1}) instead, "
                                "the newest valid checkpoint")
    assert FittedModel.load("ck").n_iter_ == last - 1
