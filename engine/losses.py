"""Pointwise losses of a linear predictor and their derivatives with respect to the margin.

A loss here knows nothing about features or parameters: it maps an encoded label ``y`` and a
margin ``eta`` to the pointwise loss and its first and second derivatives with respect to
``eta``. :mod:`mrtrain.engine.models` chains them with the linear map ``eta = X @ w + b``.

Every function broadcasts over leading axes, so the model can evaluate ``m`` parameter points
at once: for the scalar losses ``eta`` has shape ``(m, n)`` (or ``(n,)``) and ``y`` shape
``(n,)``; for the multinomial loss ``eta`` has shape ``(m, n, K)`` (or ``(n, K)``) and ``y``
holds class indices of shape ``(n,)``. All computations are in float64.
"""

import numpy as np


def log1pexp(eta):
    """Return ``log(1 + exp(eta))`` without overflow or loss of precision.

    Parameters
    ----------
    eta : ndarray of any shape
        Margins.

    Returns
    -------
    ndarray of the same shape as `eta`
        ``max(eta, 0) + log1p(exp(-|eta|))``.
    """
    return np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta)))


def sigmoid(eta):
    """Return the logistic function ``1 / (1 + exp(-eta))``, accurate in both tails.

    Parameters
    ----------
    eta : ndarray of any shape
        Margins.

    Returns
    -------
    ndarray of the same shape as `eta`
        ``exp(-log1pexp(-eta))``, in [0, 1].
    """
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


class SquaredLoss:
    """Half squared error ``l(y, eta) = (y - eta)**2 / 2`` for real labels ``y``.

    ``dl/deta = eta - y`` and ``d2l/deta2 = 1``.
    """

    n_outputs = 1

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


class LogisticLoss:
    """Binary cross-entropy ``l(y, eta) = log(1 + exp(eta)) - y * eta`` for ``y`` in {0, 1}.

    ``eta`` is the log-odds of ``y = 1``. ``dl/deta = sigmoid(eta) - y`` and
    ``d2l/deta2 = sigmoid(eta) * sigmoid(-eta)``. Everything is computed from ``e = exp(-|eta|)``
    (in (0, 1], never overflows): the loss as ``max(eta, 0) - y * eta + log1p(e)``, the two sigmoids as
    ``1 / (1 + e)`` and ``e / (1 + e)``, and the gradient as ``(1 - y) * sigmoid(eta) - y * sigmoid(-eta)``,
    so all are finite for any finite margin and keep full relative precision in the tails (no ``1 - p``
    cancellation) for ``y`` in {0, 1}.
    """

    n_outputs = 1

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


class PoissonLoss:
    """Poisson negative log-likelihood with log link, ``l(y, eta) = exp(eta) - y * eta``.

    ``eta`` is the log of the mean, ``y >= 0`` a count (any non-negative real). The constant
    ``log(y!)`` of the exact negative log-likelihood is dropped: it does not depend on the
    parameters. ``dl/deta = exp(eta) - y`` and ``d2l/deta2 = exp(eta)``. For ``eta`` above about
    709, ``exp(eta)`` overflows to ``inf``, which is the true limit of the loss; no warning is
    raised so that a line search can simply reject such a point.
    """

    n_outputs = 1

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


class MultinomialLoss:
    """Multinomial cross-entropy ``l(y, eta) = logsumexp(eta) - eta[y]`` over ``K`` classes.

    ``y`` is a class index in ``0..K-1`` and ``eta`` a vector of ``K`` class margins (all ``K``
    rows are parametrised, as in scikit-learn). With ``p = softmax(eta)``,
    ``dl/deta = p - onehot(y)`` and the ``K x K`` Hessian is ``diag(p) - p p^T``;
    :meth:`hessian` returns ``p`` from which the model assembles that block.
    """

    def __init__(self, n_classes):
        self.n_outputs = n_classes

    def value(self, y, eta):
        """Pointwise loss: `eta` (..., n, K), `y` (n,) -> (..., n)."""
        return -log_softmax(eta)[..., np.arange(len(y)), y]

    def gradient(self, y, eta):
        """First derivative with respect to `eta`: (..., n, K), ``softmax(eta) - onehot(y)``."""
        grad = np.exp(log_softmax(eta))
        grad[..., np.arange(len(y)), y] -= 1.0
        return grad

    def hessian(self, y, eta):
        """Probabilities ``p = softmax(eta)``, (..., n, K); the Hessian is ``diag(p) - p p^T``."""
        return np.exp(log_softmax(eta))

    def derivatives(self, y, eta, hessian=False):
        """Loss (..., n), gradient (..., n, K) and (if `hessian`) probabilities, from one softmax."""
        log_p = log_softmax(eta)
        rows = np.arange(len(y))
        probabilities = np.exp(log_p)
        gradient = probabilities.copy() if hessian else probabilities
        gradient[..., rows, y] -= 1.0
        return -log_p[..., rows, y], gradient, probabilities if hessian else None


class SquaredHingeLoss:
    """Squared hinge ``l(y, eta) = max(0, 1 - y * eta)**2`` for ``y`` in {-1, +1} (a linear SVM).

    ``eta`` is the signed margin. Unlike the hinge ``max(0, 1 - y * eta)`` it is continuously
    differentiable, so L-BFGS applies, and its second derivative exists everywhere but at the hinge:
    ``dl/deta = -2 y max(0, 1 - y * eta)`` and ``d2l/deta2 = 2 * 1[y * eta < 1]`` (the generalized
    Hessian, with which Newton's method converges on this piecewise quadratic). This is scikit-learn's
    ``LinearSVC(loss="squared_hinge")`` and Spark's ``LinearSVC`` objective with the hinge squared.
    """

    n_outputs = 1

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
