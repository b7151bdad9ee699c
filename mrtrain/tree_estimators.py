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

import numpy as np
from sklearn.base import ClassifierMixin

from mrtrain.estimators import _Estimator, _PredictingRegressor, _ProbabilisticClassifier, random_seed
from mrtrain.tree_training import TreeConfig, fit_trees

__all__ = ["GradientBoostingClassifier", "GradientBoostingRegressor", "RandomForestClassifier",
           "RandomForestRegressor"]


class _TreeEstimator(_Estimator):
    """What the tree estimators share: their common parameters, NaN allowed, training by :func:`fit_trees`,
    importances."""

    _model = "gbt"
    _allow_nan = True

    def __init__(self, *, n_estimators, max_depth, max_bins, min_child_weight, random_state, runner,
                 partitions, checkpoint_dir, conf_path):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.max_bins = max_bins
        self.min_child_weight = min_child_weight
        self.random_state = random_state
        self.runner = runner
        self.partitions = partitions
        self.checkpoint_dir = checkpoint_dir
        self.conf_path = conf_path

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
        super().__init__(n_estimators=n_estimators, max_depth=max_depth, max_bins=max_bins,
                         min_child_weight=min_child_weight, random_state=random_state, runner=runner,
                         partitions=partitions, checkpoint_dir=checkpoint_dir, conf_path=conf_path)
        self.learning_rate = learning_rate
        self.l2 = l2
        self.min_split_gain = min_split_gain
        self.subsample = subsample
        self.colsample = colsample

    def _own_values(self):
        return {"learning_rate": self.learning_rate, "l2": self.l2, "min_split_gain": self.min_split_gain,
                "subsample": self.subsample, "colsample": self.colsample}


class _Forest(_TreeEstimator):
    _model = "random-forest"

    def __init__(self, *, n_estimators=100, max_depth=8, max_bins=255, min_child_weight=1.0,
                 max_features="sqrt", random_state=None, runner="inline", partitions=1, checkpoint_dir=None,
                 conf_path=None):
        super().__init__(n_estimators=n_estimators, max_depth=max_depth, max_bins=max_bins,
                         min_child_weight=min_child_weight, random_state=random_state, runner=runner,
                         partitions=partitions, checkpoint_dir=checkpoint_dir, conf_path=conf_path)
        self.max_features = max_features

    def _own_values(self):
        return {"max_features": self.max_features}


class GradientBoostingClassifier(_ProbabilisticClassifier, ClassifierMixin, _GBT):
    """Gradient-boosted trees for classes: logistic for two, softmax (a tree per class per round) for more."""

    def _objective(self):
        return "logistic" if len(self.classes_) == 2 else "softmax"


class GradientBoostingRegressor(_PredictingRegressor, _GBT):
    """Gradient-boosted trees for a real target (squared error)."""

    def _objective(self):
        return "squared_error"


class RandomForestClassifier(_ProbabilisticClassifier, ClassifierMixin, _Forest):
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


class RandomForestRegressor(_PredictingRegressor, _Forest):
    """A random forest for a real target: bootstrap trees of leaf means, averaged. Each node draws from all
    features by default (``max_features=1.0``), as scikit-learn's ``RandomForestRegressor``."""

    def __init__(self, *, n_estimators=100, max_depth=8, max_bins=255, min_child_weight=1.0, max_features=1.0,
                 random_state=None, runner="inline", partitions=1, checkpoint_dir=None, conf_path=None):
        super().__init__(n_estimators=n_estimators, max_depth=max_depth, max_bins=max_bins,
                         min_child_weight=min_child_weight, max_features=max_features,
                         random_state=random_state, runner=runner, partitions=partitions,
                         checkpoint_dir=checkpoint_dir, conf_path=conf_path)

    def _objective(self):
        return "regression"
