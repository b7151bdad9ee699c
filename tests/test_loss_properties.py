"""Loss properties (label interval, class encoding, inverse link, metric family) and that models and metrics
follow them rather than the model's name."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy.special import expit, softmax

from mrtrain.engine.losses import (
    NON_NEGATIVE,
    REAL_LINE,
    Interval,
    LogisticLoss,
    MultinomialLoss,
    PoissonLoss,
    SquaredHingeLoss,
    SquaredLoss,
)
from mrtrain.engine.metrics import (
    AUC_BINS,
    FAMILIES,
    finalize_metrics,
    has_roc_curve,
    metric_partials,
    metric_vector_length,
)
from mrtrain.engine.models import BINARY_MODELS, CLASSIFIERS, GLM_LOSSES, LinearModel
from mrtrain.engine.registry import make_model

LOSSES = [SquaredLoss(), PoissonLoss(), LogisticLoss(), SquaredHingeLoss(), MultinomialLoss(3)]


@pytest.mark.parametrize(
    ("interval", "y", "expected"),
    [
        (REAL_LINE, [-1e300, 0.0, 5.0, np.inf, -np.inf, np.nan], [True, True, True, False, False, False]),
        (NON_NEGATIVE, [0.0, 2.5, -1e-300, np.inf, np.nan], [True, True, False, False, False]),
        (Interval(0.0, 1.0, False, True), [0.0, 0.5, 1.0, 1.5], [False, True, True, False]),
        (Interval(-1.0, 1.0, True, False), [-1.0, 1.0], [True, False]),
        (Interval(-np.inf, np.inf, True, True), [np.inf, -np.inf, 3.0], [False, False, True]),
    ],
)
def test_interval_includes(interval, y, expected):
    assert_array_equal(interval.includes(np.array(y)), expected)


@pytest.mark.parametrize(
    ("interval", "words"),
    [
        (REAL_LINE, "finite"),
        (NON_NEGATIVE, "finite and >= 0"),
        (Interval(0.0, 1.0, False, True), "finite and > 0 and <= 1"),
        (Interval(-np.inf, 2.5, False, False), "finite and < 2.5"),
    ],
)
def test_interval_describe(interval, words):
    assert interval.describe() == words


@pytest.mark.parametrize("loss", LOSSES, ids=lambda loss: type(loss).__name__)
def test_declared_properties_agree(loss):
    assert loss.is_multiclass == (loss.n_outputs > 1)
    assert (loss.interval_y is None) == loss.is_classifier
    assert loss.metrics in FAMILIES
    if loss.is_classifier:
        index = np.array([1, 0, 2, 1] if loss.is_multiclass else [1, 0, 0, 1])
        assert_array_equal(loss.class_index(loss.encode_classes(index)), index)


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        (SquaredLoss(), lambda eta: eta),
        (PoissonLoss(), np.exp),
        (LogisticLoss(), expit),
        (MultinomialLoss(3), lambda eta: softmax(eta, axis=-1)),
    ],
    ids=lambda value: type(value).__name__,
)
def test_inverse_link_is_the_mean_or_the_probabilities(loss, expected):
    eta = np.random.default_rng(0).normal(size=(5, loss.n_outputs)).squeeze()
    np.testing.assert_allclose(loss.inverse_link(eta), expected(eta), rtol=1e-14)


def test_a_margin_classifier_has_no_inverse_link():
    assert SquaredHingeLoss.inverse_link is None and SquaredHingeLoss.metrics == "margin"


def test_kind_lists_follow_the_losses():
    assert BINARY_MODELS == ("logistic", "linear-svc")
    assert [kind for kind in CLASSIFIERS if kind in GLM_LOSSES] == ["logistic", "softmax", "linear-svc"]
    for kind, loss in GLM_LOSSES.items():
        assert isinstance(make_model(kind, 2, classes=[0.0, 1.0] if loss.is_classifier else None).loss, loss)


def renamed(loss, classes=None):
    """A model of ``loss`` under a name no code knows."""
    return LinearModel("renamed", 2, loss, classes, True)


def test_label_validation_follows_the_interval():
    model = renamed(PoissonLoss())
    assert_array_equal(model.encode_labels([0.0, 3.0]), [0.0, 3.0])
    with pytest.raises(ValueError, match=r"^Label -2\.0 is not valid for model 'renamed': labels must be "
                                         r"finite and >= 0\.$"):
        model.encode_labels([1.0, -2.0])


@pytest.mark.parametrize(
    ("loss", "encoded", "keys", "extra"),
    [
        # Beyond the confusion matrix: the sum of the score (the clipped log loss, or the hinge loss), and
        # for the binary family the two AUC histograms.
        (LogisticLoss(), [1.0, 0.0], ["prediction", "probability"], 1 + 2 * AUC_BINS),
        (SquaredHingeLoss(), [1.0, -1.0], ["prediction", "margin"], 1),
        (MultinomialLoss(2), [1, 0], ["prediction", "probabilities"], 1),
    ],
    ids=["binary", "margin", "multiclass"],
)
def test_classifier_behaviour_follows_the_loss(loss, encoded, keys, extra):
    model = renamed(loss, [-1.0, 4.0])
    encoded_labels = model.encode_labels([4.0, -1.0])
    assert_array_equal(encoded_labels, encoded)
    # The first row's margin favours classes[1], the second row's classes[0].
    theta = np.array([1.0, -1.0, 0.0] if model.n_outputs == 1 else [-1.0, 1.0, 0.0, 1.0, -1.0, 0.0])
    X = np.array([[2.0, 0.0], [0.0, 2.0]])
    out = model.predict(X, theta)
    assert list(out) == keys
    assert_array_equal(out["prediction"], [4.0, -1.0])
    assert metric_vector_length(model) == 2 + 4 + extra
    metrics = finalize_metrics(model, metric_partials(model, X, encoded_labels, None, theta))
    assert metrics["accuracy"] == 1.0 and metrics["confusion_matrix"] == [[1, 0], [0, 1]]
    assert has_roc_curve(model) == ("roc_auc" in metrics)


@pytest.mark.parametrize(("loss", "names"), [(SquaredLoss(), ["rmse", "mae", "r2"]),
                                             (PoissonLoss(), ["mean_deviance", "rmse"])])
def test_regression_behaviour_follows_the_loss(loss, names):
    model = renamed(loss)
    X, theta = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([0.5, -0.5, 0.1])
    out = model.predict(X, theta)
    np.testing.assert_array_equal(out["prediction"], loss.inverse_link(X @ theta[:2] + theta[2]))
    metrics = finalize_metrics(model, metric_partials(model, X, model.encode_labels([1.0, 0.0, 2.0]), None,
                                                      theta))
    assert list(metrics) == ["n", "loss", *names]
    assert not has_roc_curve(model)


def test_the_inference_and_path_lists_follow_the_losses():
    from mrtrain.engine.coefficient_table import INFERENCE_MODELS, SEPARABLE_MODELS

    assert INFERENCE_MODELS == ("linear", "logistic", "poisson")
    assert SEPARABLE_MODELS == ("logistic", "poisson")
    assert [kind for kind, loss in GLM_LOSSES.items() if not loss.canonical_link] == ["linear-svc"]
    assert [kind for kind, loss in GLM_LOSSES.items() if loss.estimated_dispersion] == ["linear"]


def renamed_fit(loss, classes=None):
    """A renamed model of ``loss`` and the sums of one pass with a Hessian at a point near its optimum."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 2))
    eta = X @ [0.8, -0.5] + 0.3
    y = {SquaredLoss: eta + rng.normal(scale=0.5, size=60), PoissonLoss: rng.poisson(np.exp(eta)) * 1.0,
         LogisticLoss: (rng.random(60) < expit(eta)) * 1.0}[type(loss)]
    model = renamed(loss, classes)
    theta = np.array([0.8, -0.5, 0.3])
    return model, model.partial_sums(X, model.encode_labels(y), None, theta[None, :], hessian=1), theta


def mean_evaluation(sums):
    from mrtrain.engine.optimizers.base import Evaluation

    return Evaluation(sums.loss[0] / sums.weight, sums.grad[0] / sums.weight, sums.hess[0] / sums.weight)


def test_the_coefficient_table_follows_the_loss_not_the_name():
    """A squared-loss model of any name gets t statistics with the dispersion estimated from its residuals,
    as statsmodels' OLS; a Poisson one z statistics with dispersion 1; only separable losses get a probe."""
    from mrtrain.engine.coefficient_table import inference_table, separation_probe

    model, sums, theta = renamed_fit(SquaredLoss())
    table = inference_table(model, sums, theta, l2=0.0)
    assert table["statistic_name"] == "t" and table["df"] == 57.0
    assert table["dispersion"] == 2.0 * sums.loss[0] / 57.0
    assert separation_probe(model, theta, mean_evaluation(sums)) is None
    model, sums, theta = renamed_fit(PoissonLoss())
    table = inference_table(model, sums, theta, l2=0.0)
    assert table["statistic_name"] == "z" and table["dispersion"] == 1.0 and table["df"] is None
    assert separation_probe(model, theta, mean_evaluation(sums)) is not None


def test_the_penalty_path_moves_to_the_intercept_optimum_for_canonical_links_only():
    """λmax: for a canonical link the gradient at zero coefficients is taken at the intercept-only optimum
    (the feature means times the intercept's gradient are removed); the squared hinge has no such link."""
    from mrtrain.engine.grid import regularization_path

    rng = np.random.default_rng(5)
    X = rng.normal(loc=2.0, size=(50, 3))
    y = (X[:, 0] + rng.normal(size=50) > 2.0) * 1.0
    means = X.mean(axis=0)
    lambdas = {}
    for loss in (LogisticLoss(), SquaredHingeLoss()):
        model = LinearModel("renamed", 3, loss, [0.0, 1.0], True)
        zero = model.partial_sums(X, model.encode_labels(y), None, np.zeros((1, 4)))
        lambdas[loss.metrics], _ = regularization_path(zero, model, n_values=1, ratio=0.1, alpha=1.0,
                                                       feature_means=means)
        rows = zero.grad[0] / zero.weight
        expected = rows[:3] - rows[3] * means if loss.canonical_link else rows[:3]
        assert lambdas[loss.metrics] == np.max(np.abs(expected))
