"""Evaluation metrics as mergeable sums.

:func:`metric_partials` turns one block of rows into a 1-D float64 vector of weighted sums whose
length depends only on the model; vectors of several blocks are merged by elementwise addition,
and :func:`finalize_metrics` turns the merged vector into metrics. With ``s_i`` the sample weights:

- every model: ``n`` (``sum s``) and ``loss`` (weighted mean pointwise loss, no regulariser);
- ``linear``: ``rmse``, ``mae``, ``r2`` from ``sum s y``, ``sum s y^2``, ``sum s (y - eta)^2``
  and ``sum s |y - eta|``; ``r2 = 1 - SSE / SST`` with ``SST = sum s y^2 - (sum s y)^2 / sum s``
  (computed from raw sums, so it loses precision when ``|mean(y)|`` dwarfs ``std(y)``);
- ``poisson``: ``mean_deviance`` (``2 (y log(y / mu) - y + mu)``, ``0 log 0 = 0``) and ``rmse``
  of the mean ``mu = exp(eta)``;
- classifiers (``logistic``, ``softmax``, ``linear-svc``, the naive Bayes models): ``accuracy`` and
  ``confusion_matrix`` (K x K weighted counts, rows = true class, columns = predicted class, in the
  order of ``model.classes``); those that give probabilities (all but ``linear-svc``) add ``log_loss``
  (equal to ``loss``; unlike scikit-learn, probabilities are not clipped); ``logistic`` adds ``roc_auc``;
  ``linear-svc`` adds ``hinge_loss``, the weighted mean of ``max(0, 1 - y eta)`` with ``y`` in {-1, +1}
  (scikit-learn's ``hinge_loss``), while its ``loss`` is the squared hinge it was trained on.

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

from mrtrain.engine.losses import sigmoid
from mrtrain.engine.models import sample_weights

AUC_BINS = 2**14


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
    head = [s.sum(), model.loss.value(y, eta) @ s]
    if model.kind == "linear":
        residual = y - eta
        body = [s @ y, s @ y**2, s @ residual**2, s @ np.abs(residual)]
        return np.array(head + body, dtype=np.float64)
    if model.kind == "poisson":
        with np.errstate(over="ignore"):
            mu = np.exp(eta)
        y_log_y = y * np.log(np.where(y > 0, y, 1.0))
        deviance = 2.0 * (y_log_y - y * eta - y + mu)
        return np.array(head + [s @ deviance, s @ (y - mu) ** 2], dtype=np.float64)
    return np.concatenate([np.array(head), _classification_sums(model, y, s, eta)])


def _classification_sums(model, y, s, eta):
    """Confusion matrix (K*K,); for logistic, positive and negative histograms (2 * bins,); for
    linear-svc, the hinge loss sum (1,)."""
    k = model.n_classes
    if model.kind == "linear-svc":
        true = (y > 0).astype(np.intp)
        confusion = np.bincount(true * k + (eta > 0), weights=s, minlength=k * k)
        return np.concatenate([confusion, [s @ np.maximum(1.0 - y * eta, 0.0)]])
    true = y.astype(np.intp)
    if model.kind == "logistic":
        predicted = (eta > 0).astype(np.intp)
    else:
        predicted = np.argmax(eta, axis=1)
    confusion = np.bincount(true * k + predicted, weights=s, minlength=k * k)
    if model.kind != "logistic":
        return confusion
    probability = sigmoid(eta)
    bins = np.minimum((probability * AUC_BINS).astype(np.intp), AUC_BINS - 1)
    positive = true == 1
    hist_pos = np.bincount(bins[positive], weights=s[positive], minlength=AUC_BINS)
    hist_neg = np.bincount(bins[~positive], weights=s[~positive], minlength=AUC_BINS)
    return np.concatenate([confusion, hist_pos, hist_neg])


def metric_vector_length(model):
    """Length of the vector :func:`metric_partials` returns for `model`."""
    if model.kind == "linear":
        return 6
    if model.kind == "poisson":
        return 4
    length = 2 + model.n_classes**2
    return length + {"logistic": 2 * AUC_BINS, "linear-svc": 1}.get(model.kind, 0)


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
    if model.kind == "linear":
        sum_y, sum_y2, sse, sae = v[2:]
        sst = sum_y2 - sum_y**2 / total if total > 0 else 0.0
        result["rmse"] = _sqrt(_ratio(sse, total))
        result["mae"] = _ratio(sae, total)
        result["r2"] = 1.0 - float(sse / sst) if sst > 0 else None
        return result
    if model.kind == "poisson":
        result["mean_deviance"] = _ratio(v[2], total)
        result["rmse"] = _sqrt(_ratio(v[3], total))
        return result
    k = model.n_classes
    confusion = v[2 : 2 + k * k].reshape(k, k)
    result["accuracy"] = _ratio(np.trace(confusion), total)
    if model.kind == "linear-svc":
        result["hinge_loss"] = _ratio(v[2 + k * k], total)
    else:
        result["log_loss"] = result["loss"]
    result["confusion_matrix"] = [[_count(value) for value in row] for row in confusion]
    if model.kind == "logistic":
        hist_pos = v[2 + k * k : 2 + k * k + AUC_BINS]
        hist_neg = v[2 + k * k + AUC_BINS :]
        result["roc_auc"] = _binned_auc(hist_pos, hist_neg)
    return result


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
    if model.kind != "logistic":
        raise ValueError(f"The 'model' parameter of binned_roc_curve must be a logistic model. Got "
                         f"{model.kind!r} instead.")
    v = np.asarray(v, dtype=np.float64)
    start = 2 + model.n_classes**2
    hist_pos, hist_neg = v[start : start + AUC_BINS], v[start + AUC_BINS :]
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
