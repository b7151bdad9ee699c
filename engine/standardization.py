"""Training in standardized feature space while every data pass reads the features as stored.

With ``--standardize`` the model is fitted in terms of ``zⱼ = (xⱼ - μⱼ) / σⱼ`` (σ the weighted standard
deviation, μ the weighted mean or 0), so the penalties apply to ``w'ⱼ = σⱼ wⱼ``, and the optimizer sees
better conditioned curvature. Two conventions for σ (:data:`CONVENTIONS`):

- ``"spark"`` (the default, Spark MLlib's ``standardization=True``, whose ``Summarizer`` variance is the
  unbiased one with reliability weights): ``σ² = Σs(x - μ)² / (W - Σs²/W)``, ``W = Σs``; for unit weights
  the sample variance with ``n - 1``. Where ``W - Σs²/W <= 0`` (one row of non-zero weight) Spark's
  variance is 0: the feature counts as constant;
- ``"glmnet"`` (glmnet's ``standardize=TRUE`` and scikit-learn's ``StandardScaler``): the population
  variance ``σ² = Σs(x - μ)² / W``.

The two differ by the factor ``c = W / (W - Σs²/W)`` on every variance: Spark's model at ``(l1, l2)``
is glmnet's at ``(l1·√c, l2·c)`` with standardized coefficients ``w'_spark = √c · w'_glmnet``, the
same model on the stored features. The data are never transformed: a linear
model in ``z`` is a linear model in ``x``,

``z·w' + b' = x·(w'/σ) + (b' - μ·(w'/σ))``,

so the driver maps the optimizer's points ``θ'`` to ``θ = A θ'`` (:meth:`Standardization.to_original`),
the usual gradient job computes the sums at ``θ``, and the driver maps them back by the chain rule:
gradients ``Aᵀ g``, Hessians ``Aᵀ H A`` (:meth:`Standardization.sums_to_standardized`). The penalties are
then added at ``θ'`` as usual. Compared with shipping ``(μ, σ)`` to the map tasks and transforming every
block there, this keeps the jobs, the partition cache and sparse blocks untouched (centering a sparse
matrix would densify it; here it would not even be computed), and costs ``O(p)`` per point on the driver.

``μ`` and ``σ`` come from one statistics pass (:mod:`mrtrain.mr_jobs.feature_stats`): per partition the
weighted sums ``Σs``, ``Σs·x``, ``Σs·x²`` and ``Σs²`` (:func:`feature_sums`), added in partition order like
every other pass, so they are bitwise the same on every runner. The population variance is
``Σs·x²/Σs - μ²`` (Spark's is that times ``c``); computed this way it keeps about
``-log10(eps·μ²/σ²)`` digits, so a feature whose mean is more than ~1e6 standard deviations from 0 should
be centered before ingest. A feature whose variance is at most :data:`CONSTANT_RTOL` times its mean square
counts as constant and gets scale 1 (no division by zero).

Centering (``μ`` = the mean) needs an intercept to absorb it; a model without intercept is only scaled
(centering there would add an implicit intercept). Sparse datasets are centred too: the shift lives in the
intercept on the driver (``b = b' - μ·w``), so no block is densified. When centred, a constant feature is
exactly 0 in ``z``: its coefficient's gradient is set to exactly 0, so its coefficient keeps its starting
value (0 unless warm-started).

The same map serves as the optimizers' preconditioner (``Trainer(precondition=True)``, the default for
gd, L-BFGS and OWL-QN): the loop runs on ``θ'`` while the objective, penalties included, is evaluated at
``θ = A θ'`` and only its gradient is pulled back (:meth:`Standardization.evaluation_to_standardized`).
Per-feature scales and a centred intercept take out the two worst sources of ill-conditioning in
linear models: features of very different spreads (rare one-hot or hashed columns next to common ones) and
the correlation of every non-centred feature with the intercept.
"""

import numpy as np

from mrtrain.engine.models import PartialSums, sample_weights
from mrtrain.engine.optimizers.base import Evaluation

#: A feature with ``variance <= CONSTANT_RTOL * mean square`` is constant: float64 rounding of the
#: one-pass variance of a constant column stays far below this, while a real spread this small relative
#: to the feature's magnitude is not resolved by ``Σs·x² - μ²·Σs`` anyway.
CONSTANT_RTOL = 1e-12
#: The conventions of ``standardize`` for the standard deviation: Spark MLlib's (unbiased, reliability
#: weights) and glmnet's (population).
CONVENTIONS = ("spark", "glmnet")
#: How ``inspect`` names the standard deviation of a recorded ``standardize`` setting (checkpoints written
#: before the conventions existed record True: the population one).
STANDARD_DEVIATIONS = {"spark": "Spark's n - 1 standard deviation", "glmnet": "glmnet's population standard "
                       "deviation", True: "population standard deviation"}


def check_convention(value):
    """The convention ``standardize=value`` asks for: None (False), ``"spark"`` (True or ``"spark"``) or
    ``"glmnet"``.

    Raises
    ------
    ValueError
        Naming the allowed values and what was given.
    """
    if value is False:
        return None
    if value is True:
        return "spark"
    if isinstance(value, str) and value in CONVENTIONS:
        return value
    raise ValueError(f"The 'standardize' parameter must be a bool or one of {list(CONVENTIONS)}. Got "
                     f"{value!r} instead.")


def feature_sums_length(d):
    """Length of a :func:`feature_sums` vector of ``d`` features: ``Σs``, then ``d`` sums of ``s·x``,
    ``d`` of ``s·x²`` and ``Σs²``."""
    return 2 + 2 * d


def feature_sums(X, w):
    """``[Σs, Σs·x₁..Σs·x_d, Σs·x₁²..Σs·x_d², Σs²]`` of one block of rows.

    Parameters
    ----------
    X : ndarray or scipy.sparse CSR matrix of shape (n, d)
    w : ndarray of shape (n,) or None
        Sample weights (None: all 1).

    Returns
    -------
    ndarray of shape (2 + 2d,), float64
    """
    s = sample_weights(w, X.shape[0])
    d = X.shape[1]
    sums = np.empty(feature_sums_length(d))
    sums[0] = s.sum()
    if hasattr(X, "tocsr"):
        X = X.tocsr().astype(np.float64, copy=False)
        squares = _sparse_squares(X)
    else:
        X = np.asarray(X, dtype=np.float64)
        squares = X * X
    sums[1:d + 1] = X.T @ s
    sums[d + 1:2 * d + 1] = squares.T @ s
    sums[-1] = s @ s
    return sums


def _sparse_squares(X):
    """The elementwise squares of a float64 CSR matrix ``X``, as a CSR matrix.

    For ``X`` in canonical format (sorted indices, no duplicates) the squares share ``X``'s indices: only
    the values are new. ``X.multiply(X)`` would instead build a new structure (allocated for twice the
    stored values) without the squares that are 0; those add ``+0.0`` to sums of terms ``x²·s >= 0`` that
    start at ``+0.0``, which leaves every bit of ``squares.T @ s`` as it is.
    """
    if not X.has_canonical_format:
        return X.multiply(X)
    from scipy.sparse import csr_array

    return csr_array((X.data * X.data, X.indices, X.indptr), shape=X.shape)


class Standardization:
    """The map between standardized parameters ``θ'`` and the parameters ``θ`` of the stored features.

    Parameters
    ----------
    shift : ndarray of shape (d,)
        ``μ``: the features' weighted means, or zeros when not centering.
    scale : ndarray of shape (d,)
        ``σ``: the features' weighted standard deviations, 1 for constant features; all > 0.
    n_outputs : int
        Coefficient rows (K for softmax, else 1).
    fit_intercept : bool
    constant : ndarray of shape (d,), bool, optional
        Constant features (their coefficients' gradients are zeroed when centering). Default: none.
    """

    def __init__(self, shift, scale, n_outputs, fit_intercept, constant=None):
        self.shift = np.asarray(shift, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.n_outputs = int(n_outputs)
        self.fit_intercept = bool(fit_intercept)
        d = self.scale.size
        self.constant = np.zeros(d, dtype=bool) if constant is None else np.asarray(constant, dtype=bool)
        if self.shift.shape != (d,) or self.constant.shape != (d,):
            raise ValueError(f"The 'shift' and 'constant' parameters of Standardization must have shape "
                             f"({d},). Got {self.shift.shape} and {self.constant.shape} instead.")
        if not (np.isfinite(self.shift).all() and np.isfinite(self.scale).all() and (self.scale > 0).all()):
            raise ValueError("The 'shift' and 'scale' parameters of Standardization must be finite, the "
                             "scales > 0. Got non-finite or non-positive values instead.")
        if not self.fit_intercept and self.shift.any():
            raise ValueError("The 'shift' parameter of Standardization must be 0 without an intercept. Got "
                             "a non-zero shift instead.")

    @classmethod
    def from_sums(cls, vector, n_outputs, fit_intercept, center, convention="spark"):
        """The standardization of the data whose :func:`feature_sums` total is ``vector``.

        Parameters
        ----------
        vector : ndarray of shape (2 + 2d,)
        n_outputs : int
        fit_intercept : bool
        center : bool
            Shift by the means (only with an intercept; see the module docstring).
        convention : {"spark", "glmnet"}
            The standard deviation's (see the module docstring). Default: ``"spark"``.
        """
        vector = np.asarray(vector, dtype=np.float64)
        d = (vector.size - 2) // 2
        total = vector[0]
        if not total > 0:
            raise ValueError(f"The dataset's total sample weight must be > 0. Got {total!r}.")
        mean = vector[1 : 1 + d] / total
        mean_square = vector[1 + d : 1 + 2 * d] / total
        variance = np.maximum(mean_square - mean * mean, 0.0)
        constant = variance <= CONSTANT_RTOL * mean_square
        if convention == "spark":
            denominator = total - vector[-1] / total  # W - Σs²/W: n - 1 for unit weights
            if denominator > 0:
                variance = variance * (total / denominator)
            else:  # Spark's variance is 0
                constant = np.ones(d, dtype=bool)
        elif convention != "glmnet":
            raise ValueError(f"The 'convention' parameter must be one of {list(CONVENTIONS)}. Got "
                             f"{convention!r} instead.")
        scale = np.where(constant, 1.0, np.sqrt(variance))
        centered = bool(center and fit_intercept)
        shift = mean if centered else np.zeros(d)
        return cls(shift, scale, n_outputs, fit_intercept, constant if centered else None)

    @classmethod
    def preconditioner(cls, vector, n_outputs, fit_intercept, l2):
        """The coordinates the optimizer runs in when the objective stays that of the stored features.

        Centred through the intercept (when there is one), and each coefficient scaled by
        ``sqrt(spreadⱼ + l2)``, the square root of its diagonal Hessian entry up to the loss's curvature:
        ``spreadⱼ`` is the variance when centred, else the mean square, and ``l2`` is the penalty's own
        curvature. Scaling by the spread alone would blow up the penalty's curvature ``l2/σⱼ²`` of rare
        features (a one-hot column seen in 1 row of 10^5 has ``σ² ≈ 1e-5``), and the line search would
        find no decrease.

        Parameters
        ----------
        vector : ndarray of shape (2 + 2d,)
            The :func:`feature_sums` total.
        n_outputs : int
        fit_intercept : bool
        l2 : float >= 0
        """
        centering = cls.from_sums(vector, n_outputs, fit_intercept, center=True, convention="glmnet")
        vector = np.asarray(vector, dtype=np.float64)
        d = centering.scale.size
        mean_square = vector[1 + d : 1 + 2 * d] / vector[0]
        spread = centering.scale**2 if fit_intercept else mean_square
        flat = centering.constant | ~(spread + l2 > 0)
        scale = np.where(flat, 1.0, np.sqrt(spread + l2))
        return cls(centering.shift, scale, n_outputs, fit_intercept, centering.constant)

    def _rows(self, thetas):
        thetas = np.asarray(thetas, dtype=np.float64)
        d = self.scale.size
        return thetas.reshape(*thetas.shape[:-1], self.n_outputs, d + int(self.fit_intercept)), d

    def to_original(self, thetas):
        """``θ = A θ'`` for every row of ``thetas`` (shape (..., p))."""
        rows, d = self._rows(thetas)
        out = rows.copy()
        out[..., :d] = rows[..., :d] / self.scale
        if self.fit_intercept:
            out[..., d] = rows[..., d] - out[..., :d] @ self.shift
        return out.reshape(np.shape(thetas))

    def to_standardized(self, thetas):
        """``θ' = A⁻¹ θ`` for every row of ``thetas`` (shape (..., p))."""
        rows, d = self._rows(thetas)
        out = rows.copy()
        out[..., :d] = rows[..., :d] * self.scale
        if self.fit_intercept:
            out[..., d] = rows[..., d] + rows[..., :d] @ self.shift
        return out.reshape(np.shape(thetas))

    def pull_back(self, vectors):
        """``Aᵀ g`` along the last axis of ``vectors`` (shape (..., p)): gradients with respect to ``θ'``."""
        rows, d = self._rows(vectors)
        out = rows.copy()
        coef = rows[..., :d]
        if self.fit_intercept:
            coef = coef - rows[..., d : d + 1] * self.shift
        out[..., :d] = np.where(self.constant, 0.0, coef / self.scale)
        return out.reshape(np.shape(vectors))

    def sums_to_standardized(self, sums):
        """:class:`PartialSums` at ``θ = A θ'`` turned into the sums of the standardized model at ``θ'``."""
        hess = None
        if sums.hess is not None:
            hess = self.pull_back(np.swapaxes(self.pull_back(sums.hess), -1, -2))
        return PartialSums(sums.weight, sums.loss, self.pull_back(sums.grad), hess)

    def evaluation_to_standardized(self, evaluation):
        """An :class:`Evaluation` at ``θ = A θ'`` as one at ``θ'``: the same value, gradient ``Aᵀ g``,
        Hessian ``Aᵀ H A``."""
        hess = evaluation.hess
        if hess is not None:
            hess = self.pull_back(self.pull_back(hess).T)
        return Evaluation(evaluation.value, self.pull_back(evaluation.grad), hess)

    def parameter_scales(self):
        """``σ`` laid out like a parameter vector (shape (p,)), 1 at the intercepts: ``wⱼ = w'ⱼ / σⱼ``."""
        rows = np.ones((self.n_outputs, self.scale.size + int(self.fit_intercept)))
        rows[:, : self.scale.size] = self.scale
        return rows.ravel()
