"""Standard errors, z/t statistics and p-values (``train --inference``) against closed forms in numpy.

The closed forms are the textbook ones: OLS ``σ² (XᵀX)⁻¹`` with ``σ² = RSS/(n − p)`` and t with ``n − p``
degrees of freedom; logistic ``(Xᵀ diag(μ(1 − μ)) X)⁻¹`` and Poisson ``(Xᵀ diag(μ) X)⁻¹`` with normal
p-values; ridge adds ``n · l2`` to the coefficient diagonal. They are evaluated at the trained
coefficients, so the comparison checks the Hessian pass, the weights and the inversion (to 1e-9 relative:
a p x p solve of a well-conditioned matrix); the coefficients themselves are compared with scikit-learn's
unpenalized fits to 1e-6 (Newton stopped at gtol 1e-10). The whole table is compared with statsmodels'
GLM on real, unscaled data, after a fit with each optimizer at its default tolerances.
"""

import json
import re

import numpy as np
import pytest
from scipy.stats import norm, t
from sklearn.linear_model import LinearRegression, LogisticRegression, PoissonRegressor

from mrtrain.engine.coefficient_table import inference_table
from mrtrain.engine.models import PartialSums
from mrtrain.engine.registry import make_model
from mrtrain.fitted import FittedModel
from mrtrain.inference import coefficient_inference
from mrtrain.trainer import Trainer
from tests.command import run
from tests.datasets import write

TRAIN = dict(optimizer="newton", gtol=1e-10, tol=0.0, max_iter=50)


def problem(kind, n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    eta = X @ np.array([0.8, -0.5, 0.0]) + 0.3
    if kind == "linear":
        y = eta + rng.normal(scale=0.7, size=n)
    elif kind == "logistic":
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
    return X, y


def closed_form(kind, X, y, theta, w, l2=0.0):
    X1 = np.column_stack([X, np.ones(len(X))])
    eta = X1 @ theta
    penalty = np.diag([l2 * w.sum()] * X.shape[1] + [0.0])
    if kind == "linear":
        rss = float(w @ (y - eta) ** 2)
        df = w.sum() - X1.shape[1]
        cov = rss / df * np.linalg.inv(X1.T @ (w[:, None] * X1) + penalty)
        se = np.sqrt(np.diag(cov))
        return se, 2 * t.sf(np.abs(theta / se), df)
    mu = 1 / (1 + np.exp(-eta)) if kind == "logistic" else np.exp(eta)
    h = mu * (1 - mu) if kind == "logistic" else mu
    se = np.sqrt(np.diag(np.linalg.inv(X1.T @ ((w * h)[:, None] * X1) + penalty)))
    return se, 2 * norm.sf(np.abs(theta / se))


REFERENCE = {
    "linear": lambda X, y, w: LinearRegression().fit(X, y, sample_weight=w),
    "logistic": lambda X, y, w: LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(X, y, w),
    "poisson": lambda X, y, w: PoissonRegressor(alpha=0, tol=1e-12, max_iter=10000).fit(X, y,
                                                                                         sample_weight=w),
}


@pytest.mark.parametrize("kind", ["linear", "logistic", "poisson"])
@pytest.mark.parametrize("weighted", [False, True])
def test_table_matches_the_closed_form(tmp_path, kind, weighted):
    X, y = problem(kind)
    w = np.random.default_rng(1).integers(1, 4, size=len(y)).astype(float) if weighted else np.ones(len(y))
    data = write(tmp_path / "d", X, y, w if weighted else None, 3)
    fitted = Trainer(kind, **TRAIN).fit(data)
    table = coefficient_inference(fitted, data)
    theta = np.asarray(table["estimate"])
    reference = REFERENCE[kind](X, y, w)
    np.testing.assert_allclose(theta, np.r_[np.ravel(reference.coef_), reference.intercept_], rtol=1e-6,
                               atol=1e-8)
    se, p_value = closed_form(kind, X, y, theta, w)
    np.testing.assert_allclose(table["std_error"], se, rtol=1e-9)
    np.testing.assert_allclose(table["statistic"], theta / se, rtol=1e-9)
    np.testing.assert_allclose(table["p_value"], p_value, rtol=1e-7, atol=1e-300)
    assert table["statistic_name"] == ("t" if kind == "linear" else "z")
    assert table["names"] == ["feature 0", "feature 1", "feature 2", "intercept"]
    assert table["p_value"][2] > 0.01 > max(table["p_value"][:2])  # the zero coefficient is not significant


def test_frequency_weights_equal_replicated_rows(tmp_path):
    X, y = problem("logistic", n=200)
    w = np.random.default_rng(2).integers(1, 4, size=len(y)).astype(float)
    weighted = coefficient_inference(Trainer("logistic", **TRAIN).fit(
        data := write(tmp_path / "w", X, y, w, 2)), data)
    replicated = coefficient_inference(Trainer("logistic", **TRAIN).fit(
        data := write(tmp_path / "r", np.repeat(X, w.astype(int), axis=0), np.repeat(y, w.astype(int)),
                      None, 2)), data)
    np.testing.assert_allclose(weighted["std_error"], replicated["std_error"], rtol=1e-8)


def test_ridge_uses_the_penalized_hessian(tmp_path):
    X, y = problem("logistic")
    data = write(tmp_path / "d", X, y, None, 2)
    fitted = Trainer("logistic", l2=0.05, **TRAIN).fit(data)
    table = coefficient_inference(fitted, data)
    se, _ = closed_form("logistic", X, y, np.asarray(table["estimate"]), np.ones(len(y)), l2=0.05)
    np.testing.assert_allclose(table["std_error"], se, rtol=1e-9)


def test_a_singular_hessian_is_refused_in_one_line():
    model = make_model("linear", 2)
    X = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0], [4.0, 8.0]])  # the second column is twice the first
    theta = np.array([0.5, 0.0, 0.1])
    sums = PartialSums.from_vector(
        model.partial_sums(X, np.arange(4.0), None, theta[None, :], hessian=1).to_vector(), 1, 3, 1)
    with pytest.raises(ValueError, match=r"^The Hessian at the fitted coefficients is singular \(smallest "
                                         r"eigenvalue .*collinear"):
        inference_table(model, sums, theta, l2=0.0)


def test_cli_table_is_printed_kept_with_the_checkpoints_and_shown_by_inspect(tmp_path, capsys):
    X, y = problem("poisson")
    data = write(tmp_path / "d", X, y, None, 2)
    checkpoints = str(tmp_path / "ck")
    status, out, err = run(capsys, "train", data, "--model", "poisson", "--optimizer", "newton",
                           "--inference", "--checkpoint-dir", checkpoints, "--json")
    assert status == 0, err
    trained = json.loads(out)
    table = trained["inference"]
    assert json.loads(run(capsys, "inspect", checkpoints, "--json")[1])["inference"] == table
    human = run(capsys, "inspect", checkpoints)[1]
    assert "inference    z statistics" in human and "std. error" in human
    # The table is at the optimum: Newton steps from the checkpoint's coefficients (Newton's own fit stopped
    # at gtol 1e-6) to 1e-9 standard errors, which moved them by less than 1e-4 standard errors.
    assert table["remaining_step"] <= 1e-9
    moved = (FittedModel.load(checkpoints).theta_ - table["estimate"]) / np.asarray(table["std_error"])
    np.testing.assert_allclose(moved, 0, atol=1e-4)
    # A newer checkpoint (training on with a tighter gtol) is not the one the table was computed for.
    status, out, err = run(capsys, "train", data, "--model", "poisson", "--optimizer", "newton",
                           "--gtol", "0", "--tol", "0", "--max-iter", "60", "--checkpoint-dir", checkpoints,
                           "--json")
    assert status == 0, err
    assert json.loads(out)["iterations"] > trained["iterations"]
    assert "inference" not in json.loads(run(capsys, "inspect", checkpoints, "--json")[1])


@pytest.mark.parametrize(("options", "message"), [
    (["--model", "softmax"], r"needs a model among \['linear', 'logistic', 'poisson'\]. Got model 'softmax'"),
    (["--model", "logistic", "--l1", "0.1"], r"needs a smooth objective.*Got l1=0.1 instead"),
    (["--model", "logistic", "--standardize"], r"cannot be combined with 'standardize'"),
])
def test_meaningless_tables_are_refused_before_training(tmp_path, capsys, options, message):
    X, y = problem("logistic", n=60)
    data = write(tmp_path / "d", X, y, None, 2)
    status, out, err = run(capsys, "train", data, *options, "--inference", "--checkpoint-dir",
                           str(tmp_path / "ck"))
    assert status == 2 and out == ""
    assert len(err) == 1 and err[0].startswith("mrtrain: error: ")
    assert re.search(message, err[0])
    assert not (tmp_path / "ck").exists()


def statsmodels_problem(kind):
    """Real data in raw units (feature scales from 0.1 to 4e4), as a user has it: breast_cancer's first
    five features (logistic), statsmodels' cpunish executions by state (Poisson), raw diabetes (linear)."""
    if kind == "logistic":
        from sklearn.datasets import load_breast_cancer

        X, y = load_breast_cancer(return_X_y=True)
        return X[:, :5], y.astype(float)
    if kind == "poisson":
        import statsmodels.api as sm

        frame = sm.datasets.cpunish.load_pandas().data
        return frame.drop(columns="EXECUTIONS").to_numpy(float), frame["EXECUTIONS"].to_numpy(float)
    from sklearn.datasets import load_diabetes

    return load_diabetes(return_X_y=True, scaled=False)


@pytest.mark.parametrize("kind", ["logistic", "poisson", "linear"])
@pytest.mark.parametrize("optimizer", ["lbfgs", "newton"])
def test_table_is_statsmodels_whatever_the_optimizer(tmp_path, kind, optimizer):
    # statsmodels' GLM (IRLS to 1e-14; the Gaussian one with use_t: scale RSS/(n - p) and t with n - p
    # degrees of freedom) is the reference. The default-tolerance fit stops short of the optimum on these
    # unscaled features (L-BFGS by up to ~1e-3 standard errors: p-values off by 1e-4); the table is taken
    # after Newton steps to 1e-9 standard errors, so estimates agree to that in standard errors, and the
    # p-values to 1e-9 absolute.
    import statsmodels.api as sm

    X, y = statsmodels_problem(kind)
    family = {"logistic": sm.families.Binomial(), "poisson": sm.families.Poisson(),
              "linear": sm.families.Gaussian()}[kind]
    reference = sm.GLM(y, sm.add_constant(X, prepend=False), family=family).fit(tol=1e-14, maxiter=1000,
                                                                                use_t=kind == "linear")
    data = write(tmp_path / "d", X, y, None, 3)
    fitted = Trainer(kind, optimizer=optimizer).fit(data)
    table = coefficient_inference(fitted, data)
    assert table["remaining_step"] <= 1e-9
    np.testing.assert_allclose((np.asarray(table["estimate"]) - reference.params) / reference.bse, 0,
                               atol=1e-8)
    np.testing.assert_allclose(table["std_error"], reference.bse, rtol=1e-8)
    np.testing.assert_allclose(table["p_value"], reference.pvalues, rtol=0, atol=1e-9)
    assert table["statistic_name"] == ("t" if kind == "linear" else "z")
    if kind == "linear":
        assert table["df"] == reference.df_resid
        np.testing.assert_allclose(table["dispersion"], reference.scale, rtol=1e-9)


def test_a_fit_stopped_early_is_finished_by_newton_and_says_so(tmp_path, capsys):
    # Three L-BFGS iterations leave the coefficients standard errors away from the optimum: the Newton
    # finish takes them there (quadratic convergence: a handful of passes), and the table says how many.
    X, y = statsmodels_problem("logistic")
    data = write(tmp_path / "d", X, y, None, 2)
    exact = coefficient_inference(Trainer("logistic", **TRAIN).fit(data), data)
    status, out, err = run(capsys, "train", data, "--model", "logistic", "--max-iter", "3", "--inference",
                           "--runner", "inline", "--json")
    assert status == 0, err
    table = json.loads(out)["inference"]
    assert table["newton_steps"] >= 3 and table["remaining_step"] <= 1e-9
    np.testing.assert_allclose(table["p_value"], exact["p_value"], rtol=0, atol=1e-9)
    human = run(capsys, "train", data, "--model", "logistic", "--max-iter", "3", "--inference", "--runner",
                "inline")[1]
    assert re.search(r"at the optimum: \d+ Newton steps? from the trained coefficients, \d\.\de-\d+ standard "
                     r"errors left", human)


def test_a_table_far_from_the_optimum_is_flagged(tmp_path, caplog):
    X, y = problem("logistic")
    data = write(tmp_path / "d", X, y, None, 2)
    fitted = Trainer("logistic", max_iter=1).fit(data)
    table = coefficient_inference(fitted, data, max_steps=0)
    assert table["newton_steps"] == 0 and table["remaining_step"] > 1e-3
    assert "standard errors from the optimum after 0 Newton steps" in caplog.text
