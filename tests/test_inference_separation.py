"""``--inference`` refuses (quasi-)separated data in one line instead of printing a table of meaningless
p-values (:func:`mrtrain.engine.coefficient_table.check_identified`); statsmodels flags the same data."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris

from mrtrain.inference import coefficient_inference
from mrtrain.trainer import Trainer

from .command import run
from .datasets import write

sm = pytest.importorskip("statsmodels.api")


def iris_pair(first, second, columns):
    """Two iris species (label 1 for ``second``) on the given feature columns."""
    X, y = load_iris(return_X_y=True)
    keep = (y == first) | (y == second)
    return X[keep][:, columns], (y[keep] == second).astype(float)


DATASETS = {
    # Setosa against versicolor on the sepal measurements: linearly separable (a real dataset).
    "setosa-versicolor": lambda: iris_pair(0, 1, [0, 1]),
    # The reproducer: label = [x0 > 0].
    "x0-positive": lambda: (lambda X: (X, (X[:, 0] > 0).astype(float)))(
        np.random.default_rng(1).normal(size=(300, 3))),
}


def statsmodels_note(X, y):
    """The separation note statsmodels prints under its Logit summary ("" when none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sm.Logit(y, sm.add_constant(X, prepend=False)).fit(disp=0, maxiter=200)
        summary = str(result.summary())
    for note in ("Complete Separation", "quasi-separation"):
        if note in summary:
            return note
    return ""


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_separated_data_are_refused_in_one_line_where_statsmodels_notes_separation(tmp_path, capsys,
                                                                                    monkeypatch, name):
    X, y = DATASETS[name]()
    assert statsmodels_note(X, y) != ""  # the reference: statsmodels calls these data separated
    write(tmp_path / "data", X, y)
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, "train", "data", "--model", "logistic", "--inference", "--runner",
                           "inline", "--checkpoint-dir", "ck")
    assert status == 2 and out == "", err
    assert len(err) == 1 and err[0].startswith(
        f"mrtrain: error: {tmp_path / 'data'}: The maximum-likelihood estimate does not exist: the data are "
        "quasi-separated"), err
    assert "feature 0 (" in err[0]
    assert not (tmp_path / "ck" / "_inference.json").exists()


def test_the_python_api_refuses_the_same_way(tmp_path):
    X, y = DATASETS["x0-positive"]()
    data = write(tmp_path / "data", X, y)
    fitted = Trainer("logistic").fit(data)
    with pytest.raises(ValueError, match=r"data: The maximum-likelihood estimate does not exist: the data "
                                         r"are quasi-separated .* the coefficients feature 0 \(\+\d+"):
        coefficient_inference(fitted, data)


def test_an_l2_penalty_makes_the_estimate_exist_and_the_table_is_given(tmp_path):
    X, y = iris_pair(0, 1, [0, 1])
    data = write(tmp_path / "data", X, y)
    table = coefficient_inference(Trainer("logistic", l2=0.01).fit(data), data)
    assert np.isfinite(table["p_value"]).all()


def test_data_statsmodels_calls_identified_get_statsmodels_table(tmp_path):
    """Versicolor against virginica on the sepal measurements is not separable: no refusal, and the table
    is statsmodels' (its Newton fit converges to the same optimum)."""
    X, y = iris_pair(1, 2, [0, 1])
    assert statsmodels_note(X, y) == ""
    data = write(tmp_path / "data", X, y)
    table = coefficient_inference(Trainer("logistic", optimizer="newton", tol=0, gtol=1e-10).fit(data), data)
    reference = sm.Logit(y, sm.add_constant(X, prepend=False)).fit(disp=0, tol=1e-12, maxiter=100)
    np.testing.assert_allclose(table["estimate"], reference.params, rtol=1e-6)
    np.testing.assert_allclose(table["std_error"], reference.bse, rtol=1e-6)
    np.testing.assert_allclose(table["p_value"], reference.pvalues, rtol=1e-5)
