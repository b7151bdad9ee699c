"""What ``mrtrain report`` shows about the run, through the CLI as a user types it: a cross-validated
penalty path's validation loss against λ (selected λ marked) and coefficient path, the ``--inference``
table, ``--standardize``'s coefficients on both scales, and the settings as readable rows; every user
string (feature names from a CSV header) HTML-escaped.

References: the path's first λ is the lasso's λmax (scikit-learn's and glmnet's closed form
``max |Xcᵀ(y − ȳ)| / n``), where every coefficient is 0; the selected λ's path entry is the returned
model; the validation losses are the grid's table (checked against scikit-learn in test_grid.py); the
inference rows are ``_inference.json``'s (checked against statsmodels in test_inference.py); the
standardization's shift and scale are the columns' weighted means and standard deviations.
"""

import html
import json
import re

import numpy as np
import pytest

from mrtrain.fitted import FittedModel
from mrtrain.inference import load_inference
from mrtrain.storage.checkpoint import list_checkpoints
from tests.command import run
from tests.datasets import reference_data, write
from tests.test_report import check_image, page_sections


def report(capsys, tmp_path, checkpoints, *options):
    output = tmp_path / "report.html"
    status, out, err = run(capsys, "report", checkpoints, "--output", str(output), "--runner", "inline",
                           "--json", *options)
    assert status == 0, err
    text = output.read_text()
    sections = page_sections(text)
    assert json.loads(out)["sections"] == list(sections)
    return text, sections


def test_cross_validated_path_shows_validation_loss_and_coefficient_path(tmp_path, capsys):
    X, y = reference_data("diabetes")
    data = write(tmp_path / "diabetes", X, y, partitions=2)
    checkpoints = str(tmp_path / "ck")
    status, _, err = run(capsys, "train", data, "--model", "linear", "--reg-path", "5", "--reg-path-ratio",
                         "0.01", "--cv", "3", "--max-iter", "300", "--runner", "inline", "--checkpoint-dir",
                         checkpoints, "--no-metrics")
    assert status == 0, err
    text, sections = report(capsys, tmp_path, checkpoints)
    assert ["Validation loss against the penalty", "Coefficient path"] == [
        title for title in sections if title in ("Validation loss against the penalty", "Coefficient path")]
    fitted = FittedModel.load(checkpoints)
    table = fitted.cv_results_

    picture, rows = sections["Validation loss against the penalty"]
    check_image(picture, "Validation loss against the penalty")
    assert [float(row[0]) for row in rows] == pytest.approx([row["lambda"] for row in table], rel=1e-9)
    assert [float(row[3]) for row in rows] == pytest.approx([row["validation_loss_mean"] for row in table],
                                                            rel=1e-9)
    assert [float(row[4]) for row in rows] == pytest.approx([row["validation_loss_std"] for row in table],
                                                            rel=1e-9)
    marked = [float(row[0]) for row in rows if row[-1] == "yes"]
    assert marked == pytest.approx([fitted.l1 + fitted.l2], rel=1e-9)
    best = min(table, key=lambda row: row["validation_loss_mean"])
    assert marked == pytest.approx([best["lambda"]], rel=1e-9)

    picture, rows = sections["Coefficient path"]
    check_image(picture, "Coefficient path")
    lambdas = [float(row[0]) for row in rows]
    assert lambdas == sorted(lambdas, reverse=True) and len(rows) == 5
    lambda_max = np.max(np.abs((X - X.mean(axis=0)).T @ (y - y.mean()))) / len(y)
    assert lambdas[0] == pytest.approx(lambda_max, rel=1e-9)
    assert np.all(np.abs([float(v) for v in rows[0][4:]]) <= 1e-9)  # every coefficient 0 at λmax
    header = section_columns(text, "Coefficient path")
    selected = next(row for row in rows if row[3] == "yes")
    by_name = dict(zip(header[4:], (float(v) for v in selected[4:]), strict=True))
    names = [f"f{j}" for j in range(X.shape[1])]  # the dataset's feature names
    assert [by_name[name] for name in names] == pytest.approx(fitted.coef_.tolist(), rel=1e-9, abs=1e-12)


def section_columns(text, title):
    """Column names of the table under the section titled ``title`` of a report page."""
    for block in re.findall(r"<section>(.*?)</section>", text, re.S):
        if html.unescape(re.search(r"<h2>(.*?)</h2>", block).group(1)) == title:
            return [html.unescape(cell) for cell in re.findall(r"<th>(.*?)</th>", block)]
    raise KeyError(title)


def test_inference_table_is_in_the_report(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = rng.poisson(np.exp(0.3 * X[:, 0] + 0.2)).astype(float)
    data = write(tmp_path / "counts", X, y, partitions=2)
    checkpoints = str(tmp_path / "ck")
    status, out, err = run(capsys, "train", data, "--model", "poisson", "--inference", "--optimizer",
                           "newton", "--runner", "inline", "--checkpoint-dir", checkpoints, "--no-metrics")
    assert status == 0, err
    assert "classes" not in out  # a Poisson model has no classes, and train does not print "classes: None"
    _, sections = report(capsys, tmp_path, checkpoints)
    expected = load_inference(checkpoints, list_checkpoints(checkpoints)[-1][0])
    _, rows = sections["Coefficient inference"]
    assert [row[0] for row in rows] == expected["names"]
    for column, key in enumerate(("estimate", "std_error", "statistic", "p_value"), start=1):
        assert [float(row[column]) for row in rows] == pytest.approx(expected[key], rel=1e-9)
    # The table is taken at the optimum Newton steps reach from the model (no farther from the model than its
    # stopping rule allows: well within a thousandth of a standard error on these 300 rows).
    fitted = FittedModel.load(checkpoints)
    estimates = np.array([float(row[1]) for row in rows[:-1]])
    errors = np.array([float(row[2]) for row in rows[:-1]])
    assert np.all(np.abs(estimates - fitted.coef_) <= 1e-3 * errors)
    settings = dict(sections["Run and settings"][1])
    assert "classes" not in settings  # not "classes: none", nor the counts


def test_standardized_model_shows_both_scales_and_readable_settings(tmp_path, capsys):
    X, y = reference_data("iris")
    X, y = X[y < 2] * [1, 10, 100, 0.1], y[y < 2]  # two classes, features on very different scales
    source = tmp_path / "flowers.csv"
    names = ["sepal <length>", "sepal & width", "petal \"length\"", "petal 'width'"]
    header = ",".join(f'"{name}"' if '"' not in name else '"' + name.replace('"', '""') + '"'
                      for name in names)
    source.write_text(header + ",label\n" + "\n".join(",".join(repr(float(v)) for v in (*row, label))
                                                      for row, label in zip(X, y, strict=True)) + "\n")
    data = str(tmp_path / "flowers")
    status, _, err = run(capsys, "ingest", str(source), data)
    assert status == 0, err
    checkpoints = str(tmp_path / "ck")
    status, _, err = run(capsys, "train", data, "--model", "logistic", "--standardize", "--l2", "0.01",
                         "--runner", "inline", "--checkpoint-dir", checkpoints, "--no-metrics")
    assert status == 0, err
    text, sections = report(capsys, tmp_path, checkpoints)
    fitted = FittedModel.load(checkpoints)
    _, rows = sections["Coefficients on both scales"]
    assert [row[0] for row in rows] == names
    stored = np.array([float(row[1]) for row in rows])
    standardized = np.array([float(row[2]) for row in rows])
    shift = np.array([float(row[3]) for row in rows])
    scale = np.array([float(row[4]) for row in rows])
    np.testing.assert_allclose(stored, fitted.coef_, rtol=1e-9)
    np.testing.assert_allclose(shift, X.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(scale, X.std(axis=0, ddof=1), rtol=1e-9)  # Spark's n - 1, the default
    np.testing.assert_allclose(standardized, stored * scale, rtol=1e-9)
    # The same model either way: margins on the standardized features equal the stored features' margins.
    margins = ((X - shift) / scale) @ standardized + fitted.intercept_ + shift @ stored
    np.testing.assert_allclose(margins, fitted.decision_function(X), rtol=1e-9, atol=1e-9)
    for raw in names:
        assert raw not in text  # escaped: <, &, " and ' never reach the page as they are
    settings = dict(sections["Run and settings"][1])
    assert settings["standardized features"] == "yes, Spark's n - 1 standard deviation"
    assert settings["l2 penalty"] == "0.01"
    assert settings["classes"] == "0, 1" and settings["model"] == "logistic"
    assert not any(name.startswith("settings.") for name in settings)
    assert not any(value.startswith(("{", "[")) for value in settings.values())
