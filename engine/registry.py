"""Every model kind and what builds it: :func:`make_model` and :func:`model_from_spec`.

The base module :mod:`mrtrain.engine.models` knows none of the models built on it; this module imports
them all: the linear models (:class:`mrtrain.engine.models.LinearModel`, one per loss of
:data:`mrtrain.engine.models.GLM_LOSSES`), the MLP (:mod:`mrtrain.engine.mlp`), the naive Bayes models
(:mod:`mrtrain.engine.naive_bayes`) and k-means (:mod:`mrtrain.engine.kmeans`). A new kind is a builder
here and its name in :data:`mrtrain.engine.models.MODELS`.
"""

import numpy as np

from mrtrain.engine.kmeans import KMeansModel
from mrtrain.engine.mlp import DEFAULT_LAYERS, make_mlp
from mrtrain.engine.models import (
    CLUSTERING_MODELS,
    GLM_LOSSES,
    MODELS,
    NETWORK_MODELS,
    LinearModel,
    check_classes,
)
from mrtrain.engine.naive_bayes import NAIVE_BAYES_CLASSES, make_naive_bayes


def _refuse_network_options(kind, layers, activation):
    for name, value in (("layers", layers), ("activation", activation)):
        if value is not None:
            raise ValueError(f"The {name!r} parameter applies to model 'mlp' only. Got {name}={value!r} for "
                             f"model {kind!r} instead.")


def _linear(kind, n_features, classes, fit_intercept, layers, activation):
    _refuse_network_options(kind, layers, activation)
    loss = GLM_LOSSES[kind]
    if not loss.is_classifier:
        if classes is not None:
            raise ValueError(
                f"Model {kind!r} takes no classes (classes=None). Got classes={classes!r}."
            )
        return LinearModel(kind, n_features, loss(), None, bool(fit_intercept))
    found = check_classes(kind, classes, binary=not loss.is_multiclass)
    loss = loss(len(found)) if loss.is_multiclass else loss()
    return LinearModel(kind, n_features, loss, found, bool(fit_intercept))


def _network(kind, n_features, classes, fit_intercept, layers, activation):
    return make_mlp(n_features, classes=check_classes(kind, classes, binary=False),
                    fit_intercept=fit_intercept, layers=DEFAULT_LAYERS if layers is None else layers,
                    activation="tanh" if activation is None else activation)


def _clustering(kind, n_features, classes, fit_intercept, layers, activation):
    _refuse_network_options(kind, layers, activation)
    if classes is not None:
        raise ValueError(f"Model {kind!r} takes no classes (classes=None). Got classes={classes!r}.")
    return KMeansModel(n_features)


def _naive_bayes(kind, n_features, classes, fit_intercept, layers, activation):
    _refuse_network_options(kind, layers, activation)
    return make_naive_bayes(kind, n_features, classes=check_classes(kind, classes, binary=False),
                            fit_intercept=fit_intercept)


#: What builds each model kind: ``builder(kind, n_features, classes, fit_intercept, layers, activation)``.
BUILDERS = {
    **dict.fromkeys(GLM_LOSSES, _linear),
    **dict.fromkeys(NETWORK_MODELS, _network),
    **dict.fromkeys(NAIVE_BAYES_CLASSES, _naive_bayes),
    **dict.fromkeys(CLUSTERING_MODELS, _clustering),
}


def make_model(kind, n_features, *, classes=None, fit_intercept=True, layers=None, activation=None):
    """Build a model.

    Parameters
    ----------
    kind : str, one of :data:`mrtrain.engine.models.MODELS`
        Model family: ``linear`` (squared loss), ``logistic`` (binary), ``softmax`` (multinomial
        logistic), ``poisson`` (log link), ``linear-svc`` (squared hinge), a naive Bayes model
        (:func:`mrtrain.engine.naive_bayes.make_naive_bayes`, which takes the same arguments), ``mlp``
        (:func:`mrtrain.engine.mlp.make_mlp`), or ``kmeans`` (:class:`mrtrain.engine.kmeans.KMeansModel`;
        no classes, ``fit_intercept`` ignored).
    n_features : int
        Number of features ``d`` (>= 1).
    classes : list of float or None
        Class labels; required for ``logistic`` and ``linear-svc`` (exactly 2) and ``softmax``, ``mlp`` and
        the naive Bayes models (at least 2), must be None for ``linear``, ``poisson`` and ``kmeans``. Stored
        sorted, like scikit-learn's ``classes_``.
    fit_intercept : bool, default True
        Whether to fit an intercept per output (must be True for ``mlp`` and naive Bayes).
    layers : sequence of int, optional
        ``mlp`` only: hidden layer sizes, each >= 1 (default ``(100,)``, as scikit-learn's).
    activation : {"tanh", "relu"}, optional
        ``mlp`` only: the hidden layers' activation (default ``"tanh"``).

    Returns
    -------
    mrtrain.engine.models.LinearModel, mrtrain.engine.naive_bayes.NaiveBayesModel,
    mrtrain.engine.mlp.MLPModel or mrtrain.engine.kmeans.KMeansModel

    Raises
    ------
    ValueError
        For an unknown kind, a bad feature count, or classes or options that do not fit the kind.
    """
    if kind not in MODELS:
        raise ValueError(f"The 'kind' parameter must be one of {MODELS}. Got {kind!r} instead.")
    if isinstance(n_features, bool) or not isinstance(n_features, int | np.integer) or (
        n_features < 1
    ):
        raise ValueError(f"The 'n_features' parameter must be an int >= 1. Got {n_features!r}.")
    return BUILDERS[kind](kind, int(n_features), classes, fit_intercept, layers, activation)


def model_from_spec(spec):
    """The model a spec describes: a dict with ``kind``, ``n_features``, ``classes``, ``fit_intercept`` and,
    for ``mlp``, ``layers`` and ``activation`` (what the model's ``spec()`` returns; a task's model)."""
    return make_model(spec["kind"], spec["n_features"], classes=spec["classes"],
                      fit_intercept=spec["fit_intercept"], layers=spec.get("layers"),
                      activation=spec.get("activation"))
