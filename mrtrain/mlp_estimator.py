"""``mrtrain.MLPClassifier``: the multilayer perceptron (mrtrain model ``"mlp"``) as a scikit-learn estimator.

The same training as ``mrtrain train --model mlp`` and ``Trainer("mlp", ...)``: full-batch L-BFGS (or
gradient descent) on the mean weighted cross-entropy plus ``(l2/2)‖weights‖²``, one MapReduce pass per
iteration, from seeded Glorot-uniform weights (:mod:`mrtrain.engine.mlp`). With the same rows, settings
and seed it gives the CLI's model bit for bit (tested). Like the other estimators
(:mod:`mrtrain.estimators`) it fits arrays through a temporary dataset or trains on a dataset path, and
predicts in memory.

scikit-learn's ``MLPClassifier(solver="lbfgs")`` minimises the same objective with ``alpha = l2·n`` (its
penalty is ``alpha/(2n)‖W‖²``), but it starts from other random weights and so, the objective not being
convex, ends in another local minimum; and for two classes it has one logistic output where mrtrain has two
softmax outputs (Spark's layout), so the last entries of ``coefs_`` and ``intercepts_`` have 2 columns here.
"""

import warnings

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.exceptions import ConvergenceWarning

from mrtrain.engine.mlp import ACTIVATIONS, DEFAULT_LAYERS
from mrtrain.estimators import _Estimator, _ProbabilisticClassifier, random_seed
from mrtrain.trainer import Trainer

__all__ = ["MLPClassifier"]


class MLPClassifier(_ProbabilisticClassifier, ClassifierMixin, _Estimator):
    """Multilayer perceptron classifier (mrtrain model ``"mlp"``) trained by MapReduce.

    Hidden layers of ``tanh`` or ``relu`` units and a softmax output over the classes. Minimises
    ``(1/Σs) Σ sᵢ CE(yᵢ, softmax(ηᵢ)) + (l2/2) Σ_l ‖W_l‖²`` (biases not penalized) with L-BFGS, one data
    pass per iteration: scikit-learn's ``MLPClassifier(solver="lbfgs", alpha=n·l2)`` objective. Labels may be
    any values scikit-learn accepts; the temporary dataset stores their index into ``classes_``.

    Parameters
    ----------
    hidden_layer_sizes : sequence of int >= 1
        Units of each hidden layer. Default: ``(100,)``, as scikit-learn's.
    activation : {"tanh", "relu"}
        Activation of the hidden layers. Default: ``"tanh"`` (smooth, which suits L-BFGS's line search;
        scikit-learn's default is relu).
    l2 : float >= 0
        Strength of ``(l2/2)‖weights‖²``. Default: 0, as ``mrtrain train``.
    optimizer : {"lbfgs", "gd"}, optional
        Default: ``"lbfgs"``.
    max_iter : int >= 1
        Optimizer iterations, one data pass each. Default: 100, as ``mrtrain train``.
    tol : float >= 0
        Stop when an iteration changes the objective by at most ``tol`` relatively. Default: 1e-8.
    gtol : float >= 0
        Stop when the gradient's max-norm is at most ``gtol``. Default: 1e-6.
    random_state : int >= 0, numpy RandomState, or None
        The seed of the initial weights (mrtrain's ``seed``); a RandomState gives one draw of a seed, None
        means 0, so the same data give the same network. Default: None.
    runner, partitions, checkpoint_dir, reducers, conf_path
        As in :class:`mrtrain.LinearRegression` (the default runner is ``"inline"``; see
        :mod:`mrtrain.estimators`).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coefs_ : list of ndarray
        Layer ``i``'s weights, shape ``(n_units[i], n_units[i + 1])`` (scikit-learn's orientation); the
        last has one column per class, also for two classes.
    intercepts_ : list of ndarray
        Layer ``i``'s biases, shape ``(n_units[i + 1],)``.
    n_iter_ : int
        Optimizer iterations.
    loss_ : float
        The objective (penalty included) at the result.
    n_layers_ : int
        Input, hidden and output layers.
    n_outputs_ : int
        Output units: the number of classes.
    out_activation_ : str
        ``"softmax"``.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Only when ``X`` was a DataFrame with string column names.
    """

    def __init__(self, hidden_layer_sizes=DEFAULT_LAYERS, activation="tanh", *, l2=0.0, optimizer=None,
                 max_iter=100, tol=1e-8, gtol=1e-6, random_state=None, runner="inline", partitions=1,
                 checkpoint_dir=None, reducers=1, conf_path=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.l2 = l2
        self.optimizer = optimizer
        self.max_iter = max_iter
        self.tol = tol
        self.gtol = gtol
        self.random_state = random_state
        self.runner = runner
        self.partitions = partitions
        self.checkpoint_dir = checkpoint_dir
        self.reducers = reducers
        self.conf_path = conf_path

    def _check_params(self):
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise ValueError(f"The 'activation' parameter of MLPClassifier must be one of "
                             f"{list(ACTIVATIONS)}. Got {self.activation!r} instead.")

    def _layers(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, int | np.integer) and not isinstance(sizes, bool):
            sizes = [sizes]
        try:
            return [int(size) if isinstance(size, int | np.integer) and not isinstance(size, bool) else size
                    for size in sizes]
        except TypeError:
            raise ValueError(f"The 'hidden_layer_sizes' parameter of MLPClassifier must be a sequence of "
                             f"ints >= 1. Got {self.hidden_layer_sizes!r} instead.") from None

    def _train(self, data):
        fitted = Trainer(
            "mlp", layers=self._layers(), activation=self.activation, l2=self.l2, optimizer=self.optimizer,
            max_iter=self.max_iter, tol=self.tol, gtol=self.gtol,
            seed=random_seed("MLPClassifier", self.random_state), runner=self.runner,
            conf_path=self.conf_path, checkpoint_dir=self.checkpoint_dir, reducers=self.reducers,
        ).fit(data)
        if not fitted.converged_:
            warnings.warn(f"MLPClassifier stopped before converging ({fitted.stop_reason_}) after "
                          f"{fitted.n_iter_} iterations; raise max_iter, loosen tol/gtol or scale the X",
                          ConvergenceWarning, stacklevel=5)
        self._fitted = fitted
        self.coefs_ = list(fitted.coef_)
        self.intercepts_ = list(fitted.intercept_)
        self.n_iter_ = fitted.n_iter_
        self.loss_ = fitted.objective_
        self.n_layers_ = len(self.coefs_) + 1
        self.n_outputs_ = self.coefs_[-1].shape[1]
        self.out_activation_ = "softmax"
