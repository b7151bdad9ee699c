"""scikit-learn estimators of the tree ensembles: :class:`GradientBoostingClassifier`,
:class:`GradientBoostingRegressor`, :class:`RandomForestClassifier`, :class:`RandomForestRegressor`.

They share :mod:`mrtrain.estimators`' fitting (arrays through a temporary dataset, or a dataset path) and
train with :func:`mrtrain.tree_training.fit_trees`; NaN in ``X`` is a missing value (the dataset is written
as ``--keep-missing`` writes it), which the trees route by their learnt default direction. Prediction is in
memory (:class:`mrtrain.tree_fitted.TreeFittedModel`). ``feature_importances_`` is the total gain of each
feature normalised to sum 1 (all zeros for trees without a split), as scikit-learn's impurity-based
importances are normalised. The parameter names are scikit-learn's where it has them (``n_estimators``,
``learning_rate``, ``max_depth``, ``subsample``, ``max_features``, ``random_state``) and mrtrain's otherwise
(``max_bins``, ``l2``, ``min_child_weight``, ``min_split_gain``, ``colsample``). The random forest's
classifier takes any number of classes: as scikit-learn's, each leaf holds the class distribution of its
bootstrap rows and ``predict_proba`` averages them over the trees (more than two classes: trees of vector
leaves grown by the Gini criterion, :mod:`mrtrain.engine.trees.splits`).
"""

import os

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.validation import validate_data

from mrtrain.estimators import _ClassLabels, _Estimator, random_seed
from mrtrain.storage.dataset import write_dataset
from mrtrain.tree_training import TreeConfig, fit_trees

__all__ = ["GradientBoostingClassifier", "GradientBoostingRegressor", "RandomForestClassifier",
           "RandomForestRegressor"]


class _TreeEstimator(_Estimator):
    """What the tree estimators share: NaN allowed, training by :func:`fit_trees`, importances."""

    _model = "gbt"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _validate_fit_data(self, X, y):
        return validate_data(self, X, y, accept_sparse="csr", dtype=np.float64, ensure_all_finite="allow-nan",
                             y_numeric=not isinstance(self, ClassifierMixin))

    def _features(self, X):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        return validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False,
                             ensure_all_finite="allow-nan")

    def _fit_arrays(self, tmp, X, labels, sample_weight, partitions):
        data = os.path.join(tmp, "data")
        write_dataset(data, X, labels, sample_weight, partitions=partitions, missing=True)
        self._train(data)

    def _objective(self):
        return None

    def _config(self):
        values = {"model": self._model, "objective": self._objective(), "n_trees": self.n_estimators,
                  "max_depth": self.max_depth, "max_bins": self.max_bins,
                  "min_child_weight": self.min_child_weight, "seed": random_seed(type(self).__name__,
                                                                                  self.random_state)}
        return TreeConfig(**values, **self._own_values())

    def _own_values(self):
        """The :class:`TreeConfig` values of the parameters only this estimator's model has."""
        return {}

    def _train(self, data):
        self._fitted = fit_trees(data, self._config(), runner=self.runner, conf_path=self.conf_path,
                                 checkpoint_dir=self.checkpoint_dir)
        gain, _ = self._fitted.feature_importance()
        total = gain.sum()
        self.feature_importances_ = gain / total if total > 0 else np.zeros_like(gain)
        self.n_estimators_ = self._fitted.ensemble.n_trees

    def apply_json(self):
        """The trees in the documented JSON format (:mod:`mrtrain.engine.trees.export`)."""
        return self._fitted.to_json()


class _GBT(_TreeEstimator):
    def __init__(self, *, n_estimators=100, learning_rate=0.1, max_depth=3, max_bins=255, l2=0.0,
                 min_child_weight=1.0, min_split_gain=0.0, subsample=1.0, colsample=1.0, random_state=None,
                 runner="inline", partitions=1, checkpoint_dir=None, conf_path=None):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.max_bins = max_bins
        self.l2 = l2
        self.min_child_weight = min_child_weight
        self.min_split_gain = min_split_gain
        self.subsample = subsample
        self.colsample = colsample
        self.random_state = random_state
        self.runner = runner
        self.partitions = partitions
        self.checkpoint_dir = checkpoint_dir
        self.conf_path = conf_path

    def _own_values(self):
        return {"learning_rate": self.learning_rate, "l2": self.l2, "min_split_gain": self.min_split_gain,
                "subsample": self.subsample, "colsample": self.colsample}


class _Forest(_TreeEstimator):
    _model = "random-forest"

    def __init__(self, *, n_estimators=100, max_depth=8, max_bins=255, min_child_weight=1.0,
                 max_features="sqrt", random_state=None, runner="inline", partitions=1, checkpoint_dir=None,
                 conf_path=None):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.max_bins = max_bins
        self.min_child_weight = min_child_weight
        self.max_features = max_features
        self.random_state = random_state
        self.runner = runner
        self.partitions = partitions
        self.checkpoint_dir = checkpoint_dir
        self.conf_path = conf_path

    def _own_values(self):
        return {"max_features": self.max_features}


class _TreeClassifier(_ClassLabels, ClassifierMixin):
    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order, shape (n_samples, n_classes)."""
        X = self._features(X)
        return self._fitted.predict_proba(X)

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted class labels (from ``classes_``)."""
        X = self._features(X)
        return self._labels(self._fitted.predict(X))


class _TreeRegressor(RegressorMixin):
    def predict(self, X):
        """Predicted values, shape (n_samples,)."""
        X = self._features(X)
        return self._fitted.predict(X)


class GradientBoostingClassifier(_TreeClassifier, _GBT):
    """Gradient-boosted trees for classes: logistic for two, softmax (a tree per class per round) for more."""

    def _objective(self):
        return "logistic" if len(self.classes_) == 2 else "softmax"


class GradientBoostingRegressor(_TreeRegressor, _GBT):
    """Gradient-boosted trees for a real target (squared error)."""

    def _objective(self):
        return "squared_error"


class RandomForestClassifier(_TreeClassifier, _Forest):
    """A random forest classifier, as scikit-learn's ``RandomForestClassifier``: each tree is grown on a
    Poisson(1) bootstrap of the rows, by the Gini criterion, to leaves holding the class distribution of
    their bootstrap rows; ``predict_proba`` is the average over the trees of the leaves' distributions.

    Two classes or more (labels of any type: ``classes_`` is their sorted set). Parameters as
    :class:`RandomForestRegressor`'s: ``n_estimators``, ``max_depth`` (8), ``max_bins``,
    ``min_child_weight`` (least bootstrap weight of a child), ``max_features`` (``"sqrt"``),
    ``random_state``, and the run's ``runner``, ``partitions``, ``checkpoint_dir``, ``conf_path``.
    """

    def _objective(self):
        return "classification"


class RandomForestRegressor(_TreeRegressor, _Forest):
    """A random forest for a real target: bootstrap trees of leaf means, averaged."""

    def _objective(self):
        return "regression"
