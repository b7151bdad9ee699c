"""Generalised linear models: parameter layout, label encoding and mergeable partial sums.

The objective the driver minimises is

    f(theta) = (1 / sum_i s_i) * sum_i s_i * l(y_i, eta_i) + (l2 / 2) * ||w||^2

with ``eta_i = x_i @ w + b``. This module computes the data part as *sums* over a block of rows
(:class:`PartialSums`); the driver divides by the total weight and adds the regulariser, using
:meth:`Model.penalty_mask` to leave intercepts unpenalised.

One block's sums cover ``m`` parameter points (an optimizer's trial points). Hessian sums (``p x p`` per
point, the dominant cost for wide data) are computed only for the first ``k`` of them, ``0 <= k <= m``,
where ``k`` is the ``hessian`` argument: Newton asks for ``k = 1``, the first-order optimizers for 0.

Each linear model is its loss (:data:`GLM_LOSSES`); what the model does with labels and margins (label
validation and encoding, predictions, the metrics of :mod:`mrtrain.engine.metrics`) follows from the
loss's properties, never from the model's name. ``linear-svc`` is a linear SVM: the squared hinge loss on
labels encoded as -1 and +1 (:class:`mrtrain.engine.losses.SquaredHingeLoss`).

The classes: :class:`Model` is what every model with a loss shares (label encoding, predictions);
:class:`DifferentiableModel` adds what the optimizer loop needs (:meth:`DifferentiableModel.partial_sums`,
a starting point); :class:`LinearModel` is the linear models'. ``mlp``, a multilayer perceptron
(:class:`mrtrain.engine.mlp.MLPModel`), is a differentiable model with the same partial sums (no Hessian)
over its own flat parameter vector; the naive Bayes models (:mod:`mrtrain.engine.naive_bayes`) are models
fitted from class statistics in one pass, with no partial sums. Both have the multinomial loss, so they
share :class:`Model`'s label encoding, predictions and metrics. ``kmeans`` (:mod:`mrtrain.engine.kmeans`)
has no loss. This module knows none of the models built on it: :mod:`mrtrain.engine.registry` builds every
kind (:func:`mrtrain.engine.registry.make_model`).

Parameter layout (intercept last, as in scikit-learn): for ``linear``, ``logistic``, ``linear-svc`` and
``poisson``, ``theta = [w_1, ..., w_d, b]`` (or ``[w_1, ..., w_d]`` without intercept); for
``softmax`` with ``K`` classes, ``theta`` is the row-major ravel of a ``(K, d + 1)`` (or
``(K, d)``) matrix whose row ``k`` is ``[w_k, b_k]``.

Features ``X`` are a dense ndarray or a scipy sparse matrix (CSR; other formats are converted to CSR).
Sparse features are never densified: margins are sparse-dense products ``X @ W.T``, gradients
``X.T @ g`` and Hessians sparse Gram matrices ``X.T @ diag(s h) @ X`` returned dense (``p x p``).
scipy is imported only when a caller hands in a sparse matrix, so dense map tasks never load it.
"""

import sys
from dataclasses import dataclass

import numpy as np

from mrtrain.engine.losses import (
    LogisticLoss,
    MultinomialLoss,
    PoissonLoss,
    SquaredHingeLoss,
    SquaredLoss,
)

#: The loss of each model trained by minimising the objective above with an optimizer.
GLM_LOSSES = {"linear": SquaredLoss, "logistic": LogisticLoss, "softmax": MultinomialLoss,
              "poisson": PoissonLoss, "linear-svc": SquaredHingeLoss}
#: Models trained by minimising the objective above with an optimizer.
GLM_MODELS = tuple(GLM_LOSSES)
#: Naive Bayes models, fitted in one pass from class-wise feature statistics
#: (:mod:`mrtrain.engine.naive_bayes`).
NAIVE_BAYES_MODELS = ("multinomial-nb", "bernoulli-nb", "gaussian-nb")
#: Clustering: k-means (:mod:`mrtrain.engine.kmeans`), trained by Lloyd passes; labels are ignored.
CLUSTERING_MODELS = ("kmeans",)
#: Neural networks: the multilayer perceptron (:mod:`mrtrain.engine.mlp`), trained by the optimizer loop.
NETWORK_MODELS = ("mlp",)
#: Every model kind :func:`mrtrain.engine.registry.make_model` builds.
MODELS = GLM_MODELS + NAIVE_BAYES_MODELS + CLUSTERING_MODELS + NETWORK_MODELS
#: Binary classifiers: one margin, exactly two classes.
BINARY_MODELS = tuple(kind for kind, loss in GLM_LOSSES.items()
                      if loss.is_classifier and not loss.is_multiclass)
#: Models whose labels are classes.
CLASSIFIERS = (tuple(kind for kind, loss in GLM_LOSSES.items() if loss.is_classifier) + NAIVE_BAYES_MODELS
               + NETWORK_MODELS)

#: Rows per block when summing Hessians: bounds the temporary copy of a block of ``X`` (here 8 MiB at
#: d = 16) while keeping each ``block.T @ weighted`` a large BLAS call.
HESSIAN_BLOCK_ROWS = 65536


@dataclass
class PartialSums:
    """Weighted sums of loss, gradient and Hessian over a block of rows, at ``m`` points.

    The Hessian sums cover only the first ``k`` points (``0 <= k <= m``).

    Attributes
    ----------
    weight : float
        ``sum_i s_i`` over the block.
    loss : ndarray of shape (m,)
        ``sum_i s_i * l_i`` at each parameter point.
    grad : ndarray of shape (m, p)
        ``sum_i s_i * grad_theta l_i`` at each parameter point.
    hess : ndarray of shape (k, p, p) or None
        ``sum_i s_i * hess_theta l_i`` at each of the first ``k`` parameter points, or None when
        ``k = 0``.
    """

    weight: float
    loss: np.ndarray
    grad: np.ndarray
    hess: np.ndarray | None = None

    def to_vector(self):
        """Flatten to ``[weight, loss..., grad..., hess...]``.

        Returns
        -------
        ndarray of shape (1 + m + m*p + k*p*p,), float64
            Adding two such vectors elementwise gives the vector of the union of the blocks.
        """
        parts = [np.array([self.weight]), self.loss.ravel(), self.grad.ravel()]
        if self.hess is not None:
            parts.append(self.hess.ravel())
        return np.concatenate(parts).astype(np.float64, copy=False)

    @classmethod
    def from_vector(cls, v, m, p, hessian):
        """Rebuild partial sums from :meth:`to_vector` output (or a sum of such vectors).

        Parameters
        ----------
        v : array_like of shape (1 + m + m*p + k*p*p,)
            Flat vector.
        m : int
            Number of parameter points.
        p : int
            Number of parameters.
        hessian : int
            ``k``: the number of leading points whose Hessians `v` carries (0 for none).

        Returns
        -------
        PartialSums
        """
        k = hessian_count(hessian, m)
        v = np.asarray(v, dtype=np.float64)
        expected = _vector_length(m, p, k)
        if v.ndim != 1 or v.size != expected:
            raise ValueError(
                f"PartialSums vector for m={m}, p={p}, hessian={hessian} must be 1-D of length "
                f"{expected}. Got shape {v.shape} instead."
            )
        grad_end = 1 + m + m * p
        hess = v[grad_end:].reshape(k, p, p) if k else None
        return cls(float(v[0]), v[1 : 1 + m].copy(), v[1 + m : grad_end].reshape(m, p), hess)

    @classmethod
    def zeros(cls, m, p, hessian):
        """Partial sums of an empty block: all zeros, Hessian of shape (k, p, p) for ``hessian = k > 0``."""
        k = hessian_count(hessian, m)
        hess = np.zeros((k, p, p)) if k else None
        return cls(0.0, np.zeros(m), np.zeros((m, p)), hess)


def hessian_count(hessian, m):
    """``hessian`` checked as the number of leading points, out of ``m``, that get a Hessian.

    A bool is refused: ``True`` would count as 1 point, not as "every point".

    Returns
    -------
    int, in ``[0, m]``
    """
    if isinstance(hessian, bool) or not isinstance(hessian, int | np.integer) or not 0 <= hessian <= m:
        raise ValueError(
            f"The 'hessian' parameter must be an int in [0, {m}] (the number of leading points that get "
            f"a Hessian). Got {hessian!r} instead."
        )
    return int(hessian)


def _vector_length(m, p, k):
    return 1 + m + m * p + k * p * p


class Model:
    """What every model with a loss shares: label encoding, predictions, coefficients, the penalty's mask.

    A subclass gives the margins (:meth:`decision_function`), the parameter layout (:meth:`coefficients`,
    :meth:`penalty_mask`) and how it is fitted: :class:`DifferentiableModel` (the linear models,
    :class:`LinearModel`, and the MLP) by the optimizer loop from :meth:`DifferentiableModel.partial_sums`;
    the naive Bayes models (:class:`mrtrain.engine.naive_bayes.NaiveBayesModel`) from class statistics in
    one pass. Build one with :func:`mrtrain.engine.registry.make_model`. A model stores settings only,
    never data.

    Attributes
    ----------
    kind : str
        One of :data:`MODELS`.
    n_features : int
        Number of features ``d``.
    classes : list of float or None
        Sorted distinct class labels of a classifier (``loss.is_classifier``), None otherwise.
    n_classes : int or None
        ``len(classes)`` or None.
    fit_intercept : bool
        Whether each output has an intercept.
    n_outputs : int
        Margins per row: ``K`` for a multiclass loss (``softmax``), 1 otherwise.
    n_params : int
        Length ``p`` of the parameter vector (a linear model's: ``n_outputs * (d + fit_intercept)``).
    loss : object
        The pointwise loss from :mod:`mrtrain.engine.losses`, with the properties listed there.
    dense_only : bool
        Whether the model refuses sparse features (only ``gaussian-nb`` does).
    clusters : bool
        Whether the model clusters rows (k-means: :class:`mrtrain.engine.kmeans.KMeansModel`) instead of
        predicting labels: it needs no labels to evaluate, and its parameters are centres.
    statistics_only : bool
        Whether its parameters come from one pass of statistics (naive Bayes:
        :class:`mrtrain.engine.naive_bayes.NaiveBayesModel`), with no optimizer and no optimizer state.
    """

    dense_only = False
    clusters = False
    statistics_only = False

    def __init__(self, kind, n_features, loss, classes, fit_intercept):
        self.kind = kind
        self.n_features = n_features
        self.loss = loss
        self.classes = classes
        self.n_classes = None if classes is None else len(classes)
        self.fit_intercept = fit_intercept
        self.n_outputs = loss.n_outputs
        self.n_params = self.n_outputs * (n_features + int(fit_intercept))

    def __repr__(self):
        return (
            f"Model(kind={self.kind!r}, n_features={self.n_features}, classes={self.classes}, "
            f"fit_intercept={self.fit_intercept})"
        )

    def encode_labels(self, y_raw):
        """Convert raw float labels to what the loss expects.

        Parameters
        ----------
        y_raw : array_like of shape (n,)
            Raw labels.

        Returns
        -------
        ndarray of shape (n,)
            For a regression loss the labels as float64 (each in ``loss.interval_y``); for a classifier
            ``loss.encode_classes`` of each label's index into ``classes``: 0.0 and 1.0 for ``logistic``,
            -1.0 and +1.0 for ``linear-svc``, the int64 index for ``softmax``, ``mlp`` and naive Bayes.

        Raises
        ------
        ValueError
            If a label is outside ``loss.interval_y`` (e.g. not finite, or negative for ``poisson``), or
            not one of ``classes``.
        """
        y = np.asarray(y_raw, dtype=np.float64)
        if y.ndim != 1:
            raise ValueError(f"Labels must be 1-D of shape (n,). Got shape {y.shape} instead.")
        if self.loss.is_classifier:
            allowed = np.asarray(self.classes)
            index = np.minimum(np.searchsorted(allowed, y), len(allowed) - 1)
            bad = allowed[index] != y
            valid = f"labels must be one of the classes {self.classes}"
        else:
            bad = ~self.loss.interval_y.includes(y)
            valid = f"labels must be {self.loss.interval_y.describe()}"
        if np.any(bad):
            raise ValueError(
                f"Label {float(y[np.argmax(bad)])!r} is not valid for model {self.kind!r}: {valid}."
            )
        return self.loss.encode_classes(index) if self.loss.is_classifier else y

    def decision_function(self, X, theta):
        """Margins at one parameter point, ``X`` and ``theta`` as for :meth:`predict`: ``(n,)``, or ``(n, K)``
        for a multiclass loss (the subclass's)."""
        raise NotImplementedError

    def predict(self, X, theta):
        """Predictions at one parameter point.

        Parameters
        ----------
        X : ndarray or scipy.sparse CSR matrix of shape (n, d)
            Features.
        theta : ndarray of shape (p,)
            Parameters.

        Returns
        -------
        dict of str to ndarray
            ``"prediction"`` (n,) always: for a regression loss the mean, ``loss.inverse_link(eta)``
            (``eta`` for ``linear``, ``exp(eta)`` for ``poisson``); for a classifier the predicted class
            label (float, from ``classes``, see :meth:`predicted_class_index`). A multiclass loss adds
            ``"probabilities"`` (n, K); a binary one ``"probability"`` (n,) of ``classes[1]``, or, with no
            inverse link (``linear-svc``), ``"margin"`` (n,), the decision function (positive for
            ``classes[1]``).
        """
        eta = self.decision_function(X, theta)
        loss = self.loss
        if not loss.is_classifier:
            return {"prediction": loss.inverse_link(eta)}
        prediction = np.asarray(self.classes, dtype=np.float64)[self.predicted_class_index(eta)]
        if loss.is_multiclass:
            return {"prediction": prediction, "probabilities": loss.inverse_link(eta)}
        if loss.inverse_link is None:
            return {"prediction": prediction, "margin": eta}
        return {"prediction": prediction, "probability": loss.inverse_link(eta)}

    def predicted_class_index(self, eta):
        """Index into ``classes`` of each row's predicted class, from the margins of a classifier.

        Parameters
        ----------
        eta : ndarray of shape (n, K) for a multiclass loss, else (n,)
            Margins (:meth:`decision_function`).

        Returns
        -------
        ndarray of shape (n,), intp
            The largest margin's class; with one margin, 1 where it is positive, else 0.
        """
        if self.loss.is_multiclass:
            return np.argmax(eta, axis=1)
        return (eta > 0).astype(np.intp)

    def coefficients(self, theta):
        """The parameter vector ``theta`` (p,) in scikit-learn's shapes (the subclass's layout)."""
        raise NotImplementedError

    def spec(self):
        """What rebuilds the model (:func:`mrtrain.engine.registry.model_from_spec`): the keyword arguments of
        :func:`mrtrain.engine.registry.make_model`."""
        return {"kind": self.kind, "n_features": self.n_features, "classes": self.classes,
                "fit_intercept": self.fit_intercept}

    def penalty_mask(self):
        """Which parameters the l2 term penalises: ndarray of shape (p,), 1.0 or 0.0 each (the subclass's)."""
        raise NotImplementedError

    def _features(self, X):
        """Features as float64 (n, d): a view when they already are, else one converted copy.

        A scipy sparse ``X`` becomes a float64 ``csr_array`` that shares the index arrays; only the
        values are converted (copied) when they are not float64 already.
        """
        if is_sparse(X):
            return self._sparse_features(X)
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"X must have shape (n, {self.n_features}) for {self!r}. Got {X.shape} instead."
            )
        return X.astype(np.float64, copy=False)

    def _check_theta(self, theta):
        """One parameter point as float64 of shape (p,), else ValueError naming the shape given."""
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (self.n_params,):
            raise ValueError(
                f"theta must have shape ({self.n_params},) for {self!r}. Got {theta.shape} instead."
            )
        return theta

    def _sparse_features(self, X):
        from scipy import sparse

        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"X must have shape (n, {self.n_features}) for {self!r}. Got {X.shape} instead."
            )
        if X.format != "csr":
            X = X.tocsr()
        data = X.data.astype(np.float64, copy=False)
        return sparse.csr_array((data, X.indices, X.indptr), shape=X.shape)


class DifferentiableModel(Model):
    """A model fitted by the optimizer loop: the data part of its objective is a sum over rows, given with
    its gradient (and, for some, Hessian) by :meth:`partial_sums` at any parameter points."""

    def partial_sums(self, X, y, w, thetas, *, hessian=0):
        """Weighted sums of loss and gradient at m points, and of the Hessian at the first k, over a block.

        Parameters
        ----------
        X : ndarray or scipy.sparse CSR matrix of shape (n, d), float64 or float32
            Features; computations are in float64. A sparse ``X`` stays sparse.
        y : ndarray of shape (n,)
            Labels encoded by :meth:`encode_labels`.
        w : ndarray of shape (n,) or None
            Non-negative sample weights; None means all ones.
        thetas : ndarray of shape (m, p)
            Parameter points, e.g. the trial points of a line search, evaluated in one pass.
        hessian : int, default 0
            ``k``: also return Hessian sums (p x p per point; meant for small p) at ``thetas[:k]``,
            ``0 <= k <= m``. For given ``thetas``, ``k`` changes none of the other sums, bit for bit.

        Returns
        -------
        PartialSums
            With ``loss`` (m,), ``grad`` (m, p) and ``hess`` (k, p, p), or None for ``k = 0``.
        """
        raise NotImplementedError

    def initial_point(self, seed):
        """Where a fresh optimizer run starts: zeros, shape (p,) (``seed`` is unused; the MLP draws)."""
        return np.zeros(self.n_params)

    def _check_thetas(self, thetas):
        thetas = np.asarray(thetas, dtype=np.float64)
        if thetas.ndim != 2 or thetas.shape[1] != self.n_params:
            raise ValueError(
                f"thetas must have shape (m, {self.n_params}) for {self!r}. "
                f"Got {thetas.shape} instead."
            )
        return thetas


class LinearModel(DifferentiableModel):
    """A linear predictor ``eta = X @ W.T + b`` combined with a pointwise loss: the models of
    :data:`GLM_LOSSES`."""

    def partial_sums(self, X, y, w, thetas, *, hessian=0):
        """:meth:`DifferentiableModel.partial_sums` of the linear predictor: margins ``X @ W.T + b``, the
        loss's derivatives, and the chain rule through the linear map."""
        X = self._features(X)
        n = X.shape[0]
        thetas = self._check_thetas(thetas)
        s = sample_weights(w, n)
        y = np.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"Labels must have shape ({n},) to match X. Got {y.shape} instead.")
        m = thetas.shape[0]
        n_hessians = hessian_count(hessian, m)
        if n == 0:
            return PartialSums.zeros(m, self.n_params, n_hessians)
        value, g, h = self.loss.derivatives(y, self._margins(X, thetas), n_hessians > 0)
        loss = value @ s
        k = self.n_outputs
        # Rows (m * k, n) of weighted first derivatives: one per point and output.
        if k == 1:
            gs = (g * s).reshape(m, n)
        else:
            # Always laid out row-major (n, m, k), whatever the layout of g (softmax's changes when
            # Hessians are asked for), so that asking for Hessians leaves the gradient sums' bits alone.
            rows = np.empty((n, m, k))
            np.multiply(g.transpose(1, 0, 2), s[:, None, None], out=rows)
            gs = rows.transpose(1, 2, 0).reshape(m * k, n)
        grad = self._gradient_rows(X, gs).reshape(m, self.n_params)
        hess = None
        if n_hessians:
            hess = np.stack([self._hessian_sum(X, s, h_j) for h_j in h[:n_hessians]])
        return PartialSums(float(s.sum()), loss, grad, hess)

    def decision_function(self, X, theta):
        """:meth:`Model.decision_function` of the linear predictor: the margins ``eta = X @ W.T + b``,
        shape (n,), or (n, K) for ``softmax``."""
        return self._margins(self._features(X), self._check_theta(theta)[None, :])[0]

    def coefficients(self, theta):
        """Coefficients and intercepts of a parameter vector, in scikit-learn's shapes.

        Parameters
        ----------
        theta : ndarray of shape (p,)

        Returns
        -------
        coef : ndarray of shape (d,), or (K, d) for ``softmax``
        intercept : float, or ndarray of shape (K,) for ``softmax`` (zeros without an intercept)
        """
        rows = np.asarray(theta, dtype=np.float64).reshape(self.n_outputs, -1)
        coef = rows[:, : self.n_features].copy()
        intercept = rows[:, -1].copy() if self.fit_intercept else np.zeros(self.n_outputs)
        if self.n_outputs > 1:
            return coef, intercept
        return coef[0], float(intercept[0])

    def penalty_mask(self):
        """Which parameters the l2 term penalises.

        Returns
        -------
        ndarray of shape (p,), float64
            1.0 for coefficients, 0.0 for intercepts.
        """
        mask = np.ones((self.n_outputs, self.n_features + int(self.fit_intercept)))
        if self.fit_intercept:
            mask[:, -1] = 0.0
        return mask.ravel()

    def _gradient_rows(self, X, gs):
        """Rows ``[gs @ X | gs.sum(axis=1)]`` (or ``gs @ X`` alone without intercept): C-ordered (r, q).

        The product is copied once, into rows that :meth:`PartialSums.to_vector` flattens without copying
        them again (a sparse ``gs @ X`` is the transpose of a (q, r) array, which would not flatten in
        place), so a pass holds two gradient-sized arrays at a time: the product and these rows.
        """
        d = self.n_features
        rows = np.empty((gs.shape[0], d + int(self.fit_intercept)))
        rows[:, :d] = gs @ X
        if self.fit_intercept:
            rows[:, d] = gs.sum(axis=1)
        return rows

    def _stack(self, coef, intercept):
        """Rows ``[coef | intercept]`` (or ``coef`` alone without intercept): (r, d + fit_intercept)."""
        if not self.fit_intercept:
            return coef
        return np.concatenate([coef, intercept[:, None]], axis=1)

    def _margins(self, X, thetas):
        """Margins at m points: (m, n), or (m, n, K) for multi-output models.

        The intercept is added to ``X @ coef.T`` rather than carried as a column of ones, so ``X`` is
        never copied.
        """
        m, k, d = thetas.shape[0], self.n_outputs, self.n_features
        rows = thetas.reshape(m * k, d + int(self.fit_intercept))
        eta = X @ rows[:, :d].T
        if self.fit_intercept:
            eta += rows[:, d]
        if k == 1:
            return eta.T
        return eta.reshape(X.shape[0], m, k).transpose(1, 0, 2)

    def _hessian_sum(self, X, s, h):
        """Sum of weighted Hessians at one point, (p, p).

        For one output, ``h`` (n,) is ``d2l/deta2`` and the sum is ``Xa.T @ diag(s h) @ Xa`` with
        ``Xa = [X | 1]``, assembled from ``X.T @ diag(s h) @ X``, ``X.T @ (s h)`` and ``sum(s h)`` over
        blocks of :data:`HESSIAN_BLOCK_ROWS` rows (the temporary is one block, not a copy of ``X``).
        ``s h >= 0`` for every loss here, so ``X.T @ diag(s h) @ X = B.T @ B`` with ``B = diag(√(s h)) X``:
        numpy hands ``B.T @ B`` to BLAS ``syrk``, which computes one triangle (about half the work of
        ``X.T @ (X * sh)``) and mirrors it, so the result is exactly symmetric.
        For ``K`` outputs, ``h`` (n, K) holds the probabilities ``P`` and the Hessian is the sum over
        rows of ``(diag(p_i) - p_i p_i^T) kron (xa_i xa_i^T)``.
        A sparse ``X`` goes to :meth:`_sparse_hessian_sum`.
        """
        if is_sparse(X):
            return self._sparse_hessian_sum(X, s, h)
        if self.n_outputs == 1:
            sh = s * h
            d = self.n_features
            q = d + int(self.fit_intercept)
            hess = np.zeros((q, q))
            for start in range(0, X.shape[0], HESSIAN_BLOCK_ROWS):
                block = X[start : start + HESSIAN_BLOCK_ROWS]
                weights = sh[start : start + HESSIAN_BLOCK_ROWS]
                scaled = block * np.sqrt(weights)[:, None]
                hess[:d, :d] += scaled.T @ scaled
                if self.fit_intercept:
                    column = weights @ block
                    hess[:d, d] += column
                    hess[d, :d] += column
                    hess[d, d] += weights.sum()
            return hess
        Xa = self._stack(X, np.ones(X.shape[0]))
        n, q = Xa.shape
        k = self.n_outputs
        B = (h[:, :, None] * Xa[:, None, :]).reshape(n, k * q)
        Bs = B * s[:, None]
        hess = -(B.T @ Bs)
        diag_blocks = (Xa.T @ Bs).reshape(q, k, q)
        for c in range(k):
            hess[c * q : (c + 1) * q, c * q : (c + 1) * q] += diag_blocks[:, c, :]
        return 0.5 * (hess + hess.T)

    def _sparse_hessian_sum(self, X, s, h):
        """:meth:`_hessian_sum` for a CSR ``X``: sparse Gram matrices, the result dense (p, p).

        For ``K`` outputs, block ``(c, e)`` (rows ``c * q ...``, columns ``e * q ...``) is
        ``Xa.T @ diag(s (δ_ce p_c - p_c p_e)) @ Xa``; the blocks below the diagonal mirror those above.
        """
        if self.n_outputs == 1:
            hess = self._sparse_gram(X, s * h)
        else:
            k = self.n_outputs
            q = self.n_features + int(self.fit_intercept)
            hess = np.zeros((k * q, k * q))
            for c in range(k):
                for e in range(c, k):
                    weights = s * h[:, c] * ((c == e) - h[:, e])
                    block = self._sparse_gram(X, weights)
                    hess[c * q : (c + 1) * q, e * q : (e + 1) * q] = block
                    hess[e * q : (e + 1) * q, c * q : (c + 1) * q] = block.T
        return 0.5 * (hess + hess.T)

    def _sparse_gram(self, X, weights):
        """``Xa.T @ diag(weights) @ Xa`` for a CSR ``X`` and ``Xa = [X | 1]`` (or ``X``): dense (q, q)."""
        from scipy import sparse

        scaled = sparse.csr_array(
            (X.data * np.repeat(weights, np.diff(X.indptr)), X.indices, X.indptr), shape=X.shape
        )
        d = self.n_features
        q = d + int(self.fit_intercept)
        gram = np.zeros((q, q))
        gram[:d, :d] = (X.T @ scaled).toarray()
        if self.fit_intercept:
            column = X.T @ weights
            gram[:d, d] = column
            gram[d, :d] = column
            gram[d, d] = weights.sum()
        return gram


def is_sparse(X):
    """Whether ``X`` is a scipy sparse matrix or array.

    Looks scipy up among the loaded modules instead of importing it: a caller that holds a sparse
    matrix has loaded scipy already, and dense callers never pay for the import.
    """
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(X)


def sample_weights(w, n):
    """Validate sample weights.

    Parameters
    ----------
    w : array_like of shape (n,) or None
        Sample weights; None means all ones.
    n : int
        Number of rows.

    Returns
    -------
    ndarray of shape (n,), float64
        The weights, all finite and >= 0.

    Raises
    ------
    ValueError
        If the shape is not (n,) or a weight is negative or not finite.
    """
    if w is None:
        return np.ones(n)
    s = np.asarray(w, dtype=np.float64)
    if s.shape != (n,) or not np.all(np.isfinite(s) & (s >= 0)):
        raise ValueError(
            f"Sample weights must be finite, >= 0 and of shape ({n},). "
            f"Got shape {s.shape} with min {s.min() if s.size else None} instead."
        )
    return s


def check_classes(kind, classes, *, binary):
    """Sorted distinct finite classes of model ``kind``, exactly 2 if ``binary`` (a loss with one margin)
    else at least 2, else ValueError."""
    found = [] if classes is None else [float(c) for c in classes]
    count_ok = len(found) == 2 if binary else len(found) >= 2
    if not count_ok:
        allowed = "exactly 2" if binary else "at least 2"
        advice = " (for more classes use model 'softmax')" if binary and len(found) > 2 else ""
        raise ValueError(
            f"Model {kind!r} needs {allowed} classes{advice}. Got {len(found)} classes: {classes!r}."
        )
    if len(set(found)) != len(found) or not np.all(np.isfinite(found)):
        raise ValueError(f"Classes of model {kind!r} must be distinct and finite. Got {classes!r}.")
    return sorted(found)
