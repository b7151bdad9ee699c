"""Reference levels (``ingest --drop first``) and ``train --inference`` on a categorical design, against
statsmodels' GLM on real data a package ships (Palmer penguins, statsmodels' ``cpunish``).

statsmodels fits by IRLS to its own tolerance; mrtrain's Newton stops at gtol 1e-10. The p-values agree to
1e-6 relative (they are smooth in the coefficients and the Hessian, both reached to far better than that).
A design that is not identifiable is refused before any training, naming its columns.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest

from tests.command import run

sm = pytest.importorskip("statsmodels.api")
palmerpenguins = pytest.importorskip("palmerpenguins")

NEWTON = ("--optimizer", "newton", "--gtol", "1e-10", "--tol", "0", "--max-iter", "50", "--runner", "inline")


@pytest.fixture
def penguins(tmp_path, monkeypatch):
    """``peng.csv`` (complete rows, no year) in the current directory, a scratch directory."""
    monkeypatch.chdir(tmp_path)
    frame = palmerpenguins.load_penguins().dropna().drop(columns=["year"]).reset_index(drop=True)
    frame["body_mass_kg"] = frame.pop("body_mass_g") / 1000
    frame.to_csv("peng.csv", index=False)
    return frame


def _inference(capsys, *options):
    status, out, err = run(capsys, "train", "ds", *options, "--inference", "--no-metrics", "--json")
    assert status == 0, err
    return json.loads(out)


def _compare(table, reference, names):
    """``table`` (mrtrain's) against a statsmodels result whose parameters are named ``names``."""
    assert table["names"] == [*names, "intercept"]
    def last(values):  # statsmodels puts the constant first, mrtrain the intercept last
        return np.roll(np.asarray(values), -1)

    np.testing.assert_allclose(table["estimate"], last(reference.params), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(table["std_error"], last(reference.bse), rtol=1e-7)
    np.testing.assert_allclose(table["p_value"], last(reference.pvalues), rtol=1e-6, atol=1e-300)


def _design(frame, numeric, categorical):
    """statsmodels' design: the numeric columns, then treatment-coded dummies (first level dropped)."""
    dummies = pd.get_dummies(frame[categorical], drop_first=True, dtype=float, prefix_sep="=")
    X = pd.concat([frame[numeric], dummies], axis=1)
    return sm.add_constant(X, prepend=True), list(X.columns)


def test_logistic_p_values_of_a_categorical_design_match_statsmodels(capsys, penguins):
    assert run(capsys, "ingest", "peng.csv", "ds", "--label", "sex", "--categorical", "species,island",
               "--drop", "first")[0] == 0
    table = _inference(capsys, "--model", "logistic", *NEWTON)["inference"]
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_kg"]
    X, names = _design(penguins, numeric, ["species", "island"])
    y = (penguins["sex"] == "male").astype(float)  # classes sorted: female 0, male 1
    reference = sm.GLM(y, X, family=sm.families.Binomial()).fit(tol=1e-12)
    _compare(table, reference, names)
    assert table["statistic_name"] == "z"


def test_gaussian_t_table_of_a_categorical_design_matches_statsmodels_use_t(capsys, penguins):
    assert run(capsys, "ingest", "peng.csv", "ds", "--label", "body_mass_kg", "--categorical",
               "species,island,sex", "--drop", "first")[0] == 0
    result = _inference(capsys, "--model", "linear", *NEWTON)
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]
    X, names = _design(penguins, numeric, ["species", "island", "sex"])
    reference = sm.GLM(penguins["body_mass_kg"], X, family=sm.families.Gaussian()).fit(use_t=True)
    _compare(result["inference"], reference, names)
    assert result["inference"]["df"] == reference.df_resid
    np.testing.assert_allclose(result["inference"]["dispersion"], reference.scale, rtol=1e-9)


def test_poisson_p_values_with_a_categorical_column_match_statsmodels(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame = sm.datasets.cpunish.load_pandas().data
    frame["SOUTH"] = frame["SOUTH"].map({0.0: "no", 1.0: "yes"})
    frame["INCOME"] = frame["INCOME"] / 1000
    frame.to_csv("cpunish.csv", index=False)
    assert run(capsys, "ingest", "cpunish.csv", "ds", "--label", "EXECUTIONS", "--categorical", "SOUTH",
               "--drop", "first")[0] == 0
    table = _inference(capsys, "--model", "poisson", *NEWTON)["inference"]
    X, names = _design(frame, ["INCOME", "PERPOVERTY", "PERBLACK", "VC100k96", "DEGREE"], ["SOUTH"])
    reference = sm.GLM(frame["EXECUTIONS"], X, family=sm.families.Poisson()).fit(tol=1e-12)
    _compare(table, reference, names)


def test_inference_refuses_one_hot_slots_that_add_up_to_the_intercept_before_training(capsys, penguins):
    assert run(capsys, "ingest", "peng.csv", "ds", "--label", "sex", "--categorical", "island,species",
               "--drop", "if-binary")[0] == 0
    status, out, err = run(capsys, "train", "ds", "--model", "logistic", "--inference", "--runner", "inline",
                           "--checkpoint-dir", "ck")
    assert status == 2 and out == "" and len(err) == 1
    # if-binary drops nothing of three-level columns.
    assert ("found the one-hot slots of column 'species' (species=Adelie, species=Chinstrap, species=Gentoo) "
            "adding up to the intercept in every row: ingest with --drop first") in err[0]
    assert not os.path.exists("ck")  # no training ran


def test_inference_refuses_collinear_numeric_columns_naming_them(capsys, penguins):
    penguins["bill_sum"] = penguins["bill_length_mm"] + penguins["bill_depth_mm"]
    penguins.to_csv("peng2.csv", index=False)
    assert run(capsys, "ingest", "peng2.csv", "ds", "--label", "sex", "--categorical", "species,island",
               "--drop", "first")[0] == 0
    status, out, err = run(capsys, "train", "ds", "--model", "logistic", "--inference", "--runner", "inline",
                           "--checkpoint-dir", "ck")
    assert status == 2 and len(err) == 1
    assert "found the columns bill_length_mm, bill_depth_mm, bill_sum linearly dependent" in err[0]
    assert not os.path.exists("ck")
