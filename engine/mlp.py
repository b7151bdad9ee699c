"""Multilayer perceptron classifier: tanh or relu hidden layers, a softmax output, one flat parameter vector.

Like Spark's ``MultilayerPerceptronClassifier`` and scikit-learn's ``MLPClassifier(solver="lbfgs")``, the
network is trained full-batch: each data pass sums the weighted cross-entropy and its gradient (by
backpropagation) over every partition (:meth:`MLPModel.partial_sums`, the same
:class:`mrtrain.engine.models.PartialSums` as the linear models), and the driver runs L-BFGS on

    f(theta) = (1 / sum_i s_i) * sum_i s_i * l(y_i, eta_i) + (l2 / 2) * ||weights||^2

where ``eta_i`` are the output layer's ``K`` logits and ``l`` the multinomial cross-entropy
(:class:`mrtrain.engine.losses.MultinomialLoss`). Biases are not penalized (:meth:`MLPModel.penalty_mask`).
The objective is not convex and has no Hessian sums here: only the first-order optimizers (``lbfgs``,
``gd``) train it.

Layer sizes are ``n_0 = d`` (features), ``n_1 ... n_{L-1}`` (the hidden ``layers``) and ``n_L = K``
(classes; two classes get two softmax outputs, as in Spark). Parameter layout: for ``l = 1 ... L`` in turn,
the row-major ravel of an ``(n_l, n_{l-1} + 1)`` matrix whose row ``j`` is ``[weights into unit j, bias of
unit j]`` (so with no hidden layer it would be the ``softmax`` model's layout). :meth:`MLPModel.coefficients`
returns the weights in scikit-learn's ``coefs_`` orientation, ``(n_{l-1}, n_l)`` per layer.

The starting point is not zero (all hidden units would stay equal): :meth:`MLPModel.initial_point` draws
every weight and bias from scikit-learn's Glorot/Xavier uniform ``U(-a, a)``, ``a = sqrt(6 / (n_{l-1} +
n_l))``, with numpy's PCG64 generator seeded by ``seed``, so a seed gives the same bits everywhere.

Sparse (CSR) features stay sparse: the first layer is ``X @ W_1.T`` and its gradient ``(X.T @ G_1).T``,
sparse-dense products; every later layer is dense ``(n, n_l)``.
"""

from itertools import pairwise

import numpy as np

from mrtrain.engine.losses import MultinomialLoss
from mrtrain.engine.models import DifferentiableModel, PartialSums, hessian_count, is_sparse, sample_weights

#: Hidden-layer activations: tanh (default; smooth, which suits L-BFGS's line search) or relu.
ACTIVATIONS = ("tanh", "relu")
#: Hidden layer sizes when none are given: scikit-learn's ``hidden_layer_sizes`` default.
DEFAULT_LAYERS = (100,)


class MLPModel(DifferentiableModel):
    """A multilayer perceptron over ``d`` features and ``K`` classes; see the module docstring.

    Build it with :func:`mrtrain.engine.registry.make_model` (``kind="mlp"``). It shares :class:`Model`'s
    label encoding (class indices), predictions (class and ``probabilities``, the softmax of the logits) and
    metrics: :meth:`decision_function` gives the ``K`` output logits.

    Attributes
    ----------
    layers : tuple of int
        Hidden layer sizes.
    activation : str
        One of :data:`ACTIVATIONS`.
    sizes : tuple of int
        ``(d, *layers, K)``.
    n_params : int
        ``sum_l n_l * (n_{l-1} + 1)``.
    """

    def __init__(self, n_features, classes, layers, activation):
        super().__init__("mlp", n_features, MultinomialLoss(len(classes)), classes, True)
        self.layers = tuple(int(size) for size in layers)
        self.activation = activation
        self.sizes = (n_features, *self.layers, len(classes))
        self.n_params = sum(n_out * (n_in + 1) for n_in, n_out in pairwise(self.sizes))

    def __repr__(self):
        return (f"MLPModel(n_features={self.n_features}, classes={self.classes}, layers={list(self.layers)}, "
                f"activation={self.activation!r})")

    def spec(self):
        """What rebuilds the model: the keyword arguments of :func:`mrtrain.engine.registry.make_model`."""
        return {"kind": self.kind, "n_features": self.n_features, "classes": self.classes,
                "fit_intercept": True, "layers": list(self.layers), "activation": self.activation}

    def unpack(self, theta):
        """Per-layer ``(W, b)`` views of ``theta`` (p,): ``W`` (n_l, n_{l-1}), ``b`` (n_l,)."""
        params, start = [], 0
        for n_in, n_out in pairwise(self.sizes):
            block = theta[start : start + n_out * (n_in + 1)].reshape(n_out, n_in + 1)
            params.append((block[:, :n_in], block[:, n_in]))
            start += block.size
        return params

    def initial_point(self, seed):
        """Glorot/Xavier uniform weights and biases (scikit-learn's initialisation), seeded.

        Parameters
        ----------
        seed : int >= 0

        Returns
        -------
        ndarray of shape (p,)
            Layer by layer, every entry of the ``(n_l, n_{l-1} + 1)`` block drawn from ``U(-a, a)``,
            ``a = sqrt(6 / (n_{l-1} + n_l))``.
        """
        rng = np.random.default_rng(seed)
        blocks = []
        for n_in, n_out in pairwise(self.sizes):
            bound = np.sqrt(6.0 / (n_in + n_out))
            blocks.append(rng.uniform(-bound, bound, size=n_out * (n_in + 1)))
        return np.concatenate(blocks)

    def penalty_mask(self):
        """1.0 for weights, 0.0 for biases, shape (p,)."""
        mask = np.ones(self.n_params)
        for _, b in self.unpack(mask):
            b[...] = 0.0
        return mask

    def coefficients(self, theta):
        """``(coefs, intercepts)``: per layer the weights ``(n_{l-1}, n_l)`` and biases ``(n_l,)``, as
        scikit-learn's ``coefs_`` and ``intercepts_``."""
        params = self.unpack(self._check_theta(theta))
        return [W.T.copy() for W, _ in params], [b.copy() for _, b in params]

    def partial_sums(self, X, y, w, thetas, *, hessian=0):
        """:meth:`DifferentiableModel.partial_sums` of the MLP: the cross-entropy and its gradient
        (backpropagation) at ``m`` points; ``hess`` is None. ValueError for ``hessian > 0`` (no Hessian sums,
        so no Newton's method) or data of the wrong shape."""
        X = self._features(X)
        n = X.shape[0]
        thetas = self._check_thetas(thetas)
        m = thetas.shape[0]
        if hessian_count(hessian, m):
            raise ValueError("Model 'mlp' has no Hessian sums: train it with optimizer 'lbfgs' (or 'gd'). "
                             f"Got hessian={hessian!r} instead.")
        s = sample_weights(w, n)
        y = np.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"Labels must have shape ({n},) to match X. Got {y.shape} instead.")
        if n == 0:
            return PartialSums.zeros(m, self.n_params, 0)
        loss = np.empty(m)
        grad = np.empty((m, self.n_params))
        for j, theta in enumerate(thetas):
            loss[j], grad[j] = self._point_sums(X, y, s, theta)
        return PartialSums(float(s.sum()), loss, grad, None)

    def decision_function(self, X, theta):
        """The output layer's ``K`` logits, shape (n, K) (:meth:`Model.decision_function`)."""
        return self._forward(self._features(X), self.unpack(self._check_theta(theta)))[-1]

    def _forward(self, X, params):
        """``[X, A_1, ..., A_{L-1}, logits]``: the hidden activations (n, n_l) and the logits (n, K)."""
        outputs = [X]
        for layer, (W, b) in enumerate(params):
            z = np.asarray(outputs[-1] @ W.T)
            z += b
            if layer < len(params) - 1:
                if self.activation == "tanh":
                    np.tanh(z, out=z)
                else:
                    np.maximum(z, 0.0, out=z)
            outputs.append(z)
        return outputs

    def _point_sums(self, X, y, s, theta):
        """``(sum_i s_i l_i, sum_i s_i grad l_i)`` at one point: forward pass, then backpropagation."""
        params = self.unpack(theta)
        outputs = self._forward(X, params)
        value, g, _ = self.loss.derivatives(y, outputs[-1])
        grad = np.empty(self.n_params)
        blocks = self.unpack(grad)
        delta = g * s[:, None]  # d(sum s l) / d(pre-activation) of the current layer, (n, n_l)
        for layer in range(len(params) - 1, -1, -1):
            W = params[layer][0]
            grad_W, grad_b = blocks[layer]
            below = outputs[layer]
            if is_sparse(below):
                grad_W[...] = (below.T @ delta).T
            else:
                grad_W[...] = delta.T @ below
            grad_b[...] = delta.sum(axis=0)
            if layer:
                delta = delta @ W
                if self.activation == "tanh":
                    delta *= 1.0 - below * below
                else:
                    delta *= below > 0.0
        return float(value @ s), grad


def check_layers(layers):
    """``layers`` as a tuple of hidden layer sizes, each an int >= 1, at least one; else ValueError."""
    ok = isinstance(layers, list | tuple) and len(layers) > 0 and all(
        isinstance(size, int | np.integer) and not isinstance(size, bool) and size >= 1 for size in layers
    )
    if not ok:
        raise ValueError("The 'layers' parameter of model 'mlp' must be a non-empty list of ints >= 1 (the "
                         f"hidden layer sizes, e.g. [64, 32]). Got {layers!r} instead.")
    return tuple(int(size) for size in layers)


def check_activation(activation):
    """``activation`` if it is one of :data:`ACTIVATIONS`, else ValueError."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"The 'activation' parameter of model 'mlp' must be one of {list(ACTIVATIONS)}. "
                         f"Got {activation!r} instead.")
    return activation


def make_mlp(n_features, *, classes, fit_intercept=True, layers=DEFAULT_LAYERS, activation="tanh"):
    """Build an :class:`MLPModel` (called by :func:`mrtrain.engine.registry.make_model`).

    ``classes`` are checked by the caller; ``fit_intercept`` must be True (every unit has a bias).
    """
    if fit_intercept is not True:
        raise ValueError("The 'fit_intercept' parameter of model 'mlp' must be True (every unit has a "
                         f"bias). Got {fit_intercept!r} instead.")
    return MLPModel(n_features, classes, check_layers(layers), check_activation(activation))
