"""Evaluation metrics as mergeable sums.

:func:`metric_partials` turns one block of rows into a 1-D float64 vector of weighted sums whose
length depends only on the model; vectors of several blocks are merged by elementwise addition,
and :func:`finalize_metrics` turns the merged vector into metrics. Which metrics a model reports is its
loss's metric family (``model.loss.metrics``, see :mod:`mrtrain.engine.losses`), never its name. With
``s_i`` the sample weights:

- every model: ``n`` (``sum s``) and ``loss`` (weighted mean pointwise loss, no regulariser);
- ``"regression"`` (``linear``): ``rmse``, ``mae``, ``r2`` from ``sum s y``, ``sum s y^2``,
  ``sum s (y - eta)^2`` and ``sum s |y - eta|``; ``r2 = 1 - SSE / SST`` with
  ``SST = sum s y^2 - (sum s y)^2 / sum s`` (computed from raw sums, so it loses precision when
  ``|mean(y)|`` dwarfs ``std(y)``);
- ``"count"`` (``poisson``): ``mean_deviance`` (``2 (y log(y / mu) - y + mu)``, ``0 log 0 = 0``) and
  ``rmse`` of the mean ``mu = exp(eta)``;
- the classifiers' families, ``"binary"`` (``logistic``), ``"multiclass"`` (``softmax``, ``mlp``, the naive
  Bayes models) and ``"margin"`` (``linear-svc``): ``accuracy`` and ``confusion_matrix`` (K x K weighted
  counts, rows = true class, columns = predicted class, in the order of ``model.classes``); those that give
  probabilities (all but ``"margin"``) add ``log_loss``, scikit-learn's ``log_loss``: the weighted mean of
  ``-log p`` of the true class with ``p`` clipped to ``[eps, 1 - eps]``, ``eps`` float64's machine epsilon
  (:data:`LOG_LOSS_EPS`; so one row adds at most ``-log eps = 36.04``). It differs from ``loss``, the
  unclipped cross-entropy, only where a row's ``p`` is outside that interval: a confident wrong naive Bayes
  prediction's ``-log p`` can be in the thousands. ``"binary"`` adds ``roc_auc``; ``"margin"`` adds
  ``hinge_loss``, the weighted mean of ``max(0, 1 - y eta)`` with ``y`` in {-1, +1} (scikit-learn's
  ``hinge_loss``), while its ``loss`` is the squared hinge it was trained on.

``roc_auc`` is approximate: the predicted probability of ``classes[1]`` is binned into
:data:`AUC_BINS` equal-width bins on [0, 1], one weighted histogram for positives and one for
negatives. Pairs in different bins are ranked exactly; pairs sharing a bin count as ties (1/2),
as the trapezoid rule does. The error is therefore at most half the weighted fraction of
positive-negative pairs that share a bin (about ``1 / AUC_BINS`` for spread-out scores; larger
when many scores of both classes sit within ``1 / AUC_BINS`` of each other).

Undefined metrics are None (JSON null): with total weight 0 every metric except ``n`` and
``confusion_matrix``; ``r2`` when the labels have zero variance; ``roc_auc`` when one class has
zero weight.
"""

import numpy as np

from mrtrain.engine.models import sample_weights

AUC_BINS = 2**14
#: Probabilities are clipped to ``[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]`` for ``log_loss``, as scikit-learn's
#: ``log_loss`` (since 1.5) clips with the machine epsilon of float64 probabilities.
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)


def clipped_log_loss(pointwise):
    """``-log(clip(p, eps, 1 - eps))`` from the exact pointwise cross-entropy ``-log p`` (``-log`` is
    decreasing, so clipping ``p`` is clipping ``-log p`` to ``[-log1p(-eps), -log eps]``)."""
    return np.clip(pointwise, -np.log1p(-LOG_LOSS_EPS), -np.log(LOG_LOSS_EPS))


# A metric family has three methods: ``length(model)``, the number of its sums; ``sums(model, y, s, eta)``,
# those sums (ndarray) for one block from the encoded labels, sample weights and margins; and
# ``finish(model, v, total, result)``, which adds its metrics to ``result`` from its merged sums ``v`` and
# the total weight.


class RegressionMetrics:
    """``rmse``, ``mae`` and ``r2`` of the prediction ``eta`` (family ``"regression"``)."""

    def length(self, model):
        return 4

    def sums(self, model, y, s, eta):
        residual = y - eta
        return np.array([s @ y, s @ y**2, s @ residual**2, s @ np.abs(residual)])

    def finish(self, model, v, total, result):
        sum_y, sum_y2, sse, sae = v
        sst = sum_y2 - sum_y**2 / total if total > 0 else 0.0
        result["rmse"] = _sqrt(_ratio(sse, total))
        result["mae"] = _ratio(sae, total)
        result["r2"] = 1.0 - float(sse / sst) if sst > 0 else None


class CountMetrics:
    """``mean_deviance`` (Poisson) and ``rmse`` of the mean ``mu = inverse_link(eta)`` (family
    ``"count"``)."""

    def length(self, model):
        return 2

    def sums(self, model, y, s, eta):
        mu = model.loss.inverse_link(eta)
        y_log_y = y * np.log(np.where(y > 0, y, 1.0))
        deviance = 2.0 * (y_log_y - y * eta - y + mu)
        return np.array([s @ deviance, s @ (y - mu) ** 2])

    def finish(self, model, v, total, result):
        result["mean_deviance"] = _ratio(v[0], total)
        result["rmse"] = _sqrt(_ratio(v[1], total))


class MulticlassMetrics:
    """``accuracy``, ``log_loss`` and ``confusion_matrix`` (family ``"multiclass"``); the base of the other
    classifiers' families, whose sums start with the K x K confusion matrix and the sum of the score."""

    def length(self, model):
        return model.n_classes**2 + 1

    def sums(self, model, y, s, eta):
        k = model.n_classes
        true = model.loss.class_index(y)
        confusion = np.bincount(true * k + model.predicted_class_index(eta), weights=s, minlength=k * k)
        return np.concatenate([confusion, [self._score_sum(model, y, s, eta)]])

    def _score_sum(self, model, y, s, eta):
        """The weighted sum of the score: the clipped log loss (:func:`clipped_log_loss`)."""
        return s @ clipped_log_loss(model.loss.value(y, eta))

    def finish(self, model, v, total, result):
        k = model.n_classes
        confusion = v[: k * k].reshape(k, k)
        result["accuracy"] = _ratio(np.trace(confusion), total)
        self._score(model, v, total, result)
        result["confusion_matrix"] = [[_count(value) for value in row] for row in confusion]

    def _score(self, model, v, total, result):
        """Add the mean score of the predictions: ``log_loss``, clipped as scikit-learn's."""
        result["log_loss"] = _ratio(v[model.n_classes**2], total)


class BinaryMetrics(MulticlassMetrics):
    """:class:`MulticlassMetrics` and ``roc_auc`` from positive and negative histograms of the probability
    of ``classes[1]`` (family ``"binary"``)."""

    def length(self, model):
        return super().length(model) + 2 * AUC_BINS

    def sums(self, model, y, s, eta):
        probability = model.loss.inverse_link(eta)
        bins = np.minimum((probability * AUC_BINS).astype(np.intp), AUC_BINS - 1)
        positive = model.loss.class_index(y) == 1
        hist_pos = np.bincount(bins[positive], weights=s[positive], minlength=AUC_BINS)
        hist_neg = np.bincount(bins[~positive], weights=s[~positive], minlength=AUC_BINS)
        return np.concatenate([super().sums(model, y, s, eta), hist_pos, hist_neg])

    def finish(self, model, v, total, result):
        super().finish(model, v, total, result)
        result["roc_auc"] = _binned_auc(*_histograms(model, v))


class MarginMetrics(MulticlassMetrics):
    """``accuracy``, ``hinge_loss`` and ``confusion_matrix`` of a classifier without probabilities, whose
    labels are -1 and +1 (family ``"margin"``)."""

    def _score_sum(self, model, y, s, eta):
        """The weighted sum of the hinge."""
        return s @ np.maximum(1.0 - y * eta, 0.0)

    def _score(self, model, v, total, result):
        """Add ``hinge_loss``, the mean hinge."""
        result["hinge_loss"] = _ratio(v[model.n_classes**2], total)


#: The metric family of each ``loss.metrics`` name.
FAMILIES = {"regression": RegressionMetrics(), "count": CountMetrics(), "multiclass": MulticlassMetrics(),
            "binary": BinaryMetrics(), "margin": MarginMetrics()}


def metric_partials(model, X, y_encoded, w, theta):
    """Weighted sums for the metrics of one block of rows.

    Parameters
    ----------
    model : mrtrain.engine.models.Model
        The model.
    X : ndarray or scipy.sparse CSR matrix of shape (n, d)
        Features; a sparse ``X`` is never densified (see :meth:`Model.decision_function`).
    y_encoded : ndarray of shape (n,)
        Labels encoded by ``model.encode_labels``.
    w : ndarray of shape (n,) or None
        Non-negative sample weights; None means all ones.
    theta : ndarray of shape (p,)
        Parameters.

    Returns
    -------
    ndarray of shape (metric_vector_length(model),), float64
        Sums; add vectors of several blocks elementwise to merge them.
    """
    eta = model.decision_function(X, theta)
    n = eta.shape[0]
    s = sample_weights(w, n)
    y = np.asarray(y_encoded)
    if y.shape != (n,):
        raise ValueError(f"Labels must have shape ({n},) to match X. Got {y.shape} instead.")
    head = np.array([s.sum(), model.loss.value(y, eta) @ s])
    return np.concatenate([head, FAMILIES[model.loss.metrics].sums(model, y, s, eta)])


def metric_vector_length(model):
    """Length of the vector :func:`metric_partials` returns for `model`."""
    return 2 + FAMILIES[model.loss.metrics].length(model)


def _count(value):
    """A summed count: an int when it is whole (unit weights), else the float weight sum."""
    value = float(value)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def finalize_metrics(model, v):
    """Metrics from a merged vector of sums.

    Parameters
    ----------
    model : mrtrain.engine.models.Model
        The model the sums were computed for.
    v : array_like of shape (metric_vector_length(model),)
        Sum of :func:`metric_partials` vectors.

    Returns
    -------
    dict of str to float, list or None
        See the module docstring for the keys; undefined metrics are None.
    """
    v = np.asarray(v, dtype=np.float64)
    expected = metric_vector_length(model)
    if v.shape != (expected,):
        raise ValueError(
            f"Metric vector for {model!r} must have shape ({expected},). Got {v.shape} instead."
        )
    total = v[0]
    result = {"n": _count(total), "loss": _ratio(v[1], total)}
    FAMILIES[model.loss.metrics].finish(model, v[2:], total, result)
    return result


def has_roc_curve(model):
    """Whether ``model``'s metric sums hold the score histograms of ``roc_auc`` and :func:`binned_roc_curve`
    (a binary classifier with probabilities)."""
    loss = getattr(model, "loss", None)  # k-means has none
    return loss is not None and loss.metrics == "binary"


def _histograms(model, v):
    """The positive and negative score histograms in the family sums ``v`` of a ``"binary"`` model."""
    start = model.n_classes**2 + 1
    return v[start : start + AUC_BINS], v[start + AUC_BINS :]


def _binned_auc(hist_pos, hist_neg):
    """ROC AUC from weighted score histograms; pairs within one bin count as ties."""
    total_pos = hist_pos.sum()
    total_neg = hist_neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        return None
    neg_below = np.cumsum(hist_neg) - hist_neg
    return float(hist_pos @ (neg_below + 0.5 * hist_neg) / (total_pos * total_neg))


def binned_roc_curve(model, v):
    """The ROC curve of a logistic model from the merged metric vector's score histograms.

    One point per bin edge below which a score falls, from threshold 1 down: ``tpr`` and ``fpr`` are the
    weighted fractions of positives and negatives whose probability of ``classes[1]`` lies in a bin at or
    above the threshold (``p >= threshold`` exactly: the bins are ``floor(p * AUC_BINS)`` with
    ``AUC_BINS`` a power of two). The trapezoid area under these points is ``roc_auc``.

    Parameters
    ----------
    model : mrtrain.engine.models.Model
        A ``logistic`` model.
    v : array_like of shape (metric_vector_length(model),)
        Merged :func:`metric_partials` vectors.

    Returns
    -------
    dict or None
        ``{"threshold": [...], "fpr": [...], "tpr": [...]}`` starting at (0, 0) for threshold > 1 and
        ending at (1, 1); None when one class has zero weight.
    """
    if not has_roc_curve(model):
        raise ValueError(f"The 'model' parameter of binned_roc_curve must be a logistic model. Got "
                         f"{model.kind!r} instead.")
    hist_pos, hist_neg = _histograms(model, np.asarray(v, dtype=np.float64)[2:])
    total_pos, total_neg = hist_pos.sum(), hist_neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        return None
    edges = np.flatnonzero((hist_pos > 0) | (hist_neg > 0))[::-1]
    above_pos = np.cumsum(hist_pos[::-1])[::-1]
    above_neg = np.cumsum(hist_neg[::-1])[::-1]
    return {
        "threshold": [float("inf")] + (edges / AUC_BINS).tolist(),
        "fpr": [0.0] + (above_neg[edges] / total_neg).tolist(),
        "tpr": [0.0] + (above_pos[edges] / total_pos).tolist(),
    }


def _ratio(numerator, denominator):
    return float(numerator / denominator) if denominator > 0 else None


def _sqrt(value):
    return None if value is None else float(np.sqrt(value))
