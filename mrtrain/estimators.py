"""scikit-learn estimators over mrtrain's trainer.

Linear models (:class:`LogisticRegression`, :class:`LinearRegression`, :class:`PoissonRegressor`,
:class:`LinearSVC`), naive Bayes (:class:`MultinomialNB`, :class:`BernoulliNB`, :class:`GaussianNB`, fitted
in one pass) and :class:`KMeans` (k-means|| or given centres, then Lloyd passes).

``fit(X, y, sample_weight=None)`` on a numpy array, a pandas DataFrame or a scipy sparse matrix writes the
data to a temporary dataset (:func:`mrtrain.storage.dataset.write_dataset` in
``<tempdir>/mrtrain-estimator-<pid>-<random>``, removed afterwards, also on error; one left by a process
killed outright is removed by the next fit, as :func:`mrtrain.launcher.remove_dead_staging` says) and
trains on it with :class:`mrtrain.Trainer`; ``fit(path_or_uri)`` trains on an existing dataset
directory or ``hdfs://`` URI instead. Prediction is in memory, by :class:`mrtrain.FittedModel`'s
``predict`` and ``predict_proba``.
The estimators fit into ``Pipeline``, ``GridSearchCV`` and ``cross_val_score`` and pass scikit-learn's
``check_estimator``; no check is skipped, and only :class:`KMeans` fails two, as scikit-learn's own KMeans
does (see its docstring). :class:`mrtrain.MLPClassifier` (:mod:`mrtrain.mlp_estimator`) builds on the same
base. Fitted attributes have scikit-learn's shapes (a binary classifier's ``coef_`` is
``(1, n_features)``).

Their default runner is ``"inline"``, as :class:`mrtrain.Trainer`'s, where the ``mrtrain`` command's is
``"local"``: ``fit(X, y)`` takes arrays already in one process's memory, and model selection fits many
models, each pass of which the inline runner runs in-process without the local runner's task processes
(about 17 times less overhead per pass: docs/benchmarks.md, runner overhead per pass); every runner gives
the same bits. Pass ``runner="local"`` or ``"hadoop"`` to train a large dataset path on many cores.

The objective is mrtrain's (docs/objective.md): ``mean_s loss + (l2/2)‖w‖² + l1‖w‖₁``, the intercept not
penalized, so ``l2`` corresponds to scikit-learn's ``C = 1/(n·l2)`` (LogisticRegression), ``alpha = n·l2``
(Ridge) and ``alpha = l2`` (PoissonRegressor); with ``l1 > 0``, ``LinearRegression(l1=a·r, l2=a·(1-r))`` is
scikit-learn's ``ElasticNet(alpha=a, l1_ratio=r)`` and ``LogisticRegression(l1=r/(n·C), l2=(1-r)/(n·C))``
its ``LogisticRegression(C=C, l1_ratio=r)``; :class:`LinearSVC`'s ``l2`` is scikit-learn's ``LinearSVC``'s
``C = 1/(n·l2)`` (whose intercept is penalized, mrtrain's is not).

scikit-learn is optional for mrtrain: only the estimator modules import it.
"""

import os
import shutil
import warnings

import numpy as np
from scipy.special import logsumexp
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    RegressorMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import d2_tweedie_score
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    check_non_negative,
    validate_data,
)

from mrtrain.engine.kmeans import nearest_centers
from mrtrain.engine.params import check_int, check_number
from mrtrain.launcher import ESTIMATOR_PREFIX, make_local_staging
from mrtrain.names import dataset_names
from mrtrain.storage.dataset import Dataset, write_dataset
from mrtrain.storage.filesystem import absolute, join
from mrtrain.trainer import Trainer

__all__ = ["LogisticRegression", "LinearRegression", "PoissonRegressor", "LinearSVC", "MultinomialNB",
           "BernoulliNB", "GaussianNB", "KMeans"]


def random_seed(estimator, state):
    """mrtrain's ``seed`` from scikit-learn's ``random_state``: None gives 0 (the same data give the same
    model), an int >= 0 itself, a numpy RandomState one draw.

    Raises
    ------
    ValueError
        Naming ``estimator`` and the value, for anything else.
    """
    if state is None:
        return 0
    if isinstance(state, np.random.RandomState):
        return int(state.randint(np.iinfo(np.int32).max))
    if isinstance(state, int | np.integer) and not isinstance(state, bool) and state >= 0:
        return int(state)
    raise ValueError(f"The 'random_state' parameter of {estimator} must be None, an int >= 0 or a numpy "
                     f"RandomState. Got {state!r} instead.")


class _Estimator(BaseEstimator):
    """What every estimator shares: fitting on arrays through a temporary dataset or on a dataset path.

    Subclasses define ``_train(data)`` (train on a dataset directory and set the fitted attributes) and may
    override ``_check_params``, ``_validate_fit_data``, ``_encode_targets``, ``_set_dataset_targets``,
    ``_fit_arrays`` and ``_after_dataset_fit``. They keep ``runner``, ``partitions``, ``checkpoint_dir``
    and ``conf_path`` among their parameters. A subclass that sets ``_allow_nan`` takes NaN in ``X`` as a
    missing value (the temporary dataset keeps it, as ``ingest --keep-missing`` does); the others refuse it.
    """

    _allow_nan = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = self._allow_nan
        return tags

    def _finite(self):
        """``validate_data``'s ``ensure_all_finite``: NaN allowed or not (infinity never)."""
        return "allow-nan" if self._allow_nan else True

    def fit(self, X, y=None, sample_weight=None):
        """Train the model.

        Parameters
        ----------
        X : array_like or sparse matrix of shape (n_samples, n_features), or str or os.PathLike
            Finite features; a pandas DataFrame also sets ``feature_names_in_``. A path or ``hdfs://``
            URI of a dataset made by ``mrtrain ingest`` trains on that dataset (then ``y`` and
            ``sample_weight`` must be None: the dataset holds the labels and weights; its feature names,
            when it records them, set ``feature_names_in_``, and its class names ``classes_``).
        y : array_like of shape (n_samples,)
            Targets (ignored by :class:`KMeans`).
        sample_weight : array_like of shape (n_samples,), optional
            Finite weights >= 0, not all zero (checked by scikit-learn's ``_check_sample_weight``).

        Returns
        -------
        self
        """
        self._check_params()
        partitions = check_int("partitions", self.partitions, minimum=1)
        if isinstance(X, str | os.PathLike):
            return self._fit_dataset(absolute(os.fspath(X)), y, sample_weight)
        X, y = self._validate_fit_data(X, y)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        labels = self._encode_targets(y, sample_weight)
        # Owned like a launcher's staging directory: a fit killed outright leaves it to the next fit's sweep.
        tmp = make_local_staging(ESTIMATOR_PREFIX)
        try:
            # Partitions hold at least one row each: fewer rows than partitions gives one row per partition.
            self._fit_arrays(tmp, X, labels, sample_weight, min(partitions, X.shape[0]))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self

    def _fit_arrays(self, tmp, X, labels, sample_weight, partitions):
        """Write the rows as one dataset under ``tmp`` and train on it."""
        data = os.path.join(tmp, "data")
        write_dataset(data, X, labels, sample_weight, partitions=partitions, missing=self._allow_nan)
        self._train(data)

    def _fit_dataset(self, data, y, sample_weight):
        # A clusterer ignores y, as scikit-learn's do.
        given = (("sample_weight", sample_weight),) if isinstance(self, ClusterMixin) else (
            ("y", y), ("sample_weight", sample_weight))
        for name, value in given:
            if value is not None:
                raise ValueError(f"{data}: {type(self).__name__}.fit on a dataset takes its labels and "
                                 f"weights from the dataset; expected {name}=None, found "
                                 f"{type(value).__name__}")
        dataset = Dataset.open(data)
        self._set_dataset_targets(dataset)
        self._train(data)
        self.n_features_in_ = dataset.n_features
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        names = dataset_names(dataset).get("feature_names")
        if names is not None:  # a dataset that names its features (a CSV header, a categorical encoding)
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self._after_dataset_fit(data)
        return self

    def _check_params(self):
        """Refuse parameters the trainer does not check itself."""

    def _validate_fit_data(self, X, y):
        return validate_data(self, X, y, accept_sparse="csr", dtype=np.float64,
                             ensure_all_finite=self._finite(),
                             y_numeric=not isinstance(self, ClassifierMixin))

    def _encode_targets(self, y, sample_weight):
        return y

    def _set_dataset_targets(self, dataset):
        """Read what the targets need from an opened dataset."""

    def _after_dataset_fit(self, data):
        """Set what a fit on a dataset path needs beyond :meth:`_train`."""

    def _features(self, X):
        check_is_fitted(self)
        return validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False,
                             ensure_all_finite=self._finite())


class _MRTrainModel(_Estimator):
    """What the linear models share: parameters, training by the optimizer loop, in-memory prediction.

    Subclasses set ``_kind`` (the mrtrain model, or None when ``_model_kind`` decides it from the
    classes) and may override ``_encode_targets`` and ``_set_dataset_targets``.
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

    def _check_params(self):
        if not isinstance(self.fit_intercept, bool):
            raise ValueError(f"The 'fit_intercept' parameter of {type(self).__name__} must be a bool. "
                             f"Got {self.fit_intercept!r} instead.")

    def _train(self, data):
        fitted = self._fit_trainer(data, self._model_kind(), self.checkpoint_dir)
        self._fitted = fitted
        self.coef_ = fitted.coef_
        self.intercept_ = fitted.intercept_
        self.n_iter_ = fitted.n_iter_

    def _fit_trainer(self, data, kind, checkpoint_dir):
        trainer = Trainer(
            kind, optimizer=self.optimizer, l2=self.l2, l1=self.l1, standardize=self.standardize,
            fit_intercept=self.fit_intercept,
            max_iter=self.max_iter, tol=self.tol, gtol=self.gtol, runner=self.runner,
            conf_path=self.conf_path, checkpoint_dir=checkpoint_dir, reducers=self.reducers,
        )
        fitted = trainer.fit(data)
        if not fitted.converged_:
            warnings.warn(
                f"{type(self).__name__} stopped before converging ({fitted.stop_reason_}) after "
                f"{fitted.n_iter_} iterations; raise max_iter, loosen tol/gtol, scale the features or "
                "raise l2.", ConvergenceWarning, stacklevel=5,
            )
        return fitted

    def _model_kind(self):
        return self._kind


class _PredictingRegressor(RegressorMixin):
    """A regressor whose fitted model predicts in memory (the linear models, the tree ensembles)."""

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


class _Regressor(_PredictingRegressor, _MRTrainModel):
    """A linear model of a real target."""


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
    standardize : bool or {"spark", "glmnet"}
        Fit in terms of standardized features, the penalties applying there (see
        :class:`mrtrain.Trainer`; True is Spark MLlib's standard deviation, ``"glmnet"`` the population
        one); ``coef_`` and ``intercept_`` are for ``X`` as given. Default: False.
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
    ``η = x·w + b``: scikit-learn's ``PoissonRegressor(alpha=l2)``. Targets must be >= 0. ``score`` is D²,
    the fraction of deviance explained, as scikit-learn's.

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

    def score(self, X, y, sample_weight=None):
        """D², the fraction of Poisson deviance explained, as scikit-learn's ``PoissonRegressor.score``.

        ``1 − D(y, ŷ) / D(y, ȳ)`` with ``D`` the (weighted) Poisson deviance and ``ȳ`` the weighted mean
        of ``y``: 1 for a perfect fit, 0 for predicting the mean, negative for worse (not R²).

        Parameters
        ----------
        X : array_like or sparse matrix of shape (n_samples, n_features)
        y : array_like of shape (n_samples,)
            Targets >= 0.
        sample_weight : array_like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        return d2_tweedie_score(y, self.predict(X), sample_weight=sample_weight, power=1)

    def _encode_targets(self, y, sample_weight):
        if np.any(y < 0):
            row = int(np.flatnonzero(y < 0)[0])
            raise ValueError(f"PoissonRegressor needs targets y >= 0. Got y[{row}] = {float(y[row])!r} "
                             "instead.")
        return y


class _ClassLabels:
    """Class labels of a classifier: ``classes_`` from ``y`` (any labels scikit-learn accepts) or from a
    dataset's classes, the temporary dataset storing each label's index into ``classes_``."""

    def _encode_targets(self, y, sample_weight):
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        weighted = np.unique(labels[sample_weight > 0])
        if weighted.size < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes with a positive sample weight, "
                f"but the data contains only one class: {self.classes_[weighted].tolist()[0]!r}."
            )
        return labels.astype(np.float64)

    def _set_dataset_targets(self, dataset):
        if dataset.classes is None or len(dataset.classes) < 2:
            raise ValueError(f"{dataset.uri}: field '{dataset.label_name}': expected at least 2 class labels "
                             f"for {type(self).__name__}, found {dataset.classes!r}")
        # String labels: the dataset stores class codes 0..K-1 of its class names.
        self.classes_ = np.asarray(dataset.classes if dataset.class_names is None else dataset.class_names)

    def _labels(self, indices):
        """Labels (from ``classes_``) of the fitted model's predicted classes.

        The fitted model predicts its own classes: indices into ``classes_`` (fit on arrays) or the
        dataset's labels (fit on a dataset), both sorted as ``classes_`` is.
        """
        return self.classes_[np.searchsorted(self._fitted.classes_, indices)]


class _ProbabilisticClassifier(_ClassLabels):
    """A classifier whose fitted model gives class probabilities (logistic, softmax, MLP, the tree
    ensembles): probabilities, their logarithm and the most probable label, computed in memory from the
    fitted parameters."""

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
        X = self._features(X)
        return self._labels(self._fitted.predict(X))


class LogisticRegression(_ProbabilisticClassifier, ClassifierMixin, _MRTrainModel):
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
    coef_ : ndarray of shape (1, n_features) for two classes, (n_classes, n_features) for more
        scikit-learn's shapes: for two classes the row of ``classes_[1]``.
    intercept_ : ndarray of shape (1,) for two classes, (n_classes,) for more
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Only when ``X`` was a DataFrame with string column names.
    """

    def _model_kind(self):
        return "logistic" if len(self.classes_) == 2 else "softmax"

    def _train(self, data):
        super()._train(data)
        if self.coef_.ndim == 1:  # scikit-learn's shapes for two classes: (1, n_features) and (1,)
            self.coef_ = self.coef_[None, :]
            self.intercept_ = np.atleast_1d(self.intercept_)

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


class LinearSVC(_ClassLabels, ClassifierMixin, _MRTrainModel):
    """Linear support vector classifier with the squared hinge loss (mrtrain model ``"linear-svc"``).

    Minimises ``(1/Σs) Σ sᵢ max(0, 1 − tᵢ(xᵢ·w + b))² + (l2/2)‖w‖² + l1‖w‖₁`` with ``tᵢ = ±1``. Multiplied
    by ``1/l2`` this is scikit-learn's ``LinearSVC(loss="squared_hinge", C=1/(Σs·l2))`` objective
    ``½‖w‖² + C Σ sᵢ max(0, 1 − tᵢ(xᵢ·w + b))²``, so ``C = 1/(n·l2)`` for unit weights (``l2 = 1/(n·C)``),
    with one difference: scikit-learn's liblinear penalizes the intercept (as a feature of value
    ``intercept_scaling``), mrtrain does not; with ``fit_intercept=False`` the two objectives are the same.
    With more than two classes it trains one binary model per class against the rest (scikit-learn's
    one-vs-rest), one training each; a dataset path must then hold two classes.

    Parameters
    ----------
    l2 : float >= 0
        Strength of ``(l2/2)‖w‖²``. Default: 1e-4 (without a penalty the squared hinge has no minimum on
        separable data).
    l1, standardize, fit_intercept, optimizer, max_iter, tol, gtol, runner, partitions, checkpoint_dir,
    reducers, conf_path
        As in :class:`LinearRegression`. With one-vs-rest, ``checkpoint_dir`` gets one subdirectory per
        class, ``class-<index>``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) for two classes, (n_classes, n_features) for more
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : int
        Optimizer iterations (the most of the one-vs-rest models).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Only when ``X`` was a DataFrame with string column names.
    """

    _kind = "linear-svc"

    def __init__(self, *, l2=1e-4, l1=0.0, standardize=False, fit_intercept=True, optimizer=None,
                 max_iter=100, tol=1e-8, gtol=1e-6, runner="inline", partitions=1, checkpoint_dir=None,
                 reducers=1, conf_path=None):
        super().__init__(l2=l2, l1=l1, standardize=standardize, fit_intercept=fit_intercept,
                         optimizer=optimizer, max_iter=max_iter, tol=tol, gtol=gtol, runner=runner,
                         partitions=partitions, checkpoint_dir=checkpoint_dir, reducers=reducers,
                         conf_path=conf_path)

    def _set_dataset_targets(self, dataset):
        super()._set_dataset_targets(dataset)
        if len(self.classes_) != 2:
            raise ValueError(f"{dataset.uri}: field '{dataset.label_name}': expected 2 class labels for "
                             f"LinearSVC on a dataset (one-vs-rest needs the rows in memory), found "
                             f"{len(self.classes_)}")

    def _fit_arrays(self, tmp, X, labels, sample_weight, partitions):
        if len(self.classes_) == 2:
            return super()._fit_arrays(tmp, X, labels, sample_weight, partitions)
        self._fitted_per_class = []
        for index in range(len(self.classes_)):
            data = os.path.join(tmp, f"class-{index}")
            write_dataset(data, X, (labels == index).astype(np.float64), sample_weight, partitions=partitions)
            checkpoint_dir = self.checkpoint_dir and join(self.checkpoint_dir, f"class-{index}")
            self._fitted_per_class.append(self._fit_trainer(data, self._kind, checkpoint_dir))
            shutil.rmtree(data)
        self._fitted = None
        self.coef_ = np.stack([fitted.coef_ for fitted in self._fitted_per_class])
        self.intercept_ = np.array([fitted.intercept_ for fitted in self._fitted_per_class])
        self.n_iter_ = max(fitted.n_iter_ for fitted in self._fitted_per_class)
        return None

    def _train(self, data):
        super()._train(data)
        self._fitted_per_class = None
        self.coef_ = self.coef_[None, :]
        self.intercept_ = np.atleast_1d(self.intercept_)

    def decision_function(self, X):
        """Signed margins: of ``classes_[1]`` for two classes, of each class against the rest for more.

        Parameters
        ----------
        X : array_like or sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        X = self._features(X)
        if self._fitted_per_class is None:
            return self._fitted.decision_function(X)
        return np.column_stack([fitted.decision_function(X) for fitted in self._fitted_per_class])

    def predict(self, X):
        """Predicted class labels (from ``classes_``), shape (n_samples,): the sign of the margin for two
        classes, the class of the largest margin for more."""
        margins = self.decision_function(X)
        if margins.ndim == 1:
            return self.classes_[(margins > 0).astype(np.intp)]
        return self.classes_[np.argmax(margins, axis=1)]


class _NaiveBayes(_ClassLabels, ClassifierMixin, _Estimator):
    """What the naive Bayes estimators share: one pass of class statistics, prediction in memory."""

    _kind = None
    _smoothing_name = "alpha"

    def _check_params(self):
        check_number(self._smoothing_name, getattr(self, self._smoothing_name), minimum=0, strictly=True)

    def _train(self, data):
        fitted = Trainer(self._kind, smoothing=float(getattr(self, self._smoothing_name)), runner=self.runner,
                         conf_path=self.conf_path, checkpoint_dir=self.checkpoint_dir).fit(data)
        self._fitted = fitted
        self._set_parameters(fitted.coef_, fitted.intercept_)

    def _set_parameters(self, coef, log_prior):
        """scikit-learn's fitted attributes from the model's ``(K, q)`` rows and class log priors."""
        self.feature_log_prob_ = coef
        self.class_log_prior_ = log_prior

    def predict_joint_log_proba(self, X):
        """Joint log-likelihoods ``log P(c) + log P(x | c)``, shape (n_samples, n_classes).

        Parameters
        ----------
        X : array_like or sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        X = self._features(X)
        return self._fitted.decision_function(X)

    def predict_log_proba(self, X):
        """Log class probabilities, columns in ``classes_`` order: the joint log-likelihoods minus their
        log-sum-exp per row (scikit-learn's formula).

        Parameters
        ----------
        X : array_like or sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        jll = self.predict_joint_log_proba(X)
        return jll - logsumexp(jll, axis=1)[:, None]

    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order, shape (n_samples, n_classes)."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """Predicted class labels (from ``classes_``) by the largest joint log-likelihood, shape (n,)."""
        jll = self.predict_joint_log_proba(X)
        return self.classes_[np.argmax(jll, axis=1)]


_NAIVE_BAYES_PARAMETERS = """    runner : {"inline", "local", "hadoop"}
        The mrjob runner. Default: ``"inline"``.
    partitions : int >= 1
        Partitions (map tasks) of the temporary dataset written by ``fit(X, y)``; at most one per row.
        Default: 1.
    checkpoint_dir : str, optional
        Directory (local or ``hdfs://``) for the fitted model (checkpoint 1); a refit with the same data and
        settings returns it without a pass. Default: None.
    conf_path : str, optional
        mrjob config file. Default: None.
"""


class MultinomialNB(_NaiveBayes):
    """Multinomial naive Bayes (mrtrain model ``"multinomial-nb"``), fitted in one MapReduce pass.

    scikit-learn's ``MultinomialNB(alpha=alpha)`` with ``fit_prior=True``: features are counts >= 0,
    ``log P(x_j | c) = log(N_cj + α) − log(Σ_j N_cj + d·α)``, the class prior the weighted class share.

    Parameters
    ----------
    alpha : float > 0
        Additive smoothing (mrtrain's ``smoothing``). Default: 1.0.
""" + _NAIVE_BAYES_PARAMETERS + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    class_log_prior_ : ndarray of shape (n_classes,)
    feature_log_prob_ : ndarray of shape (n_classes, n_features)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Only when ``X`` was a DataFrame with string column names.
    """

    _kind = "multinomial-nb"

    def __init__(self, *, alpha=1.0, runner="inline", partitions=1, checkpoint_dir=None, conf_path=None):
        self.alpha = alpha
        self.runner = runner
        self.partitions = partitions
        self.checkpoint_dir = checkpoint_dir
        self.conf_path = conf_path

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.classifier_tags.poor_score = True  # as scikit-learn's MultinomialNB
        return tags

    def _validate_fit_data(self, X, y):
        X, y = super()._validate_fit_data(X, y)
        check_non_negative(X, "MultinomialNB (input X)")
        return X, y


class BernoulliNB(_NaiveBayes):
    """Bernoulli naive Bayes (mrtrain model ``"bernoulli-nb"``), fitted in one MapReduce pass.

    scikit-learn's ``BernoulliNB(alpha=alpha)`` with ``binarize=0.0`` and ``fit_prior=True``: a feature
    counts as present when it is > 0, ``P(x_j = 1 | c) = (N_cj + α) / (N_c + 2α)``.

    Parameters
    ----------
    alpha : float > 0
        Additive smoothing (mrtrain's ``smoothing``). Default: 1.0.
""" + _NAIVE_BAYES_PARAMETERS + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    class_log_prior_ : ndarray of shape (n_classes,)
    feature_log_prob_ : ndarray of shape (n_classes, n_features)
        ``log P(x_j = 1 | c)``.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Only when ``X`` was a DataFrame with string column names.
    """

    _kind = "bernoulli-nb"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True  # as scikit-learn's BernoulliNB
        return tags

    def __init__(self, *, alpha=1.0, runner="inline", partitions=1, checkpoint_dir=None, conf_path=None):
        self.alpha = alpha
        self.runner = runner
        self.partitions = partitions
        self.checkpoint_dir = checkpoint_dir
        self.conf_path = conf_path


class GaussianNB(_NaiveBayes):
    """Gaussian naive Bayes (mrtrain model ``"gaussian-nb"``), fitted in one MapReduce pass.

    scikit-learn's ``GaussianNB(var_smoothing=var_smoothing)``: per class the weighted mean and variance of
    every feature, ``var_smoothing`` times the largest feature variance added to every variance, the class
    prior the weighted class share. Dense features only.

    Parameters
    ----------
    var_smoothing : float > 0
        mrtrain's ``smoothing``. Default: 1e-9.
""" + _NAIVE_BAYES_PARAMETERS + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    class_prior_ : ndarray of shape (n_classes,)
    theta_ : ndarray of shape (n_classes, n_features)
        Per-class feature means.
    var_ : ndarray of shape (n_classes, n_features)
        Per-class feature variances, smoothing included.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Only when ``X`` was a DataFrame with string column names.
    """

    _kind = "gaussian-nb"
    _smoothing_name = "var_smoothing"

    def __init__(self, *, var_smoothing=1e-9, runner="inline", partitions=1, checkpoint_dir=None,
                 conf_path=None):
        self.var_smoothing = var_smoothing
        self.runner = runner
        self.partitions = partitions
        self.checkpoint_dir = checkpoint_dir
        self.conf_path = conf_path

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

    def _validate_fit_data(self, X, y):
        return validate_data(self, X, y, dtype=np.float64)

    def _features(self, X):
        check_is_fitted(self)
        return validate_data(self, X, dtype=np.float64, reset=False)

    def _set_parameters(self, coef, log_prior):
        d = coef.shape[1] // 2
        self.theta_, self.var_ = coef[:, :d], coef[:, d:]
        self.class_prior_ = np.exp(log_prior)


class KMeans(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, _Estimator):
    """k-means clustering (mrtrain model ``"kmeans"``): k-means|| or given centres, then Lloyd passes.

    Spark MLlib's ``KMeans`` by MapReduce: one job per Lloyd pass, each row assigned to its nearest centre
    (ties to the lowest index), every centre moved to its cluster's weighted mean; a cluster left without
    weight keeps its centre (scikit-learn moves it to a far point instead). From the same initial centres
    the centres are scikit-learn's ``KMeans(init=centres, n_init=1, algorithm="lloyd")``'s. The
    initialisation is k-means|| (Spark's; scikit-learn's k-means++ is not offered) or the given centres.

    Of scikit-learn's ``check_estimator`` it fails ``check_sample_weight_equivalence_on_dense_data`` and
    ``..._on_sparse_data``, which scikit-learn marks as expected failures of its own KMeans too: k-means||
    samples every row with its own random draw, so a row of weight 2 and two copies of it are sampled
    differently. From given centres, sample weights are the same as repeated rows.

    Parameters
    ----------
    n_clusters : int >= 1
        Number of centres, at most the number of rows. Default: 8.
    init : "k-means||" or array_like of shape (n_clusters, n_features)
        k-means|| with ``init_steps`` sampling steps (``2 + 2·init_steps`` passes), or the initial centres.
        Default: ``"k-means||"``.
    max_iter : int >= 1
        Lloyd passes at most. Default: 300.
    tol : float >= 0
        Stop when the largest squared centre move is at most ``tol`` times the features' mean variance
        (scikit-learn bounds the sum of the squared moves instead). Default: 1e-4.
    random_state : int >= 0, numpy RandomState, or None
        The seed of k-means|| (mrtrain's ``seed``); a RandomState gives one draw of a seed, None means 0, so
        the same data give the same centres. Default: None.
    init_steps : int >= 1
        Sampling steps of k-means|| (Spark's ``initSteps``). Default: 2.
    n_init : int >= 1
        k-means|| starts (seeds ``seed .. seed + n_init - 1``); the one of lowest final inertia is kept,
        their Lloyd passes shared (:class:`mrtrain.Trainer`'s ``n_init``). Default: 1, scikit-learn's
        ``n_init="auto"`` for its k-means++ start.
    runner, partitions, checkpoint_dir, reducers, conf_path
        As in :class:`LinearRegression`.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray of shape (n_samples,)
        The nearest centre of every training row; only after ``fit`` on arrays (on a dataset path,
        :meth:`mrtrain.FittedModel.predict_dataset` writes them).
    inertia_ : float
        ``Σ sᵢ ‖xᵢ − c(xᵢ)‖²`` of the training rows at the final centres (from one evaluate pass on a
        dataset path).
    n_iter_ : int
        Lloyd passes.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Only when ``X`` was a DataFrame with string column names.
    """

    def __init__(self, n_clusters=8, *, init="k-means||", max_iter=300, tol=1e-4, random_state=None,
                 init_steps=2, n_init=1, runner="inline", partitions=1, checkpoint_dir=None, reducers=1,
                 conf_path=None):
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.init_steps = init_steps
        self.n_init = n_init
        self.runner = runner
        self.partitions = partitions
        self.checkpoint_dir = checkpoint_dir
        self.reducers = reducers
        self.conf_path = conf_path

    def _check_params(self):
        check_int("n_clusters", self.n_clusters, minimum=1)
        if isinstance(self.init, str) and self.init == "k-means||":
            return
        if isinstance(self.init, str) or callable(self.init):
            raise ValueError(f"The 'init' parameter of KMeans must be 'k-means||' or an array of shape "
                             f"(n_clusters, n_features). Got {self.init!r} instead.")

    def _validate_fit_data(self, X, y):
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64)
        if X.shape[0] < self.n_clusters:
            raise ValueError(f"The 'n_clusters' parameter of KMeans must be at most the number of samples, "
                             f"n_samples={X.shape[0]}. Got {self.n_clusters} instead.")
        if not isinstance(self.init, str):
            shape = np.shape(self.init)
            if shape != (self.n_clusters, X.shape[1]):
                raise ValueError(f"The 'init' parameter of KMeans must be 'k-means||' or an array of shape "
                                 f"(n_clusters, n_features) = {(self.n_clusters, X.shape[1])}. Got shape "
                                 f"{shape} instead.")
        return X, np.zeros(X.shape[0])


    def _fit_arrays(self, tmp, X, labels, sample_weight, partitions):
        super()._fit_arrays(tmp, X, labels, sample_weight, partitions)
        labels, distances = nearest_centers(self._fitted.model.features(X), self.cluster_centers_)
        self.labels_ = labels.astype(np.int32)
        self.inertia_ = float(np.dot(sample_weight, distances))

    def _train(self, data):
        init = None if isinstance(self.init, str) else self.init
        fitted = Trainer("kmeans", k=self.n_clusters, seed=random_seed("KMeans", self.random_state),
                         init_centers=init, init_steps=self.init_steps, n_init=self.n_init,
                         max_iter=self.max_iter, tol=self.tol, runner=self.runner, conf_path=self.conf_path,
                         checkpoint_dir=self.checkpoint_dir,
                         reducers=self.reducers).fit(data)
        if not fitted.converged_:
            warnings.warn(f"KMeans stopped before converging ({fitted.stop_reason_}) after {fitted.n_iter_} "
                          "Lloyd passes; raise max_iter or loosen tol.", ConvergenceWarning, stacklevel=5)
        self._fitted = fitted
        self.cluster_centers_ = fitted.coef_
        self.n_iter_ = fitted.n_iter_
        if hasattr(self, "labels_"):
            del self.labels_

    def _after_dataset_fit(self, data):
        metrics = self._fitted.evaluate(data, runner=self.runner, conf_path=self.conf_path,
                                        reducers=self.reducers)
        self.inertia_ = float(metrics["inertia"])

    @property
    def _n_features_out(self):
        return self.cluster_centers_.shape[0]

    def predict(self, X):
        """Index of the nearest centre of every row, shape (n_samples,).

        Parameters
        ----------
        X : array_like or sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), int32
        """
        X = self._features(X)
        labels, _ = nearest_centers(self._fitted.model.features(X), self.cluster_centers_)
        return labels.astype(np.int32)

    def transform(self, X):
        """Euclidean distances to every centre, shape (n_samples, n_clusters).

        Parameters
        ----------
        X : array_like or sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_clusters)
        """
        X = self._features(X)
        return self._fitted.decision_function(X)

    def score(self, X, y=None, sample_weight=None):
        """Minus the inertia of ``X`` at the centres: ``−Σ sᵢ ‖xᵢ − c(xᵢ)‖²`` (scikit-learn's sign).

        Parameters
        ----------
        X : array_like or sparse matrix of shape (n_samples, n_features)
        y : ignored
        sample_weight : array_like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        X = self._features(X)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        _, distances = nearest_centers(self._fitted.model.features(X), self.cluster_centers_)
        return -float(np.dot(sample_weight, distances))
