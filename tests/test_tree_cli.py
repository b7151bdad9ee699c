"""``mrtrain train --model gbt|random-forest`` and ``evaluate``/``predict``/``inspect`` of its directory, as
a user types them (issue 23, items 4 and 5), and the refusals of bad input (exit 2, one line, nothing
written)."""

import json
import logging

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from mrtrain.tree_fitted import TreeFittedModel
from tests.command import predict_tables, probabilities, run, tree


def _csv(path, n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    X[rng.random(n) < 0.1, 1] = np.nan
    y = ((X[:, 0] > 0) | np.isnan(X[:, 1])).astype(int)
    y[rng.random(n) < 0.1] ^= 1
    lines = ["a,b,c,label"] + [",".join("" if np.isnan(v) else repr(float(v)) for v in row) + f",{label}"
                               for row, label in zip(X, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return X, y


@pytest.fixture
def scratch(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    X, y = _csv(tmp_path / "train.csv")
    assert run(capsys, "ingest", "train.csv", "train", "--keep-missing", "--partitions", "2")[0] == 0
    return tmp_path, X, y


def refused(capsys, *argv):
    status, out, err = run(capsys, *argv)
    assert status == 2 and len(err) == 1 and out == "", (status, out, err)
    return err[0]


@pytest.mark.parametrize("model, options", [
    ("gbt", ["--n-trees", "3", "--max-depth", "2", "--learning-rate", "0.5", "--max-bins", "16"]),
    ("random-forest", ["--n-trees", "3", "--max-depth", "2", "--max-features", "sqrt", "--seed", "4",
                       "--runner", "local", "--allreduce"]),
])
def test_train_evaluate_predict_inspect(scratch, capsys, model, options):
    path, X, y = scratch
    status, out, err = run(capsys, "train", "train", "--model", model, *options, "--checkpoint-dir", "m",
                           "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["model"] == model and result["trees"] == 3 and result["classes"] == [0.0, 1.0]
    assert "a" in result["feature_importance"]  # the signal column is split on
    fitted = TreeFittedModel.load("m")
    p = fitted.predict_proba(X)
    # The metrics of the evaluate pass against scikit-learn's on the in-memory predictions.
    assert result["metrics"]["accuracy"] == pytest.approx(accuracy_score(y, fitted.predict(X)), abs=1e-12)
    assert result["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(y, p[:, 1]), abs=2e-3)
    status, out, err = run(capsys, "evaluate", "train", "--model-dir", "m", "--json")
    assert status == 0 and json.loads(out)["metrics"] == result["metrics"], err
    tables = predict_tables(capsys, "train", "m", path / "out")
    np.testing.assert_array_equal(probabilities(tables), p)
    np.testing.assert_array_equal(np.concatenate([t.column("prediction").to_numpy() for t in tables]),
                                  fitted.predict(X))
    status, out, _ = run(capsys, "inspect", "m", "--json")
    inspected = json.loads(out)
    assert inspected["feature_importance"] == result["feature_importance"]
    assert inspected["checkpoints"][-1] == result["passes"]
    status, out, _ = run(capsys, "inspect", "m")
    assert status == 0 and "importance: total gain, splits" in out


@pytest.mark.parametrize("argv, expected", [
    (["--model", "logistic", "--max-depth", "3"], "The --max-depth option applies to the tree models"),
    (["--model", "kmeans", "--k", "2", "--n-trees", "3"], "The --n-trees option applies to the tree models"),
    (["--model", "gbt", "--optimizer", "lbfgs"], "The option --optimizer does not apply to model 'gbt'"),
    (["--model", "gbt", "--l1", "0.1"], "The option --l1 does not apply to model 'gbt'"),
    (["--model", "random-forest", "--l2", "1"], "The option --l2 does not apply to model 'random-forest'"),
    (["--model", "gbt", "--max-bins", "1"], "The 'max_bins' parameter must be an int in [2, 65535]. Got '1'"),
    (["--model", "gbt", "--max-bins", "65536"], "The 'max_bins' parameter must be an int in [2, 65535]"),
    (["--model", "gbt", "--max-depth", "0"], "The 'max_depth' parameter must be an int in [1, 30]. Got '0'"),
    (["--model", "gbt", "--max-depth", "31"], "The 'max_depth' parameter must be an int in [1, 30]"),
    (["--model", "gbt", "--learning-rate", "0"], "The 'learning_rate' parameter must be a number > 0"),
    (["--model", "gbt", "--learning-rate", "-1"], "The 'learning_rate' parameter must be a number > 0"),
    (["--model", "gbt", "--subsample", "0"], "The 'subsample' parameter must be a number in (0, 1]"),
    (["--model", "gbt", "--subsample", "1.5"], "The 'subsample' parameter must be a number in (0, 1]"),
    (["--model", "gbt", "--colsample", "0"], "The 'colsample' parameter must be a number in (0, 1]"),
    (["--model", "random-forest", "--colsample", "1.5"], "The 'colsample' parameter must be a number in "
                                                          "(0, 1]. Got '1.5'"),
    # The optimizer's stopping rule: a tree ensemble stops by --n-trees (and --validation-fraction).
    (["--model", "gbt", "--max-iter", "5"], "The option --max-iter does not apply to model 'gbt'"),
    (["--model", "random-forest", "--tol", "1e-3"], "The option --tol does not apply to model "
                                                     "'random-forest'"),
    (["--model", "gbt", "--gtol", "1e-3"], "The option --gtol does not apply to model 'gbt'"),
    (["--model", "gbt", "--max-features", "sqrt"], "The 'max_features' parameter applies to model "
                                                    "'random-forest'"),
    (["--model", "random-forest", "--learning-rate", "0.3"],
     "The 'learning_rate' parameter does not apply to model 'random-forest'"),
    (["--model", "logistic"], "expected a dataset without missing values for model 'logistic'"),
])
def test_bad_options_write_nothing(scratch, capsys, argv, expected):
    path = scratch[0]
    before = tree(path)
    assert expected in refused(capsys, "train", "train", *argv, "--checkpoint-dir", "m")
    assert tree(path) == before


def test_a_categorical_label_for_regression(scratch, capsys):
    path = scratch[0]
    (path / "named.csv").write_text("a,label\n1,x\n2,y\n3,x\n4,y\n")
    assert run(capsys, "ingest", "named.csv", "named")[0] == 0
    before = tree(path)
    line = refused(capsys, "train", "named", "--model", "gbt", "--objective", "squared_error",
                   "--checkpoint-dir", "m")
    assert "field 'label': expected numeric labels for gbt regression, found class names" in line
    assert tree(path) == before


def test_report_draws_importance_and_the_validation_loss(scratch, capsys):
    path = scratch[0]
    options = ["--n-trees", "8", "--max-depth", "3", "--learning-rate", "0.9", "--l2", "0",
               "--min-child-weight", "0", "--validation-fraction", "0.3", "--n-iter-no-change", "2"]
    trained = run(capsys, "train", "train", "--model", "gbt", *options, "--checkpoint-dir", "m",
                  "--no-metrics")
    assert trained[0] == 0, trained[2]
    status, out, err = run(capsys, "report", "m", "--data", "train", "--output", "r.html", "--json")
    assert status == 0, err
    assert json.loads(out)["sections"] == ["Metrics", "Feature importance", "Validation loss per round",
                                           "Training"]
    page = (path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "gbt model" in page


def _margin_of_export(export, X):
    """The margins of ``X`` by the export's documented rules (docs/trees.md), walked node by node."""
    margin = np.tile(np.asarray(export["base_score"], dtype=np.float64), (len(X), 1))
    for exported in export["trees"]:
        nodes = exported["nodes"]
        for i, row in enumerate(X):
            node = nodes[0]
            while "leaf" not in node:
                value = row[node["feature"]]
                left = node["default_left"] if np.isnan(value) else value <= node["threshold"]
                node = nodes[node["left"] if left else node["right"]]
            margin[i, exported["output"]] += node["leaf"]
    return margin


def test_inspect_writes_the_trees_json_export(scratch, capsys):
    path, X, y = scratch
    assert run(capsys, "train", "train", "--model", "gbt", "--n-trees", "2", "--max-depth", "2",
               "--checkpoint-dir", "m")[0] == 0
    status, out, err = run(capsys, "inspect", "m", "--trees-json", "out/trees.json")
    assert status == 0 and "gbt" in out, err
    export = json.loads((path / "out" / "trees.json").read_text())
    assert export["format"] == "mrtrain-trees" and export["feature_names"] == ["a", "b", "c"]
    assert len(export["trees"]) == 2
    p = 1.0 / (1.0 + np.exp(-_margin_of_export(export, X)[:, 0]))
    np.testing.assert_allclose(p, TreeFittedModel.load("m").predict_proba(X)[:, 1], rtol=0, atol=1e-12)
    # An existing file is left as it was; a directory with no trees writes nothing.
    before = (path / "out" / "trees.json").read_bytes()
    assert "already exists" in refused(capsys, "inspect", "m", "--trees-json", "out/trees.json")
    assert (path / "out" / "trees.json").read_bytes() == before
    assert "found a dataset" in refused(capsys, "inspect", "train", "--trees-json", "other.json")
    assert not (path / "other.json").exists()


def test_a_forest_of_three_named_classes(tmp_path, monkeypatch, capsys):
    """A random forest of three string classes through every command, as a user types them: the leaves hold
    class frequencies; predict writes a probability column per class name, the export lists of three."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 2))
    names = np.array(["setosa", "versicolor", "virginica"])
    y = np.where(X[:, 0] < -0.4, 0, np.where(X[:, 1] < 0, 1, 2))
    (tmp_path / "iris.csv").write_text("a,b,species\n" + "".join(
        f"{float(row[0])!r},{float(row[1])!r},{names[label]}\n" for row, label in zip(X, y, strict=True)))
    assert run(capsys, "ingest", "iris.csv", "data", "--label", "species", "--partitions", "2")[0] == 0
    inline = ("--runner", "inline")  # the runners' bits are test_trees_forest_classes.py's
    status, out, err = run(capsys, "train", "data", "--model", "random-forest", "--n-trees", "3",
                           "--max-depth", "3", "--checkpoint-dir", "rf", "--json", *inline)
    assert status == 0, err
    result = json.loads(out)
    assert result["class_names"] == list(names) and result["objective"] == "onehot_squared_error"
    assert result["metrics"]["accuracy"] > 0.8 and "roc_auc" not in result["metrics"]
    fitted = TreeFittedModel.load("rf")
    assert result["metrics"]["accuracy"] == pytest.approx(accuracy_score(y, fitted.predict(X)), abs=1e-12)
    status, out, err = run(capsys, "evaluate", "data", "--model-dir", "rf", "--json", *inline)
    assert status == 0 and json.loads(out)["metrics"] == result["metrics"], err
    tables = predict_tables(capsys, "data", "rf", tmp_path / "out", *inline)
    assert [n for n in tables[0].column_names if n.startswith("probability_")] == [
        f"probability_{name}" for name in names]
    np.testing.assert_array_equal(probabilities(tables), fitted.predict_proba(X))
    predicted = np.concatenate([t.column("prediction").to_numpy(zero_copy_only=False) for t in tables])
    np.testing.assert_array_equal(predicted, names[fitted.predict(X).astype(int)])
    status, out, _ = run(capsys, "inspect", "rf", "--trees-json", "trees.json")
    assert status == 0 and "classes: setosa, versicolor, virginica" in out
    export = json.loads((tmp_path / "trees.json").read_text())
    assert {tree["output"] for tree in export["trees"]} == {-1}
    assert all(len(node["leaf"]) == 3 for tree in export["trees"] for node in tree["nodes"] if "leaf" in node)
    status, out, err = run(capsys, "report", "rf", "--data", "data", "--output", "r.html", "--json", *inline)
    assert status == 0 and json.loads(out)["sections"] == ["Metrics", "Feature importance", "Training"], err


@pytest.mark.parametrize("model, classify, regress", [("gbt", "softmax", "squared_error"),
                                                      ("random-forest", "classification", "regression")])
def test_integer_labels_trained_as_a_regression_are_warned_of(tmp_path, monkeypatch, capsys, caplog, model,
                                                               classify, regress):
    # Iris's species as the numbers 0, 1, 2: by default (documented) a regression, with a warning that names
    # the values and the objectives to pass; none once an objective is given.
    monkeypatch.chdir(tmp_path)
    rows = [f"{x:.1f},{k}" for k in range(3) for x in (k, k + 0.5, k + 0.2, k + 0.7)]
    (tmp_path / "codes.csv").write_text("x,label\n" + "\n".join(rows) + "\n")
    assert run(capsys, "ingest", "codes.csv", "codes")[0] == 0
    options = ["--model", model, "--n-trees", "1", "--max-depth", "1", "--runner", "inline", "--no-metrics",
               "--json"]
    with caplog.at_level(logging.WARNING, logger="mrtrain"):
        status, out, err = run(capsys, "train", "codes", *options, "--checkpoint-dir", "m")
    assert status == 0, err
    assert json.loads(out)["objective"] == "squared_error" and json.loads(out)["classes"] is None
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [f"{tmp_path / 'codes'}: field 'label': the label takes 3 integer values [0, 1, 2], so "
                      f"{model} trains a regression (objective {regress}) by default; pass --objective "
                      f"{classify} for a classifier of these classes, or --objective {regress} to keep the "
                      "regression"]
    for objective in (regress, "softmax") if model == "gbt" else (regress,):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mrtrain"):
            status, out, err = run(capsys, "train", "codes", *options, "--objective", objective,
                                   "--checkpoint-dir", f"m-{objective}")
        assert status == 0, err
        assert json.loads(out)["classes"] == (None if objective == regress else [0.0, 1.0, 2.0])
        assert [r for r in caplog.records if r.levelno == logging.WARNING] == []
