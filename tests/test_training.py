"""Training end to end through MapReduce: parity with scikit-learn, runners agree bitwise, exact resume."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.linear_model import LogisticRegression, PoissonRegressor, Ridge

from mrtrain.fitted import FittedModel
from mrtrain.storage.checkpoint import list_checkpoints
from mrtrain.trainer import SettingsMismatchError, Trainer
from tests.datasets import poisson_data, reference_data, write

# Newton converges quadratically: at gtol=1e-10 the coefficients are exact to far below the 1e-6
# relative tolerance the comparisons use; scikit-learn's solvers are run to the same precision.
TIGHT = {"optimizer": "newton", "tol": 0.0, "gtol": 1e-10, "max_iter": 50, "runner": "inline"}


def test_logistic_matches_sklearn_on_breast_cancer(tmp_path):
    X, y = reference_data("breast_cancer")
    l2 = 0.01
    fitted = Trainer("logistic", l2=l2, **TIGHT).fit(write(tmp_path / "d", X, y))
    reference = LogisticRegression(C=1 / (len(y) * l2), solver="newton-cholesky", tol=1e-12,
                                   max_iter=1000).fit(X, y)
    assert fitted.converged_
    assert_allclose(fitted.coef_, reference.coef_[0], rtol=1e-6)
    assert_allclose(fitted.intercept_, reference.intercept_[0], rtol=1e-6)
    assert fitted.n_passes_ <= 10


def test_softmax_matches_sklearn_on_iris(tmp_path):
    X, y = reference_data("iris")
    l2 = 0.01
    fitted = Trainer("softmax", l2=l2, **TIGHT).fit(write(tmp_path / "d", X, y))
    reference = LogisticRegression(C=1 / (len(y) * l2), solver="newton-cholesky", tol=1e-12,
                                   max_iter=1000).fit(X, y)
    assert fitted.converged_
    assert_allclose(fitted.coef_, reference.coef_, rtol=1e-6, atol=1e-9)
    # Softmax intercepts are defined up to one common shift: compare them centred.
    assert_allclose(fitted.intercept_ - fitted.intercept_.mean(),
                    reference.intercept_ - reference.intercept_.mean(), rtol=1e-6)
    assert abs(fitted.intercept_.sum()) < 1e-9


@pytest.mark.parametrize("optimizer", ["newton", "lbfgs", "gd"])
def test_linear_matches_ridge_on_diabetes(tmp_path, optimizer):
    X, y = reference_data("diabetes")
    l2 = 0.001
    settings = {**TIGHT, "optimizer": optimizer, "max_iter": 5000, "gtol": 1e-9}
    fitted = Trainer("linear", l2=l2, **settings).fit(write(tmp_path / "d", X, y, partitions=4))
    reference = Ridge(alpha=len(y) * l2, solver="cholesky").fit(X, y)
    assert fitted.converged_, fitted.stop_reason_
    rtol = 1e-6 if optimizer == "newton" else 1e-4
    assert_allclose(fitted.coef_, reference.coef_, rtol=rtol)
    assert_allclose(fitted.intercept_, reference.intercept_, rtol=rtol)


def test_poisson_matches_sklearn(tmp_path):
    X, y = poisson_data()
    l2 = 0.01
    fitted = Trainer("poisson", l2=l2, **TIGHT).fit(write(tmp_path / "d", X, y))
    reference = PoissonRegressor(alpha=l2, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
    assert_allclose(fitted.coef_, reference.coef_, rtol=1e-6)
    assert_allclose(fitted.intercept_, reference.intercept_, rtol=1e-6)


def test_sample_weights_equal_repeated_rows(tmp_path):
    X, y = reference_data("breast_cancer")
    X, y = X[:120], y[:120]
    counts = np.random.default_rng(0).integers(1, 4, size=len(y)).astype(float)
    weighted = Trainer("logistic", l2=0.05, **TIGHT).fit(write(tmp_path / "w", X, y, counts))
    repeated = Trainer("logistic", l2=0.05, **TIGHT).fit(
        write(tmp_path / "r", np.repeat(X, counts.astype(int), axis=0), np.repeat(y, counts.astype(int)))
    )
    assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-8)


@pytest.mark.parametrize(("model", "optimizer"), [("logistic", "lbfgs"), ("softmax", "newton")])
def test_inline_and_local_runners_give_bitwise_the_same_model(tmp_path, model, optimizer):
    X, y = reference_data("breast_cancer" if model == "logistic" else "iris")
    data = write(tmp_path / "d", X, y, partitions=3)
    settings = {"optimizer": optimizer, "l2": 0.01, "max_iter": 6}
    inline = Trainer(model, runner="inline", **settings).fit(data)
    local = Trainer(model, runner="local", **settings).fit(data)
    assert inline.theta_.tobytes() == local.theta_.tobytes()
    assert inline.history_ == local.history_


@pytest.mark.parametrize("optimizer", ["gd", "lbfgs", "newton"])
def test_resumed_run_ends_bitwise_identical(tmp_path, optimizer):
    X, y = reference_data("breast_cancer")
    data = write(tmp_path / "d", X, y, partitions=3)
    settings = {"optimizer": optimizer, "l2": 0.01, "tol": 0.0, "gtol": 0.0, "runner": "inline"}
    whole = Trainer("logistic", max_iter=9, **settings).fit(data)
    checkpoints = str(tmp_path / "ck")
    Trainer("logistic", max_iter=4, checkpoint_dir=checkpoints, **settings).fit(data)
    assert [iteration for iteration, _ in list_checkpoints(checkpoints)] == list(range(5))
    resumed = Trainer("logistic", max_iter=9, checkpoint_dir=checkpoints, **settings).fit(data)
    assert resumed.theta_.tobytes() == whole.theta_.tobytes()
    assert resumed.history_ == whole.history_
    assert resumed.n_passes_ == whole.n_passes_
    loaded = FittedModel.load(checkpoints)
    assert loaded.theta_.tobytes() == whole.theta_.tobytes()
    assert loaded.n_iter_ == 9


def test_resume_with_other_settings_is_refused(tmp_path):
    X, y = reference_data("breast_cancer")
    data = write(tmp_path / "d", X, y, partitions=2)
    checkpoints = str(tmp_path / "ck")
    Trainer("logistic", l2=0.01, max_iter=2, checkpoint_dir=checkpoints).fit(data)
    with pytest.raises(SettingsMismatchError, match=r"l2: checkpoint has 0.01, this run has 0.1"):
        Trainer("logistic", l2=0.1, max_iter=3, checkpoint_dir=checkpoints).fit(data)
    other = write(tmp_path / "other", X[:200], y[:200], partitions=2)
    with pytest.raises(SettingsMismatchError, match=r"data_checksum: checkpoint has"):
        Trainer("logistic", l2=0.01, max_iter=3, checkpoint_dir=checkpoints).fit(other)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"l2": -1}, r"'l2' parameter must be a finite float >= 0. Got -1 instead"),
        ({"max_iter": 0}, r"'max_iter' parameter must be an int >= 1. Got 0 instead"),
        ({"tol": float("nan")}, r"'tol' parameter must be a finite float >= 0. Got nan instead"),
        ({"optimizer": "adam"}, r"'optimizer' parameter must be one of \['gd', 'lbfgs', 'newton', 'owlqn'\]"),
        ({"runner": "spark"}, r"'runner' parameter must be one of"),
    ],
)
def test_bad_parameters_are_named(tmp_path, kwargs, message):
    X, y = reference_data("iris")
    data = write(tmp_path / "d", X, y)
    with pytest.raises(ValueError, match=message):
        Trainer("softmax", **kwargs).fit(data)


def test_logistic_on_three_classes_is_refused(tmp_path):
    X, y = reference_data("iris")
    with pytest.raises(ValueError, match=r"'logistic' needs exactly 2 classes \(for more classes use model "
                                         r"'softmax'\)\. Got 3"):
        Trainer("logistic").fit(write(tmp_path / "d", X, y))


def test_fitted_model_predicts_like_the_predict_job(tmp_path):
    X, y = reference_data("iris")
    data = write(tmp_path / "d", X, y)
    checkpoints = str(tmp_path / "ck")
    fitted = Trainer("softmax", l2=0.01, optimizer="newton", checkpoint_dir=checkpoints).fit(data)
    manifest = fitted.predict_dataset(data, str(tmp_path / "pred"))
    assert manifest["n_rows"] == 150
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "pred", columns=["prediction"])
    assert table["prediction"].to_numpy().tobytes() == fitted.predict(X).tobytes()
    metrics = fitted.evaluate(data)
    assert metrics["accuracy"] == np.mean(fitted.predict(X) == y)
    assert_allclose(metrics["objective"], fitted.objective_, rtol=1e-12)
    with pytest.raises(FileExistsError, match="output already exists"):
        fitted.predict_dataset(data, str(tmp_path / "pred"))


def test_class_labels_need_not_be_zero_based(tmp_path):
    X, y = reference_data("breast_cancer")
    zero_one = Trainer("logistic", l2=0.01, **TIGHT).fit(write(tmp_path / "a", X, y))
    signed = Trainer("logistic", l2=0.01, **TIGHT).fit(write(tmp_path / "b", X, 2 * y - 1))
    assert signed.classes_ == [-1.0, 1.0]
    assert signed.theta_.tobytes() == zero_one.theta_.tobytes()
    assert set(signed.predict(X)) == {-1.0, 1.0}


def test_reducer_count_does_not_change_the_model(tmp_path):
    X, y = reference_data("iris")
    data = write(tmp_path / "d", X, y, partitions=3)
    one = Trainer("softmax", l2=0.01, optimizer="newton", max_iter=4).fit(data)
    four = Trainer("softmax", l2=0.01, optimizer="newton", max_iter=4, reducers=4).fit(data)
    settings = {"l2": 0.01, "optimizer": "newton", "max_iter": 4}
    map_only = Trainer("softmax", reducers=0, runner="local", **settings).fit(data)
    assert four.theta_.tobytes() == one.theta_.tobytes()
    assert map_only.theta_.tobytes() == one.theta_.tobytes()
    with pytest.raises(ValueError, match=r"'reducers' parameter must be an int >= 0. Got -1 instead"):
        Trainer("softmax", reducers=-1).fit(data)
