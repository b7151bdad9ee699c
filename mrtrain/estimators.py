"""scikit-learn estimators over mrtrain's trainer: LogisticRegression, LinearRegression, PoissonRegressor.

``fit(X, y, sample_weight=None)`` on a numpy array, a pandas DataFrame or a scipy sparse matrix writes the
data to a temporary dataset (:func:`mrtrain.storage.dataset.write_dataset`, removed afterwards, also on
error) and trains on it with :class:`mrtrain.Trainer`; ``fit(path_or_uri)`` trains on an existing dataset
directory or ``hdfs://`` URI instead. Prediction is in memory, by :class:`mrtrain.FittedModel`'s
``predict`` and ``predict_proba``.
The estimators fit into ``Pipeline``, ``GridSearchCV`` and ``cross_val_score`` and pass scikit-learn's
``check_estimator``.

The objective is mrtrain's (see the README): ``mean_s loss + (l2/2)‖w‖² + l1‖w‖₁``, the intercept not
penalized, so ``l2`` corresponds to scikit-learn's ``C = 1/(n·l2)`` (LogisticRegression), ``alpha = n·l2``
(Ridge) and ``alpha = l2`` (PoissonRegressor); with ``l1 > 0``, ``LinearRegression(l1=a·r, l2=a·(1-r))`` is
scikit-learn's ``ElasticNet(alpha=a, l1_ratio=r)`` and ``LogisticRegression(l1=r/(n·C), l2=(1-r)/(n·C))``
its ``LogisticRegression(C=C, l1_ratio=r)``.

scikit-learn is optional for mrtrain: only this module imports it.
"""

import logging
import os
import tempfile
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from mrtrain.engine.params import check_int
from mrtrain.engine.trainer import Trainer
from mrtrain.storage.dataset import Dataset, write_dataset

log = logging.getLogger(__name__)

__all__ = ["LogisticRegression", "LinearRegression", "PoissonRegressor"]


class _MRTrainModel(BaseEstimator):
    """What the three estimators share: parameters, ingesting, training, in-memory prediction.

    Subclasses set ``_kind`` (the mrtrain model, or None when ``_model_kind`` decides it from the
    classes) and may override ``_encode_targets`` and ``_check_targets``.
    """

    _kind = None

    def __init__(self, *, l2=0.0, l1=0.0, standardize=False, fit_intercept=True, optimizer=None, max_iter=100,
                 tol=1e-8, gtol=1e-6, runner="inline", partitions=1, checkpoint_dir=None, reducers=1,
                 conf_path=None):
        self.l2 = l2
        self.l1 = l1
        self.standardize = standardize
        self.fit_intercept = fit_intercept
        self.optimizer = optimizer
        self.max_iter = max_iter
        self.tol = tol
        self.gtol = gtol
        self.runner = runner
        self.partitions = partitions
        self.checkpoint_dir = checkpoint_dir
        self.reducers = reducers
        self.conf_path = conf_path

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def fit(self, X, y=None, sample_weight=None):
        """Train the model.

        Parameters
        ----------
        X : array_like or sparse matrix of shape (n_samples, n_features), or str or os.PathLike
            Finite features; a pandas DataFrame also sets ``feature_names_in_``. A path or ``hdfs://``
            URI of a dataset made by ``mrtrain ingest`` trains on that dataset (then ``y`` and
            ``sample_weight`` must be None: the dataset holds the labels and weights).
        y : array_like of shape (n_samples,)
            Targets.
        sample_weight : array_like of shape (n_samples,), optional
            Finite weights >= 0, not all zero (checked by scikit-learn's ``_check_sample_weight``).

        Returns
        -------
        self
        """
        if not isinstance(self.fit_intercept, bool):
            raise ValueError(f"The 'fit_intercept' parameter of {type(self).__name__} must be a bool. "
                             f"Got {self.fit_intercept!r} instead.")
        partitions = check_int("partitions", self.partitions, minimum=1)
        if isinstance(X, str | os.PathLike):
            return self._fit_dataset(os.fspath(X), y, sample_weight)
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64,
                             y_numeric=not isinstance(self, ClassifierMixin))
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        labels = self._encode_targets(y, sample_weight)
        with tempfile.TemporaryDirectory(prefix="mrtrain-estimator-") as tmp:
            data = os.path.join(tmp, "data")
            # Partitions hold at least one row each: fewer rows than partitions gives one row per partition.
            write_dataset(data, X, labels, sample_weight, partitions=min(partitions, X.shape[0]))
            self._train(data, self._model_kind())
        return self

    def _fit_dataset(self, data, y, sample_weight):
        for name, value in (("y", y), ("sample_weight", sample_weight)):
            if value is not None:
                raise ValueError(f"{data}: {type(self).__name__}.fit on a dataset takes its labels and "
                                 f"weights from the dataset; expected {name}=None, found "
                                 f"{type(value).__name__}")
        dataset = Dataset.open(data)
        self._set_dataset_targets(dataset)
        self._train(data, self._model_kind())
        self.n_features_in_ = dataset.n_features
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def _train(self, data, kind):
        trainer = Trainer(
            kind, optimizer=self.optimizer, l2=self.l2, l1=self.l1, standardize=self.standardize,
            fit_intercept=self.fit_intercept,
            max_iter=self.max_iter, tol=self.tol, gtol=self.gtol, runner=self.runner,
            conf_path=self.conf_path, checkpoint_dir=self.checkpoint_dir, reducers=self.reducers,
        )
        fitted = trainer.fit(data)
        if not fitted.converged_:
            warnings.warn(
                f"{type(self).__name__} stopped before converging ({fitted.stop_reason_}) after "
                f"{fitted.n_iter_} iterations; raise max_iter, loosen tol/gtol, scale the features or "
                "raise l2.", ConvergenceWarning, stacklevel=3,
            )
        self._fitted = fitted
        self.coef_ = fitted.coef_
        self.intercept_ = fitted.intercept_
        self.n_iter_ = fitted.n_iter_

    def _encode_targets(self, y, sample_weight):
        return y

    def _set_dataset_targets(self, dataset):
        """Read what the targets need from an opened dataset."""

    def _model_kind(self):
        return self._kind

    def _features(self, X):
        check_is_fitted(self)
        return validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)


class _Regressor(RegressorMixin, _MRTrainModel):

    def predict(self, X):
        """Predicted means.

        Parameters
        ----------
        X : array_like or sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        X = self._features(X)
        return self._fitted.predict(X)


class LinearRegression(_Regressor):
    """Least squares (mrtrain model ``"linear"``) with optional l2 and l1 penalties, trained by MapReduce.

    Minimises ``(1/Σs) Σ sᵢ ½(yᵢ − xᵢ·w − b)² + (l2/2)‖w‖² + l1‖w‖₁``: for unit weights scikit-learn's
    ``Ridge(alpha=n·l2)`` when ``l1 = 0``, ``Lasso(alpha=l1)`` when ``l2 = 0``,
    ``ElasticNet(alpha=l1+l2, l1_ratio=l1/(l1+l2))`` in general and
    ``sklearn.linear_model.LinearRegression`` when both are 0.

    Parameters
    ----------
    l2 : float >= 0
        Strength of the penalty ``(l2/2)‖w‖²``; the intercept is not penalized. Default: 0.
    l1 : float >= 0
        Strength of the penalty ``l1‖w‖₁``; the intercept is not penalized. Default: 0.
    standardize : bool
        Fit in terms of standardized features, the penalties applying there (see
        :class:`mrtrain.Trainer`); ``coef_`` and ``intercept_`` are for ``X`` as given. Default: False.
    fit_intercept : bool
        Default: True.
    optimizer : {"gd", "lbfgs", "newton", "owlqn"}, optional
        Default: ``"owlqn"`` when ``l1 > 0`` (the only one that accepts it), else ``"lbfgs"``.
    max_iter : int >= 1
        Optimizer iterations, one data pass (MapReduce job) each. Default: 100.
    tol : float >= 0
        Stop when an iteration changes the objective by at most ``tol`` relatively. Default: 1e-8.
    gtol : float >= 0
        Stop when the gradient's max-norm is at most ``gtol``. Default: 1e-6.
    runner : {"inline", "local", "hadoop"}
        The mrjob runner. Default: ``"inline"``.
    partitions : int >= 1
        Partitions (map tasks) of the temporary dataset written by ``fit(X, y)``; at most one per row.
        Default: 1.
    checkpoint_dir : str, optional
        Directory (local or ``hdfs://``) for one checkpoint per pass; a refit with the same data and
        settings resumes from it, one with other data or settings is refused. Default: None.
    reducers : int >= 0
        Reduce tasks per pass (0: map-only). Default: 1.
    conf_path : str, optional
        mrjob config file. Default: None.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_iter_ : int
        Optimizer iterations.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Only when ``X`` was a DataFrame with string column names.
    """

    _kind = "linear"


class PoissonRegressor(_Regressor):
    """Poisson regression with log link (mrtrain model ``"poisson"``), trained by MapReduce.

    Minimises the mean Poisson deviance-like loss ``(1/Σs) Σ sᵢ (exp(ηᵢ) − yᵢηᵢ) + (l2/2)‖w‖²`` with
    ``η = x·w + b``: scikit-learn's ``PoissonRegressor(alpha=l2)``. Targets must be >= 0.

    Parameters
    ----------
    l2, l1, standardize, fit_intercept, optimizer, max_iter, tol, gtol, runner, partitions, checkpoint_dir,
    reducers, conf_path
        As in :class:`LinearRegression`.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Only when ``X`` was a DataFrame with string column names.
    """

    _kind = "poisson"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags

    def _encode_targets(self, y, sample_weight):
        if np.any(y < 0):
            row = int(np.flatnonzero(y < 0)[0])
            raise ValueError(f"PoissonRegressor needs targets y >= 0. Got y[{row}] = {float(y[row])!r} "
                             "instead.")
        return y


class LogisticRegression(ClassifierMixin, _MRTrainModel):
    """Logistic regression, binary (mrtrain model ``"logistic"``) or multinomial (``"softmax"``).

    Minimises the mean log-loss plus ``(l2/2)‖W‖²`` (intercepts not penalized): scikit-learn's
    ``LogisticRegression(C=1/(n·l2))`` for unit weights. Labels may be any values scikit-learn accepts
    (ints, strings, ...); the temporary dataset stores their index into ``classes_``. On a dataset path
    the labels are the dataset's classes.

    Parameters
    ----------
    l2, l1, standardize, fit_intercept, optimizer, max_iter, tol, gtol, runner, partitions, checkpoint_dir,
    reducers, conf_path
        As in :class:`LinearRegression`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (n_features,) for two classes, (n_classes, n_features) for more
    intercept_ : float for two classes, ndarray of shape (n_classes,) for more
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Only when ``X`` was a DataFrame with string column names.
    """

    def _encode_targets(self, y, sample_weight):
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        weighted = np.unique(labels[sample_weight > 0])
        if weighted.size < 2:
            raise ValueError(
                "LogisticRegression needs samples of at least 2 classes with a positive sample weight, "
                f"but the data contains only one class: {self.classes_[weighted].tolist()[0]!r}."
            )
        return labels.astype(np.float64)

    def _set_dataset_targets(self, dataset):
        if dataset.classes is None or len(dataset.classes) < 2:
            raise ValueError(f"{dataset.uri}: field '{dataset.label_name}': expected at least 2 class labels "
                             f"for LogisticRegression, found {dataset.classes!r}")
        self.classes_ = np.asarray(dataset.classes)

    def _model_kind(self):
        return "logistic" if len(self.classes_) == 2 else "softmax"

    def decision_function(self, X):
        """Margins: of ``classes_[1]`` for two classes, one column per class for more.

        Parameters
        ----------
        X : array_like or sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        X = self._features(X)
        return self._fitted.model.decision_function(X, self._fitted.theta_)

    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order.

        Parameters
        ----------
        X : array_like or sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        X = self._features(X)
        return self._fitted.predict_proba(X)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, shape (n_samples, n_classes)."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted class labels (from ``classes_``), shape (n_samples,)."""
        # The fitted model predicts its own classes: indices into classes_ (fit on arrays) or the
        # dataset's labels (fit on a dataset), both sorted as classes_ is.
        X = self._features(X)
        labels = self._fitted.predict(X)
        return self.classes_[np.searchsorted(self._fitted.classes_, labels)]
