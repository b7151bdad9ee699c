"""Naive Bayes (multinomial, Bernoulli, Gaussian) against scikit-learn, runners, checkpoints, CLI, errors.

A naive Bayes fit is closed-form: the same statistics summed in another order differ only in the last
bits, so parameters and probabilities are compared to scikit-learn at 1e-10 (their rounding errors are
near 1e-15 relative; log-probabilities of ~10 in magnitude keep that to ~1e-13 absolute).
"""

import json

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.metrics import accuracy_score, log_loss
from sklearn.naive_bayes import BernoulliNB, GaussianNB, MultinomialNB

from mrtrain import FittedModel, Trainer
from mrtrain.cli import model_summary
from mrtrain.engine.naive_bayes import class_statistics, merge_statistics
from mrtrain.engine.registry import make_model
from mrtrain.launcher import JobLauncher
from mrtrain.trainer import SettingsMismatchError
from tests.command import evaluate_json, predict_tables, run
from tests.command import probabilities as probability_columns
from tests.datasets import write

CLASSES = [1.0, 3.0, 5.0]


def nb_data(kind, seed=0, n=300, d=5, offset=0.0):
    """Features suited to ``kind`` (counts, signed values, or Gaussian around ``offset``), labels in
    :data:`CLASSES` whose class-wise feature distributions differ, and weights."""
    rng = np.random.default_rng(seed)
    y = rng.choice(CLASSES, size=n)
    shift = (y[:, None] == np.array(CLASSES)).astype(float) @ rng.uniform(0.5, 3.0, size=(3, d))
    if kind == "multinomial-nb":
        X = rng.poisson(shift).astype(float)
    elif kind == "bernoulli-nb":
        X = rng.normal(size=(n, d)) + shift - 1.5
    else:
        X = offset + rng.normal(size=(n, d)) * (0.5 + shift) + shift
    return X, y, rng.uniform(0.2, 3.0, size=n)


def reference(kind, smoothing):
    if kind == "multinomial-nb":
        return MultinomialNB(alpha=smoothing)
    if kind == "bernoulli-nb":
        return BernoulliNB(alpha=smoothing)
    return GaussianNB(var_smoothing=smoothing)


KINDS = ("multinomial-nb", "bernoulli-nb", "gaussian-nb")


@pytest.mark.parametrize("smoothing", [None, 0.3])
@pytest.mark.parametrize("kind", KINDS)
def test_probabilities_match_sklearn_with_sample_weights(tmp_path, kind, smoothing):
    X, y, w = nb_data(kind)
    train, held_out = slice(0, 240), slice(240, None)
    fitted = Trainer(kind, smoothing=smoothing).fit(write(tmp_path / "data", X[train], y[train], w[train]))
    default = {"gaussian-nb": 1e-9}.get(kind, 1.0)
    expected = reference(kind, default if smoothing is None else smoothing).fit(
        X[train], y[train], sample_weight=w[train]
    )
    assert fitted.classes_ == CLASSES == expected.classes_.tolist()
    assert_allclose(fitted.predict_proba(X[held_out]), expected.predict_proba(X[held_out]), rtol=1e-10,
                    atol=1e-14)
    assert_array_equal(fitted.predict(X[held_out]), expected.predict(X[held_out]))
    assert_allclose(fitted.intercept_, expected.class_log_prior_ if kind != "gaussian-nb"
                    else np.log(expected.class_prior_), rtol=1e-12)
    if kind == "gaussian-nb":
        d = X.shape[1]
        assert_allclose(fitted.coef_[:, :d], expected.theta_, rtol=1e-12)
        assert_allclose(fitted.coef_[:, d:], expected.var_, rtol=1e-10)
    else:
        assert_allclose(fitted.coef_, expected.feature_log_prob_, rtol=1e-12)
    assert (fitted.n_iter_, fitted.n_passes_, fitted.converged_) == (1, 1, True)
    assert fitted.settings["smoothing"] == (default if smoothing is None else smoothing)


def test_gaussian_variances_stay_accurate_when_the_mean_dwarfs_the_spread(tmp_path):
    # Features near 1e6 with unit spread: Σx² - (Σx)²/n would cancel ~12 of 16 digits; the pairwise
    # (count, mean, M2) merge keeps the variances to the precision of a direct two-pass computation.
    X, y, w = nb_data("gaussian-nb", seed=3, offset=1e6)
    fitted = Trainer("gaussian-nb").fit(write(tmp_path / "data", X, y, w, partitions=4))
    expected = GaussianNB().fit(X, y, sample_weight=w)
    d = X.shape[1]
    assert_allclose(fitted.coef_[:, d:], expected.var_, rtol=1e-9)
    assert_allclose(fitted.predict_proba(X[:50]), expected.predict_proba(X[:50]), rtol=1e-8, atol=1e-12)


def test_merging_block_statistics_equals_the_whole_block():
    X, y, w = nb_data("gaussian-nb", seed=4, n=90)
    model = make_model("gaussian-nb", X.shape[1], classes=CLASSES)
    labels = model.encode_labels(y)
    whole = class_statistics(model, X, labels, w)
    cuts = [(0, 0), (0, 5), (5, 5), (5, 60), (60, 90)]  # empty blocks and a block missing classes
    merged = merge_statistics(model, [class_statistics(model, X[a:b], labels[a:b], w[a:b]) for a, b in cuts])
    assert_allclose(merged, whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["multinomial-nb", "bernoulli-nb"])
def test_sparse_counts_give_the_dense_model(tmp_path, kind):
    X, y, w = nb_data(kind, seed=5)
    X[X < 1.0] = 0.0 if kind == "multinomial-nb" else -1.0  # negative values binarize to 0 like zeros
    dense = Trainer(kind).fit(write(tmp_path / "dense", X, y, w))
    sparse = Trainer(kind).fit(write(tmp_path / "sparse", sp.csr_array(X), y, w))
    assert_allclose(sparse.theta_, dense.theta_, rtol=1e-12)
    expected = reference(kind, 1.0).fit(sp.csr_matrix(X), y, sample_weight=w)
    assert_allclose(sparse.predict_proba(sp.csr_array(X)), expected.predict_proba(X), rtol=1e-10, atol=1e-14)


def test_local_runner_is_bitwise_inline_and_a_rerun_takes_no_pass(tmp_path, monkeypatch):
    X, y, w = nb_data("gaussian-nb", seed=6, n=200)
    data = write(tmp_path / "data", X, y, w, partitions=3)
    inline = Trainer("gaussian-nb").fit(data)
    checkpoints = tmp_path / "model"
    local = Trainer("gaussian-nb", runner="local", checkpoint_dir=str(checkpoints)).fit(data)
    assert local.theta_.tobytes() == inline.theta_.tobytes()
    files = sorted(checkpoints.glob("ckpt-*"))
    assert [path.name for path in files] == ["ckpt-000001.parquet"]
    stamp = files[0].stat().st_mtime_ns

    def no_pass(*args, **kwargs):
        raise AssertionError("a job was run")

    monkeypatch.setattr(JobLauncher, "run", no_pass)
    rerun = Trainer("gaussian-nb", checkpoint_dir=str(checkpoints)).fit(data)
    assert rerun.theta_.tobytes() == inline.theta_.tobytes()
    assert files[0].stat().st_mtime_ns == stamp
    summary = model_summary({**rerun.to_dict(), "checkpoints": [1], "history": []})
    assert f"variance of feature {int(np.argmax(rerun.coef_[:, X.shape[1]:]) % X.shape[1])}" in summary


def test_rerun_with_other_smoothing_is_refused(tmp_path):
    X, y, w = nb_data("multinomial-nb", seed=7, n=60)
    data = write(tmp_path / "data", X, y)
    Trainer("multinomial-nb", checkpoint_dir=str(tmp_path / "model")).fit(data)
    with pytest.raises(SettingsMismatchError, match=r"smoothing: checkpoint has 1\.0, this run has 2\.0"):
        Trainer("multinomial-nb", smoothing=2.0, checkpoint_dir=str(tmp_path / "model")).fit(data)


def test_cli_train_evaluate_predict_inspect(tmp_path, capsys):
    X, y, w = nb_data("multinomial-nb", seed=8, n=150)
    data = write(tmp_path / "data", sp.csr_array(X), y, w)
    model_dir = str(tmp_path / "model")
    status, out, err = run(capsys, "train", data, "--model", "multinomial-nb", "--smoothing", "0.5",
                           "--runner", "inline", "--checkpoint-dir", model_dir, "--json")
    assert status == 0, err
    result = json.loads(out)
    assert (result["model"], result["iterations"], result["passes"]) == ("multinomial-nb", 1, 1)
    expected = MultinomialNB(alpha=0.5).fit(X, y, sample_weight=w)
    assert_allclose(result["coefficients"], expected.feature_log_prob_, rtol=1e-12)
    assert_allclose(result["intercept"], expected.class_log_prior_, rtol=1e-12)
    metrics = result["metrics"]
    probabilities = expected.predict_proba(X)
    assert metrics["log_loss"] == pytest.approx(log_loss(y, probabilities, sample_weight=w), rel=1e-10)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, expected.predict(X), sample_weight=w),
                                                rel=1e-12)

    assert evaluate_json(capsys, data, model_dir, "--runner", "inline") == metrics

    tables = predict_tables(capsys, data, model_dir, tmp_path / "predictions", "--runner", "inline")
    assert tables[0].column_names[:3] == ["row", "label", "prediction"]
    written = probability_columns(tables)
    assert_allclose(written, probabilities, rtol=1e-10, atol=1e-14)

    status, out, err = run(capsys, "inspect", model_dir, "--json")
    assert status == 0, err
    summary = json.loads(out)
    assert (summary["model"], summary["settings"]["smoothing"], summary["checkpoints"]) == (
        "multinomial-nb", 0.5, [1])
    assert_allclose(FittedModel.load(model_dir).predict_proba(X), probabilities, rtol=1e-10, atol=1e-14)
    status, out, err = run(capsys, "inspect", model_dir)
    assert status == 0, err
    assert "smoothing    0.5 (naive Bayes)" in out.splitlines()


def test_negative_count_is_refused_naming_partition_row_and_feature(tmp_path, capsys):
    X, y, _ = nb_data("multinomial-nb", seed=9, n=30)
    X[17, 3] = -2.0
    data = write(tmp_path / "data", X, y, partitions=3)  # 10 rows each: row 17 is row 8 of partition 1
    model_dir = tmp_path / "model"
    status, out, err = run(capsys, "train", data, "--model", "multinomial-nb", "--runner", "inline",
                           "--checkpoint-dir", str(model_dir))
    assert status == 2 and out == ""
    assert err == [f"mrtrain: error: partition 1: {data}/part-00001.parquet: row 8: feature 3: expected a "
                   "count >= 0 for model 'multinomial-nb', found -2.0"]
    assert not model_dir.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--model", "multinomial-nb", "--optimizer", "lbfgs"],
         "The 'model' parameter 'multinomial-nb' is fitted in one pass and has no optimizer or penalty. "
         "Got --optimizer lbfgs instead."),
        (["--model", "bernoulli-nb", "--l2", "0.1", "--l1", "0"],
         "The 'model' parameter 'bernoulli-nb' is fitted in one pass and has no optimizer or penalty. "
         "Got --l1 0.0, --l2 0.1 instead."),
        (["--model", "gaussian-nb", "--smoothing", "-1"],
         "The 'smoothing' parameter must be a finite float > 0. Got -1.0 instead."),
        (["--model", "multinomial-nb", "--smoothing", "0"],
         "The 'smoothing' parameter must be a finite float > 0. Got 0.0 instead."),
        (["--model", "logistic", "--smoothing", "1"],
         "The 'smoothing' parameter applies to the naive Bayes models ['multinomial-nb', 'bernoulli-nb', "
         "'gaussian-nb'] only. Got smoothing=1.0 for model 'logistic' instead."),
        (["--model", "gaussian-nb", "--standardize"],
         "The 'standardize' parameter does not apply to model 'gaussian-nb' (naive Bayes is fitted in one "
         "pass: no penalty to standardize for); leave it at False. Got 'spark' instead."),
        (["--model", "multinomial-nb", "--max-iter", "5"],
         "The 'max_iter' parameter does not apply to model 'multinomial-nb' (naive Bayes is fitted in one "
         "pass: no iterations); leave it at 100. Got 5 instead."),
    ],
)
def test_bad_settings_are_refused_in_one_line(tmp_path, capsys, options, message):
    X, y, _ = nb_data("multinomial-nb", seed=10, n=30)
    data = write(tmp_path / "data", X, y)
    model_dir = tmp_path / "model"
    status, out, err = run(capsys, "train", data, *options, "--checkpoint-dir", str(model_dir))
    assert status == 2 and out == ""
    assert err == [f"mrtrain: error: {message}"]
    assert not model_dir.exists()


def test_gaussian_on_a_sparse_dataset_is_refused(tmp_path):
    X, y, _ = nb_data("multinomial-nb", seed=11, n=30)
    data = write(tmp_path / "data", sp.csr_array(X), y)
    with pytest.raises(ValueError, match=r"'gaussian-nb' needs a dense dataset .* Got the 'csr' dataset .* "
                                         r"use 'multinomial-nb' or 'bernoulli-nb'\."):
        Trainer("gaussian-nb", checkpoint_dir=str(tmp_path / "model")).fit(data)
    assert not (tmp_path / "model").exists()
    with pytest.raises(ValueError, match=r"'warm_start' parameter does not apply to model 'bernoulli-nb'"):
        Trainer("bernoulli-nb", warm_start=True, checkpoint_dir=str(tmp_path / "model")).fit(data)


def test_gaussian_model_refuses_to_evaluate_or_predict_a_sparse_dataset(tmp_path, capsys):
    X, y, _ = nb_data("gaussian-nb", seed=12, n=30)
    model_dir = str(tmp_path / "model")
    Trainer("gaussian-nb", checkpoint_dir=model_dir).fit(write(tmp_path / "dense", X, y))
    sparse = write(tmp_path / "sparse", sp.csr_array(X), y)
    message = [f"mrtrain: error: {sparse}: expected a dense dataset for model 'gaussian-nb', found layout "
               "'csr'"]
    assert run(capsys, "evaluate", sparse, "--model-dir", model_dir, "--runner", "inline") == (2, "", message)
    output = tmp_path / "predictions"
    status = run(capsys, "predict", sparse, "--model-dir", model_dir, "--output", str(output))
    assert status == (2, "", message)
    assert not output.exists()


@pytest.mark.parametrize(("kind", "reference"), [("multinomial-nb", MultinomialNB()),
                                                  ("gaussian-nb", GaussianNB())])
def test_log_loss_is_clipped_as_scikit_learns_on_digits(tmp_path, capsys, kind, reference):
    # On digits both models give some rows a true-class probability below float64's eps (the Gaussian
    # one's -log p reaches the hundreds of thousands): scikit-learn's log_loss clips p to [eps, 1 - eps],
    # and so does mrtrain's; ``loss`` stays the unclipped cross-entropy.
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    y = y.astype(float)
    data = write(tmp_path / "digits", X, y, None, 3)
    status, out, err = run(capsys, "train", data, "--model", kind, "--runner", "inline", "--json")
    assert status == 0, err
    metrics = json.loads(out)["metrics"]
    probabilities = reference.fit(X, y).predict_proba(X)
    assert metrics["log_loss"] == pytest.approx(log_loss(y, probabilities), rel=1e-9)
    true = probabilities[np.arange(len(y)), y.astype(int)]
    assert (true < np.finfo(np.float64).eps).any()
    assert metrics["loss"] > metrics["log_loss"] + 0.5
    assert Trainer(kind).fit(data).evaluate(data)["log_loss"] == metrics["log_loss"]
