"""The engine's models: one registry builds every kind, the base classes promise only what every subclass
keeps, and the naive Bayes event models (one class each) give the bits they gave before they were split.

The recorded digests were computed with the code before the split (one ``if kind == ...`` per event model),
on the data below: three blocks merged in order, parameters, then predictions.
"""

import hashlib

import numpy as np
import pytest
from scipy import sparse

from mrtrain.engine.kmeans import KMeansModel
from mrtrain.engine.mlp import MLPModel
from mrtrain.engine.models import MODELS, DifferentiableModel, LinearModel, Model
from mrtrain.engine.naive_bayes import (
    DEFAULT_SMOOTHING,
    NaiveBayesModel,
    class_statistics,
    merge_statistics,
    naive_bayes_parameters,
)
from mrtrain.engine.registry import BUILDERS, make_model, model_from_spec

#: sha256 (first 16 hex digits) of parameters, probabilities and predictions, by (kind, sparse input).
RECORDED = {
    ("multinomial-nb", False): "34c86221a5b5920c",
    ("multinomial-nb", True): "fab1870309271c5a",
    ("bernoulli-nb", False): "bca650f8932dbefe",
    ("bernoulli-nb", True): "bca650f8932dbefe",
    ("gaussian-nb", False): "ee099308b78c2a46",
}


def counts():
    rng = np.random.default_rng(7)
    n, d = 300, 5
    y = rng.integers(0, 3, size=n).astype(np.float64)
    X = rng.poisson(lam=1.0 + y[:, None] * np.arange(1, d + 1) / 4, size=(n, d)).astype(np.float64)
    X[:, 1] += rng.normal(scale=1e-3, size=n) * (y == 1)
    X[:, 1] = np.abs(X[:, 1])
    return X, y, rng.random(n) + 0.5


@pytest.mark.parametrize(("kind", "sparse_input"), sorted(RECORDED))
def test_naive_bayes_models_give_the_recorded_bits(kind, sparse_input):
    X, y, w = counts()
    model = make_model(kind, X.shape[1], classes=[0.0, 1.0, 2.0])
    if sparse_input:
        X = sparse.csr_array(X)
    encoded = model.encode_labels(y)
    blocks = [slice(0, 100), slice(100, 170), slice(170, 300)]
    vectors = [class_statistics(model, X[b], encoded[b], w[b]) for b in blocks]
    theta = naive_bayes_parameters(model, merge_statistics(model, vectors), 0.5)
    out = model.predict(X, theta)
    digest = hashlib.sha256(theta.tobytes() + out["probabilities"].tobytes() + out["prediction"].tobytes())
    assert digest.hexdigest()[:16] == RECORDED[kind, sparse_input]


def test_the_registry_builds_every_kind_and_rebuilds_it_from_its_spec():
    assert set(BUILDERS) == set(MODELS)
    built = {}
    for kind in MODELS:
        classes = None if kind in ("linear", "poisson", "kmeans") else [0.0, 1.0]
        model = make_model(kind, 3, classes=classes, **({"layers": [2]} if kind == "mlp" else {}))
        assert model.kind == kind
        again = model_from_spec(model.spec())
        assert type(again) is type(model) and again.spec() == model.spec()
        built[kind] = type(model)
    assert {kind for kind, cls in built.items() if cls is LinearModel} == {
        "linear", "logistic", "softmax", "poisson", "linear-svc"}
    assert built["mlp"] is MLPModel and built["kmeans"] is KMeansModel
    assert {kind for kind, cls in built.items() if issubclass(cls, NaiveBayesModel)} == set(DEFAULT_SMOOTHING)


def test_only_models_the_optimizer_loop_trains_promise_partial_sums():
    """A naive Bayes model is a :class:`Model` (labels, predictions, coefficients) fitted from statistics:
    it has no ``partial_sums`` to break; the linear models and the MLP are differentiable models."""
    for kind in MODELS:
        classes = None if kind in ("linear", "poisson", "kmeans") else [0.0, 1.0, 2.0]
        if kind in ("logistic", "linear-svc"):
            classes = [0.0, 1.0]
        model = make_model(kind, 2, classes=classes)
        if isinstance(model, NaiveBayesModel):
            assert isinstance(model, Model) and not isinstance(model, DifferentiableModel)
            assert not hasattr(model, "partial_sums") and not hasattr(model, "initial_point")
        elif isinstance(model, Model):
            assert isinstance(model, DifferentiableModel)
            sums = model.partial_sums(np.ones((2, 2)), model.encode_labels([0.0, 1.0]), None,
                                      model.initial_point(0)[None, :])
            assert sums.weight == 2.0 and sums.grad.shape == (1, model.n_params)


def test_make_model_refuses_what_does_not_fit_the_kind_as_before():
    with pytest.raises(ValueError, match=r"^The 'kind' parameter must be one of \('linear', "):
        make_model("tree", 2)
    with pytest.raises(ValueError, match=r"^The 'layers' parameter applies to model 'mlp' only. Got "
                                         r"layers=\[3\] for model 'kmeans' instead\.$"):
        make_model("kmeans", 2, layers=[3])
    with pytest.raises(ValueError, match=r"^Model 'logistic' needs exactly 2 classes \(for more classes use "
                                         r"model 'softmax'\)\. Got 3 classes"):
        make_model("logistic", 2, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"^Model 'gaussian-nb' needs at least 2 classes\. Got 1 classes"):
        make_model("gaussian-nb", 2, classes=[0])
    with pytest.raises(ValueError, match=r"^The 'fit_intercept' parameter of model 'bernoulli-nb' must be "
                                         r"True"):
        make_model("bernoulli-nb", 2, classes=[0, 1], fit_intercept=False)
