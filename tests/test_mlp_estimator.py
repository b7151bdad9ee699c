"""``mrtrain.MLPClassifier``: scikit-learn's estimator checks, bitwise parity with ``mrtrain train --model
mlp`` (the CLI as a user types it) and with ``Trainer``, and scikit-learn's attributes and shapes.

The network is not convex, so scikit-learn's own ``MLPClassifier`` (another random start) is no
reference for the weights; the reference here is mrtrain's CLI and Trainer, which must give the same bits
from the same rows, settings and seed, and scikit-learn's forward pass at our weights (test_mlp.py).
"""

import json

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

import mrtrain
from mrtrain import MLPClassifier
from mrtrain.fitted import FittedModel
from tests.command import predict_tables, run
from tests.command import probabilities as probability_columns

#: A small, short network keeps the ~60 checks' fits cheap (every L-BFGS step is an inline pass or more):
#: the checks need accuracy above 0.83 on easy blobs, which 4 L-BFGS steps of 4 tanh units reach (0.93 on
#: the three blobs, 0.97 on two; 8 steps reach the same and take twice the passes).
CHECKED = [MLPClassifier(hidden_layer_sizes=(4,), max_iter=4)]
#: Checks that are skipped, with the reason: none.
EXPECTED_FAILED_CHECKS = {}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(CHECKED, expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_exported_from_package():
    assert mrtrain.MLPClassifier is MLPClassifier
    assert "MLPClassifier" in dir(mrtrain)


def iris_csv(tmp_path):
    """Iris as a CSV file a user would ingest (exact floats), and its rows."""
    X, y = load_iris(return_X_y=True)
    source = tmp_path / "iris.csv"
    lines = ["a,b,c,d,label"] + [",".join(repr(float(v)) for v in (*row, label))
                                 for row, label in zip(X, y, strict=True)]
    source.write_text("\n".join(lines) + "\n")
    return str(source), X, y.astype(float)


def test_same_bits_as_the_cli_and_trainer(tmp_path, capsys):
    source, X, y = iris_csv(tmp_path)
    data, model_dir = str(tmp_path / "iris"), str(tmp_path / "ck")
    assert run(capsys, "ingest", source, data, "--partitions", "2")[0] == 0
    status, out, err = run(capsys, "train", data, "--model", "mlp", "--layers", "6,4", "--activation", "relu",
                           "--seed", "3", "--max-iter", "10", "--l2", "1e-3", "--runner", "inline",
                           "--checkpoint-dir", model_dir, "--json")
    assert status == 0, err
    cli = FittedModel.load(model_dir)
    with pytest.warns(ConvergenceWarning, match="MLPClassifier stopped before converging"):
        ours = MLPClassifier((6, 4), "relu", l2=1e-3, max_iter=10, random_state=3, partitions=2).fit(X, y)
    for mine, theirs in zip([*ours.coefs_, *ours.intercepts_], [*cli.coef_, *cli.intercept_], strict=True):
        assert_array_equal(mine, theirs)  # bit for bit
    assert ours.n_iter_ == cli.n_iter_ == json.loads(out)["iterations"]
    assert ours.loss_ == cli.objective_
    assert_array_equal(ours.predict_proba(X), cli.predict_proba(X))
    assert_array_equal(ours.predict(X), cli.predict(X))
    tables = predict_tables(capsys, data, model_dir, tmp_path / "predictions", "--runner", "inline")
    written = probability_columns(tables)
    assert_array_equal(written, ours.predict_proba(X))
    # The estimator on the dataset path: the same bits again.
    with pytest.warns(ConvergenceWarning):
        on_path = MLPClassifier((6, 4), "relu", l2=1e-3, max_iter=10, random_state=3).fit(data)
    for mine, theirs in zip(on_path.coefs_, cli.coef_, strict=True):
        assert_array_equal(mine, theirs)
    assert_array_equal(on_path.classes_, [0.0, 1.0, 2.0])


def test_attributes_string_labels_and_accuracy():
    X, y = load_iris(return_X_y=True)
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    model = MLPClassifier(hidden_layer_sizes=(5,), max_iter=200, random_state=1).fit(X, labels)
    assert_array_equal(model.classes_, ["setosa", "versicolor", "virginica"])
    assert [c.shape for c in model.coefs_] == [(4, 5), (5, 3)]
    assert [b.shape for b in model.intercepts_] == [(5,), (3,)]
    assert model.n_layers_ == 3 and model.n_outputs_ == 3 and model.out_activation_ == "softmax"
    assert model.n_features_in_ == 4
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_array_equal(model.predict(X), model.classes_[np.argmax(proba, axis=1)])
    assert model.score(X, labels) >= 0.95
    # scikit-learn's forward pass at our weights gives our probabilities (its MLP with our coefs_).
    X_hidden = np.tanh(X @ model.coefs_[0] + model.intercepts_[0])
    logits = X_hidden @ model.coefs_[1] + model.intercepts_[1]
    reference = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(proba, reference / reference.sum(axis=1, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("params, match", [
    ({"activation": "sigmoid"}, r"The 'activation' parameter of MLPClassifier must be one of \['tanh', "
                                r"'relu'\]. Got 'sigmoid' instead"),
    ({"hidden_layer_sizes": (0,)}, r"The 'layers' parameter of model 'mlp' must be a non-empty list of ints"),
    ({"hidden_layer_sizes": None}, r"The 'hidden_layer_sizes' parameter of MLPClassifier must be a sequence"),
    ({"optimizer": "newton"}, r"The 'optimizer' parameter of model 'mlp' must be 'lbfgs' or 'gd'"),
    ({"random_state": -1}, r"The 'random_state' parameter of MLPClassifier must be None, an int >= 0"),
])
def test_bad_settings_are_refused(params, match):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)
