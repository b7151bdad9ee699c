"""Pointwise losses of a linear predictor and their derivatives with respect to the margin.

A loss here knows nothing about features or parameters: it maps an encoded label ``y`` and a
margin ``eta`` to the pointwise loss and its first and second derivatives with respect to
``eta``. :mod:`mrtrain.engine.models` chains them with the linear map ``eta = X @ w + b``.

Every function broadcasts over leading axes, so the model can evaluate ``m`` parameter points
at once: for the scalar losses ``eta`` has shape ``(m, n)`` (or ``(n,)``) and ``y`` shape
``(n,)``; for the multinomial loss ``eta`` has shape ``(m, n, K)`` (or ``(n, K)``) and ``y``
holds class indices of shape ``(n,)``. All computations are in float64.

Besides its derivatives, each loss declares what the models and metrics need to know of it (as
scikit-learn's ``sklearn/_loss/loss.py`` does), so that they never ask for the model's name:

- ``n_outputs``: margins per row (``K`` for the multinomial loss, else 1);
- ``is_classifier``: the labels are classes (then ``encode_classes`` maps class indices to the labels
  the loss takes and ``class_index`` maps them back); a binary classifier (not ``is_multiclass``) has one
  margin, positive for ``classes[1]``;
- ``is_multiclass``: ``K`` margins per row, one per class, and class-index labels;
- ``interval_y``: the :class:`Interval` a regression loss's labels must lie in (None for a classifier,
  whose labels must be one of its classes);
- ``inverse_link``: margins to the mean prediction (regression) or the class probabilities, or None for a
  margin classifier, which gives no probabilities;
- ``metrics``: the metric family of :mod:`mrtrain.engine.metrics` it reports.
- ``canonical_link``: ``inverse_link`` is the canonical link's inverse, so at zero coefficients the
  coefficients' gradient is affine in the intercept's (the penalty path's ``λmax`` uses it);
- ``wald_table``: the loss is a one-margin negative log-likelihood (up to a constant), so the inverse
  Hessian of the summed loss is the coefficients' covariance (:mod:`mrtrain.engine.coefficient_table`);
- ``estimated_dispersion``: that likelihood's dispersion is estimated from the residuals (t statistics)
  rather than 1 (z statistics);
- ``separable``: the maximum-likelihood estimate can fail to exist by (quasi-)separation of the labels.
"""

from dataclasses import dataclass

import numpy as np


def log1pexp(eta):
    """Return ``log(1 + exp(eta))`` elementwise, shape of `eta`, without overflow or loss of precision:
    ``max(eta, 0) + log1p(exp(-|eta|))``."""
    return np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta)))


def sigmoid(eta):
    """Return the logistic function ``1 / (1 + exp(-eta))`` elementwise, shape of `eta`, in [0, 1], accurate
    in both tails: ``exp(-log1pexp(-eta))``."""
    return np.exp(-log1pexp(-eta))


def log_softmax(eta):
    """Return ``eta - logsumexp(eta)`` along the last axis, computed stably.

    Parameters
    ----------
    eta : ndarray of shape (..., K)
        Class margins.

    Returns
    -------
    ndarray of shape (..., K)
        Log-probabilities.
    """
    shifted = eta - np.max(eta, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def identity(eta):
    """Return ``eta`` itself: the inverse of the identity link."""
    return eta


def exp_mean(eta):
    """Return ``exp(eta)``, the mean of the log link; ``inf`` (no warning) where it overflows."""
    with np.errstate(over="ignore"):
        return np.exp(eta)


def softmax(eta):
    """Return the probabilities ``exp(log_softmax(eta))`` along the last axis, shape of `eta` (..., K)."""
    return np.exp(log_softmax(eta))


@dataclass(frozen=True)
class Interval:
    """An interval of real labels whose ends are open or closed (scikit-learn's ``Interval``).

    Labels in it are always finite: an infinite end is open whatever its flag says.

    Attributes
    ----------
    low, high : float
        The ends (``-inf`` and ``inf`` for none).
    low_inclusive, high_inclusive : bool
        Whether each end belongs to the interval.
    """

    low: float
    high: float
    low_inclusive: bool
    high_inclusive: bool

    def includes(self, y):
        """Whether each element of `y` lies in the interval: a bool ndarray of the shape of `y` (False for
        NaN)."""
        above = y >= self.low if self.low_inclusive else y > self.low
        below = y <= self.high if self.high_inclusive else y < self.high
        return np.isfinite(y) & above & below

    def describe(self):
        """The interval in words, e.g. ``"finite and >= 0"``."""
        words = ["finite"]
        if self.low > -np.inf:
            words.append(f"{'>=' if self.low_inclusive else '>'} {self.low:g}")
        if self.high < np.inf:
            words.append(f"{'<=' if self.high_inclusive else '<'} {self.high:g}")
        return " and ".join(words)


#: Every finite real number.
REAL_LINE = Interval(-np.inf, np.inf, False, False)
#: The finite numbers >= 0.
NON_NEGATIVE = Interval(0.0, np.inf, True, False)


class RegressionLoss:
    """What the regression losses share: one margin per row, real labels (each loss sets ``interval_y``)."""

    n_outputs = 1
    is_classifier = False
    is_multiclass = False


class ClassificationLoss:
    """What the classification losses share: labels are classes, which each loss encodes from their index
    (``encode_classes``), so there is no ``interval_y``."""

    is_classifier = True
    interval_y = None

    @staticmethod
    def class_index(y):
        """Class indices (intp ndarray (n,)) of labels made by ``encode_classes`` (0/1 or index labels)."""
        return y.astype(np.intp)


class SquaredLoss(RegressionLoss):
    """Half squared error ``l(y, eta) = (y - eta)**2 / 2`` for real labels ``y``.

    ``dl/deta = eta - y`` and ``d2l/deta2 = 1``. The prediction is ``eta`` itself (identity link).
    """

    interval_y = REAL_LINE
    inverse_link = staticmethod(identity)
    metrics = "regression"
    canonical_link = True
    wald_table = True
    estimated_dispersion = True
    separable = False

    def value(self, y, eta):
        """Pointwise loss, shape of `eta` (``(m, n)`` or ``(n,)``)."""
        return 0.5 * (eta - y) ** 2

    def gradient(self, y, eta):
        """First derivative with respect to `eta`, shape of `eta`."""
        return eta - y

    def hessian(self, y, eta):
        """Second derivative with respect to `eta`, shape of `eta` (all ones)."""
        return np.ones_like(eta)

    def derivatives(self, y, eta, hessian=False):
        """Loss, first and (if `hessian`) second derivative; see :meth:`LogisticLoss.derivatives`."""
        residual = eta - y
        return 0.5 * residual * residual, residual, np.ones_like(eta) if hessian else None


class LogisticLoss(ClassificationLoss):
    """Binary cross-entropy ``l(y, eta) = log(1 + exp(eta)) - y * eta`` for ``y`` in {0, 1}.

    ``eta`` is the log-odds of ``y = 1``. ``dl/deta = sigmoid(eta) - y`` and
    ``d2l/deta2 = sigmoid(eta) * sigmoid(-eta)``. Everything is computed from ``e = exp(-|eta|)``
    (in (0, 1], never overflows): the loss as ``max(eta, 0) - y * eta + log1p(e)``, the two sigmoids as
    ``1 / (1 + e)`` and ``e / (1 + e)``, and the gradient as ``(1 - y) * sigmoid(eta) - y * sigmoid(-eta)``,
    so all are finite for any finite margin and keep full relative precision in the tails (no ``1 - p``
    cancellation) for ``y`` in {0, 1}. Labels: ``classes[0]`` is 0, ``classes[1]`` is 1; the probability of
    ``classes[1]`` is ``sigmoid(eta)``.
    """

    n_outputs = 1
    is_multiclass = False
    inverse_link = staticmethod(sigmoid)
    metrics = "binary"
    canonical_link = True
    wald_table = True
    estimated_dispersion = False
    separable = True

    @staticmethod
    def encode_classes(index):
        """Labels of class indices ``index`` (int ndarray (n,) into ``classes``): 0.0 and 1.0."""
        return index.astype(np.float64)

    def value(self, y, eta):
        """Pointwise loss, shape of `eta` (``(m, n)`` or ``(n,)``)."""
        return np.maximum(eta, 0.0) - y * eta + np.log1p(np.exp(-np.abs(eta)))

    def gradient(self, y, eta):
        """First derivative with respect to `eta`, shape of `eta`."""
        return self.derivatives(y, eta)[1]

    def hessian(self, y, eta):
        """Second derivative with respect to `eta`, shape of `eta`."""
        return self.derivatives(y, eta, hessian=True)[2]

    def derivatives(self, y, eta, hessian=False):
        """Loss, first and (if `hessian`) second derivative, sharing one ``exp`` per margin.

        Parameters
        ----------
        y : ndarray of shape (n,)
            Encoded labels.
        eta : ndarray of shape (m, n) or (n,)
            Margins.
        hessian : bool, default False
            Also return the second derivative.

        Returns
        -------
        value, gradient : ndarray of the shape of `eta`
        hessian : ndarray of the shape of `eta`, or None
        """
        e = np.exp(-np.abs(eta))
        value = np.maximum(eta, 0.0)
        value -= y * eta
        value += np.log1p(e)
        small = 1.0 / (1.0 + e)  # sigmoid(|eta|)
        large = e * small  # sigmoid(-|eta|)
        positive = eta >= 0.0
        sig = np.where(positive, small, large)
        sig_neg = np.where(positive, large, small)
        gradient = (1.0 - y) * sig
        gradient -= y * sig_neg
        return value, gradient, (large * small if hessian else None)


class PoissonLoss(RegressionLoss):
    """Poisson negative log-likelihood with log link, ``l(y, eta) = exp(eta) - y * eta``.

    ``eta`` is the log of the mean, ``y >= 0`` a count (any non-negative real). The constant
    ``log(y!)`` of the exact negative log-likelihood is dropped: it does not depend on the
    parameters. ``dl/deta = exp(eta) - y`` and ``d2l/deta2 = exp(eta)``. For ``eta`` above about
    709, ``exp(eta)`` overflows to ``inf``, which is the true limit of the loss; no warning is
    raised so that a line search can simply reject such a point. The prediction is the mean ``exp(eta)``.
    """

    interval_y = NON_NEGATIVE
    inverse_link = staticmethod(exp_mean)
    metrics = "count"
    canonical_link = True
    wald_table = True
    estimated_dispersion = False
    separable = True

    def value(self, y, eta):
        """Pointwise loss, shape of `eta` (``(m, n)`` or ``(n,)``)."""
        with np.errstate(over="ignore"):
            return np.exp(eta) - y * eta

    def gradient(self, y, eta):
        """First derivative with respect to `eta`, shape of `eta`."""
        with np.errstate(over="ignore"):
            return np.exp(eta) - y

    def hessian(self, y, eta):
        """Second derivative with respect to `eta`, shape of `eta`."""
        with np.errstate(over="ignore"):
            return np.exp(eta)

    def derivatives(self, y, eta, hessian=False):
        """Loss, first and (if `hessian`) second derivative; see :meth:`LogisticLoss.derivatives`."""
        with np.errstate(over="ignore"):
            mean = np.exp(eta)
        return mean - y * eta, mean - y, mean if hessian else None


class MultinomialLoss(ClassificationLoss):
    """Multinomial cross-entropy ``l(y, eta) = logsumexp(eta) - eta[y]`` over ``K`` classes.

    ``y`` is a class index in ``0..K-1`` and ``eta`` a vector of ``K`` class margins (all ``K``
    rows are parametrised, as in scikit-learn). With ``p = softmax(eta)``,
    ``dl/deta = p - onehot(y)`` and the ``K x K`` Hessian is ``diag(p) - p p^T``;
    :meth:`hessian` returns ``p`` from which the model assembles that block. The class probabilities are
    ``p``.
    """

    is_multiclass = True
    inverse_link = staticmethod(softmax)
    metrics = "multiclass"
    canonical_link = True
    wald_table = False  # K margins: no one-coefficient-per-feature table
    estimated_dispersion = False
    separable = True

    def __init__(self, n_classes):
        self.n_outputs = n_classes

    @staticmethod
    def encode_classes(index):
        """Labels of class indices ``index`` (int ndarray (n,) into ``classes``): the indices as int64."""
        return index.astype(np.int64)

    def value(self, y, eta):
        """Pointwise loss: `eta` (..., n, K), `y` (n,) -> (..., n)."""
        return -log_softmax(eta)[..., np.arange(len(y)), y]

    def gradient(self, y, eta):
        """First derivative with respect to `eta`: (..., n, K), ``softmax(eta) - onehot(y)``."""
        grad = softmax(eta)
        grad[..., np.arange(len(y)), y] -= 1.0
        return grad

    def hessian(self, y, eta):
        """Probabilities ``p = softmax(eta)``, (..., n, K); the Hessian is ``diag(p) - p p^T``."""
        return softmax(eta)

    def derivatives(self, y, eta, hessian=False):
        """Loss (..., n), gradient (..., n, K) and (if `hessian`) probabilities, from one softmax."""
        log_p = log_softmax(eta)
        rows = np.arange(len(y))
        probabilities = np.exp(log_p)
        gradient = probabilities.copy() if hessian else probabilities
        gradient[..., rows, y] -= 1.0
        return -log_p[..., rows, y], gradient, probabilities if hessian else None


class SquaredHingeLoss(ClassificationLoss):
    """Squared hinge ``l(y, eta) = max(0, 1 - y * eta)**2`` for ``y`` in {-1, +1} (a linear SVM).

    ``eta`` is the signed margin. Unlike the hinge ``max(0, 1 - y * eta)`` it is continuously
    differentiable, so L-BFGS applies, and its second derivative exists everywhere but at the hinge:
    ``dl/deta = -2 y max(0, 1 - y * eta)`` and ``d2l/deta2 = 2 * 1[y * eta < 1]`` (the generalized
    Hessian, with which Newton's method converges on this piecewise quadratic). This is scikit-learn's
    ``LinearSVC(loss="squared_hinge")`` and Spark's ``LinearSVC`` objective with the hinge squared.
    Labels: ``classes[0]`` is -1, ``classes[1]`` is +1. A margin is no probability: no inverse link.
    """

    n_outputs = 1
    is_multiclass = False
    inverse_link = None
    metrics = "margin"
    canonical_link = False
    wald_table = False  # not a likelihood
    estimated_dispersion = False
    separable = False

    @staticmethod
    def encode_classes(index):
        """Labels of class indices ``index`` (int ndarray (n,) into ``classes``): -1.0 and +1.0."""
        return 2.0 * index - 1.0

    @staticmethod
    def class_index(y):
        """Class indices (intp ndarray (n,)) of labels made by :meth:`encode_classes`."""
        return (y > 0).astype(np.intp)

    def value(self, y, eta):
        """Pointwise loss, shape of `eta` (``(m, n)`` or ``(n,)``)."""
        slack = np.maximum(1.0 - y * eta, 0.0)
        return slack * slack

    def gradient(self, y, eta):
        """First derivative with respect to `eta`, shape of `eta`."""
        return -2.0 * y * np.maximum(1.0 - y * eta, 0.0)

    def hessian(self, y, eta):
        """Generalized second derivative with respect to `eta`: 2 where ``y * eta < 1``, else 0."""
        return np.where(y * eta < 1.0, 2.0, 0.0)

    def derivatives(self, y, eta, hessian=False):
        """Loss, first and (if `hessian`) generalized second derivative, from one slack computation."""
        slack = np.maximum(1.0 - y * eta, 0.0)
        active = np.where(slack > 0.0, 2.0, 0.0) if hessian else None
        return slack * slack, -2.0 * y * slack, active
