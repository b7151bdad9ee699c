"""Objectives of gradient-boosted trees: base score, per-row gradients and Hessians, and predictions.

Each objective works on margins ``F`` of shape (n, K) and gives ``g = ∂ℓ/∂F`` and ``h = ∂²ℓ/∂F²`` (the
diagonal for softmax), the per-row quantities :mod:`.histograms` sums with the sample weights. The base
score (the margin before any tree) comes from summable statistics: :meth:`Objective.base_stats` of each
partition, added in partition order, then :meth:`Objective.base_score`.

==============  =====  =======================  ==========================  ================================
name            K      g                        h                           base score
==============  =====  =======================  ==========================  ================================
squared_error   1      F − y                    1                           ȳ (weighted mean)
logistic        1      p − y, p = σ(F)          max(p(1 − p), 1e-16)        log(ȳ/(1 − ȳ)), ȳ clipped
poisson         1      e^F − y                  e^(F + 0.7)                 log(max(ȳ, 1e-15))
softmax         K      p_k − [y = k]            K/(K−1) · p_k(1 − p_k)      log(max(ȳ_k, 1e-15))
onehot_sq…      K      F_k − [y = k]            1                           ȳ_k (class frequencies)
==============  =====  =======================  ==========================  ================================

``onehot_squared_error`` is the squared error on one-hot class indicators, the K-class random forest's
criterion: its trees have vector leaves (one Hessian for all outputs, :mod:`.histograms`), and with λ = 0
their gain is the Gini impurity decrease (:mod:`.splits`); a leaf's value is the class frequencies of its
rows (at margin 0).

(``ȳ`` clipped to [1e-15, 1 − 1e-15] for the logistic base score.) The Poisson Hessian carries
``max_delta_step = 0.7`` as XGBoost's ``count:poisson`` and LightGBM's ``poisson`` do (it damps the Newton
step of the log link); the softmax Hessian carries LightGBM's factor ``K/(K−1)`` (XGBoost uses 2). These
are the base scores of LightGBM's ``boost_from_average``. Labels: 0/1 for ``logistic``, class indices
``0 … K−1`` for ``softmax``, counts >= 0 for ``poisson``.
"""

import numpy as np

#: Smallest Hessian of the logistic loss (XGBoost's).
MIN_HESSIAN = 1e-16
#: Smallest mean in the base score's logarithms.
EPSILON = 1e-15
#: The Poisson objective's ``max_delta_step`` (XGBoost's and LightGBM's default).
POISSON_MAX_DELTA_STEP = 0.7


def _sigmoid(margin):
    return np.where(margin >= 0, 1.0 / (1.0 + np.exp(-np.abs(margin))),
                    np.exp(-np.abs(margin)) / (1.0 + np.exp(-np.abs(margin))))


def _softmax(margin):
    shifted = margin - margin.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class Objective:
    """One objective (see the module docstring): a subclass per objective, registered by name in
    :data:`OBJECTIVES`; :func:`make_objective` makes one.

    Parameters
    ----------
    n_classes : int, optional
        Classes of ``softmax`` and ``onehot_squared_error`` (>= 2 there; ignored otherwise).
    """

    #: The objective's name (:data:`OBJECTIVES`' key).
    name = None
    #: What :meth:`check_labels` asks of every label.
    allowed = "a finite number"
    #: Whether one tree serves all outputs with vector leaves (else a tree per output).
    vector_leaves = False

    def __init__(self, n_classes=None):
        self.n_outputs = 1

    def _bad_labels(self, y):
        return ~np.isfinite(y)

    def check_labels(self, y):
        """Return ``y`` as float64 if every label suits the objective, else raise ValueError naming the first
        bad row: finite for ``squared_error``, 0 or 1 for ``logistic``, finite and >= 0 for ``poisson``,
        an integer in ``0 … K−1`` for ``softmax``."""
        y = np.asarray(y, dtype=np.float64)
        bad = self._bad_labels(y)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"The {self.name} objective needs every label to be {self.allowed}. Got "
                             f"{float(y[row])!r} in row {row} instead.")
        return y

    def _label_columns(self, y, weight):
        return np.column_stack((weight, weight * y))

    def base_stats(self, y, weight):
        """Summable statistics of labels ``y`` (shape (n,)) with weights: ``[Σw, Σw·y]``, or for softmax
        ``[Σw, Σw·[y = 0], …, Σw·[y = K−1]]``; summed sequentially (``np.cumsum``)."""
        y = np.asarray(y, dtype=np.float64)
        weight = np.asarray(weight, dtype=np.float64)
        columns = self._label_columns(y, weight)
        return np.cumsum(columns, axis=0)[-1] if len(y) else np.zeros(columns.shape[1])

    def base_score(self, stats):
        """The initial margin of each output, shape (K,), from summed :meth:`base_stats`."""
        stats = np.asarray(stats, dtype=np.float64)
        if stats[0] <= 0:
            raise ValueError(f"A base score needs a positive total sample weight. Got {stats[0]!r} instead.")
        return self._link(stats[1:] / stats[0])

    def _link(self, mean):
        return np.log(np.maximum(mean, EPSILON))

    def gradients(self, y, margin):
        """``(g, h)`` of every row and output, each of shape (n, K).

        Parameters
        ----------
        y : ndarray of shape (n,)
        margin : ndarray of float64, shape (n, K)
        """
        y = np.asarray(y, dtype=np.float64)
        return self._gradients(y, np.asarray(margin, dtype=np.float64).reshape(len(y), self.n_outputs))

    def predict(self, margin):
        """The prediction of margins (n, K): the mean for regression and Poisson (shape (n,)), P(y = 1) for
        logistic (shape (n,)), class probabilities (n, K) for softmax."""
        return self._predict(np.asarray(margin, dtype=np.float64))

    @staticmethod
    def pointwise_loss(y, margin):
        """Each row's loss at its margin (n, K), float64: log loss, squared error / 2, Poisson deviance / 2
        (up to a term of y alone: ``exp(m) − y·m``), or softmax's cross-entropy."""
        raise NotImplementedError


class SquaredError(Objective):
    name = "squared_error"

    def _link(self, mean):
        return mean

    def _gradients(self, y, margin):
        return margin - y[:, None], np.ones_like(margin)

    def _predict(self, margin):
        return margin[:, 0]

    @staticmethod
    def pointwise_loss(y, margin):
        return 0.5 * (margin[:, 0] - y) ** 2


class Logistic(Objective):
    name = "logistic"
    allowed = "0 or 1"

    def _bad_labels(self, y):
        return ~np.isin(y, (0.0, 1.0))

    def _link(self, mean):
        p = np.clip(mean, EPSILON, 1 - EPSILON)
        return np.log(p / (1 - p))

    def _gradients(self, y, margin):
        p = _sigmoid(margin)
        return p - y[:, None], np.maximum(p * (1 - p), MIN_HESSIAN)

    def _predict(self, margin):
        return _sigmoid(margin[:, 0])

    @staticmethod
    def pointwise_loss(y, margin):
        p = np.clip(1.0 / (1.0 + np.exp(-margin[:, 0])), EPSILON, 1 - EPSILON)
        return -(y * np.log(p) + (1 - y) * np.log1p(-p))


class Poisson(Objective):
    name = "poisson"
    allowed = "a finite count >= 0"

    def _bad_labels(self, y):
        return ~(np.isfinite(y) & (y >= 0))

    def _gradients(self, y, margin):
        return np.exp(margin) - y[:, None], np.exp(margin + POISSON_MAX_DELTA_STEP)

    def _predict(self, margin):
        return np.exp(margin[:, 0])

    @staticmethod
    def pointwise_loss(y, margin):
        return np.exp(margin[:, 0]) - y * margin[:, 0]


class Softmax(Objective):
    name = "softmax"

    def __init__(self, n_classes=None):
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"The {self.name} objective's 'n_classes' must be an int >= 2. Got "
                             f"{n_classes!r} instead.")
        self.n_outputs = n_classes
        self.allowed = f"a class index in 0..{self.n_outputs - 1}"

    def _bad_labels(self, y):
        return ~(np.isin(y, np.arange(self.n_outputs, dtype=np.float64)))

    def _label_columns(self, y, weight):
        onehot = y[:, None] == np.arange(self.n_outputs)
        return np.column_stack((weight, weight[:, None] * onehot))

    def _gradients(self, y, margin):
        p = _softmax(margin)
        factor = self.n_outputs / (self.n_outputs - 1)
        return p - (y[:, None] == np.arange(self.n_outputs)), factor * p * (1 - p)

    def _predict(self, margin):
        return _softmax(margin)

    @staticmethod
    def pointwise_loss(y, margin):
        shifted = margin - margin.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return -log_p[np.arange(len(y)), y.astype(np.int64)]


class OnehotSquaredError(Softmax):
    """Squared error on one-hot class indicators (a K-class random forest's trees; module docstring)."""

    name = "onehot_squared_error"
    vector_leaves = True

    def _link(self, mean):
        return mean

    def _gradients(self, y, margin):
        return margin - (y[:, None] == np.arange(self.n_outputs)), np.ones_like(margin)

    def _predict(self, margin):
        p = np.clip(margin, 0.0, None)
        return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300)

    @staticmethod
    def pointwise_loss(y, margin):
        onehot = y.astype(np.int64)[:, None] == np.arange(margin.shape[1])
        return 0.5 * ((margin - onehot) ** 2).sum(axis=1)


#: The objectives by name, in the order of the module docstring's table.
OBJECTIVES = {objective.name: objective for objective in (SquaredError, Logistic, Poisson, Softmax,
                                                          OnehotSquaredError)}


def make_objective(name, n_classes=None):
    """The :class:`Objective` called ``name`` (``n_classes``: softmax's classes).

    Raises
    ------
    ValueError
        For a name not in :data:`OBJECTIVES`, or softmax's ``n_classes`` not an int >= 2.
    """
    if name not in OBJECTIVES:
        raise ValueError(f"The 'objective' parameter must be one of {list(OBJECTIVES)}. Got {name!r} "
                         "instead.")
    return OBJECTIVES[name](n_classes)
