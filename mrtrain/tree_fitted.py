"""A fitted tree ensemble: in-memory prediction, the evaluate and predict jobs, ``inspect``'s summary.

Read back from a checkpoint directory of :mod:`mrtrain.tree_training` (:meth:`TreeFittedModel.load`: the
newest valid checkpoint of a finished training). Evaluation is one pass of
:class:`~mrtrain.mr_jobs.tree_histograms.MRTreeHistograms` in its ``"evaluate"`` phase
(:func:`mrtrain.engine.tree_pass.finalize_metrics`); predictions are written by
:class:`~mrtrain.mr_jobs.tree_predict.MRTreePredict`, the columns of every model's predictions.
"""

import logging

import numpy as np

from mrtrain.engine.tree_pass import PassState, ensemble_from_arrays, ensemble_outputs, finalize_metrics
from mrtrain.engine.trees.binning import Bins
from mrtrain.engine.trees.export import to_json
from mrtrain.launcher import JobLauncher, effective_reducers
from mrtrain.mr_jobs.tree_histograms import MRTreeHistograms
from mrtrain.mr_jobs.tree_predict import MRTreePredict
from mrtrain.names import class_labels, feature_names
from mrtrain.predictions import check_like_training, predict_task, write_predictions
from mrtrain.storage.checkpoint import latest_checkpoint
from mrtrain.storage.dataset import Dataset
from mrtrain.storage.errors import CheckpointError, DataError
from mrtrain.storage.filesystem import absolute
from mrtrain.tree_models import grows_forest

log = logging.getLogger(__name__)

#: Features listed by ``inspect`` (largest total gain first).
SUMMARY_FEATURES = 10


def is_tree_checkpoint(checkpoint):
    """Whether a loaded checkpoint is a tree ensemble's."""
    return checkpoint.meta.get("family") == "trees"


def validate_tree_checkpoint(checkpoint):
    """Refuse (CheckpointError) a checkpoint that is not a tree ensemble's."""
    if not is_tree_checkpoint(checkpoint):
        raise CheckpointError(checkpoint.uri, "expected a tree ensemble's checkpoint, found another model's")


class TreeFittedModel:
    """A fitted tree ensemble (``gbt`` or ``random-forest``).

    Attributes
    ----------
    ensemble : mrtrain.engine.trees.tree.Ensemble
    bins : mrtrain.engine.trees.binning.Bins
    objective : str
        The engine objective the trees were grown with.
    classes : list of float or None
        The label values of the classes (classifiers).
    settings : dict
        The training's settings (as in every checkpoint).
    history : list of float
        Validation loss after 0, 1, … rounds (with a validation fraction).
    stop_reason : str or None
    passes : int
    """

    def __init__(self, ensemble, bins, objective, classes, settings, history, stop_reason=None, passes=0):
        self.ensemble, self.bins, self.objective = ensemble, bins, objective
        self.classes, self.settings, self.history = classes, settings, list(history)
        self.classes_ = None if classes is None else np.asarray(classes)  # as FittedModel's, for estimators
        self.stop_reason, self.passes = stop_reason, passes
        self.model = settings["model"]
        self.forest_classes = grows_forest(self.model) and classes is not None
        self.class_names = settings.get("class_names")
        self.class_labels = class_labels(settings, classes)

    @classmethod
    def load(cls, directory):
        """The model of the newest valid checkpoint in ``directory``.

        Raises
        ------
        FileNotFoundError
            No valid checkpoint.
        CheckpointError
            The training has not finished (rerun ``train`` to resume it).
        """
        checkpoint = latest_checkpoint(absolute(directory), validate=validate_tree_checkpoint)
        if checkpoint is None:
            raise FileNotFoundError(f"{directory}: no valid checkpoint of a tree ensemble")
        return cls.from_checkpoint(checkpoint)

    @classmethod
    def from_checkpoint(cls, checkpoint):
        """The model in ``checkpoint``, a tree ensemble's (:func:`validate_tree_checkpoint`).

        Raises
        ------
        CheckpointError
            The training has not finished (rerun ``train`` to resume it).
        """
        meta = checkpoint.meta
        if not meta["done"]:
            raise CheckpointError(checkpoint.uri, "expected a finished training, found one stopped after "
                                  f"pass {meta['passes']}; rerun the same train command to resume it")
        arrays = checkpoint.arrays
        settings = meta["settings"]
        bins = Bins.from_arrays({"n_edges": arrays["bins_n_edges"], "edges": arrays["bins_edges"]})
        return cls(ensemble_from_arrays(arrays), bins, settings["objective_used"], settings["classes"],
                   settings, meta["history"], meta["stop_reason"], meta["passes"])

    # -- in memory -----------------------------------------------------------------------------------------
    def _outputs(self, X):
        return ensemble_outputs(self.ensemble, self.objective, self.forest_classes, X)

    def predict_margin(self, X):
        """The margin of rows ``X`` (NaN: missing; dense or sparse), shape (n, K)."""
        return self.ensemble.predict_margin(X)

    def predict_proba(self, X):
        """Class probabilities, shape (n, K), columns in ``classes`` order (classifiers only)."""
        if self.classes is None:
            raise ValueError(f"predict_proba needs a classifier; this {self.model} is a regression")
        _, p = self._outputs(X)
        return np.column_stack((1 - p, p)) if p.ndim == 1 else p

    def predict(self, X):
        """Predicted class labels (classifiers) or values (regression), shape (n,)."""
        if self.classes is not None:
            return np.asarray(self.classes)[np.argmax(self.predict_proba(X), axis=1)]
        return self._outputs(X)[1]

    def feature_importance(self):
        """``(total gain, split count)`` of every feature, shape (F,) each."""
        return self.ensemble.feature_importance()

    def to_dict(self):
        """``train``'s and ``inspect``'s result: the model, its trees, feature importance (by total gain)."""
        gain, count = self.feature_importance()
        names = feature_names(self.settings, self.ensemble.n_features)
        order = np.argsort(-gain, kind="stable")
        return {
            "model": self.model, "objective": self.objective, "classes": self.classes,
            **({} if self.class_names is None else {"class_names": self.class_names}),
            "trees": self.ensemble.n_trees, "nodes": int(len(self.ensemble.nodes.feature)),
            "passes": self.passes, "stop_reason": self.stop_reason,
            "feature_importance": {names[j]: {"gain": float(gain[j]), "splits": int(count[j])}
                                   for j in order if count[j]},
            "validation_loss": self.history or None, "settings": self.settings,
        }

    def to_json(self):
        """The trees in the documented JSON format (:mod:`mrtrain.engine.trees.export`)."""
        return to_json(self.ensemble, self.objective, feature_names(self.settings, self.ensemble.n_features))

    # -- MapReduce -----------------------------------------------------------------------------------------
    def _state(self, phase):
        return PassState(phase, objective=self.objective, n_classes=self.settings["n_classes"],
                         classes=self.classes, seed=self.settings["seed"], bins=self.bins,
                         ensemble=self.ensemble, independent=grows_forest(self.model))

    def _spec(self, dataset):
        return {"kind": self.model, "n_features": dataset.n_features, "classes": self.classes,
                "fit_intercept": False}

    def _open_matching(self, data):
        dataset = Dataset.open(absolute(data))
        check_like_training(dataset, self.settings, n_features=self.ensemble.n_features,
                            class_names=self.class_names, class_labels=self.class_labels,
                            has_classes=self.classes is not None)
        return dataset

    def evaluate(self, data, *, runner="inline", conf_path=None, partition_cache=True, reducers=1):
        """Metrics on dataset ``data`` by one pass (:func:`mrtrain.engine.tree_pass.finalize_metrics`)."""
        dataset = self._open_matching(data)
        if not dataset.has_label:
            raise DataError(f"{dataset.uri}: field '{dataset.label_name}': expected labels to evaluate on, "
                            "found a dataset ingested without its label column (for predict only)")
        state = self._state("evaluate")
        reducers = effective_reducers(reducers, 6, "evaluate")
        with JobLauncher(dataset, self._spec(dataset), runner=runner, conf_path=conf_path,
                         partition_cache=partition_cache, reducers=reducers) as launcher:
            vector = launcher.sum_vector(MRTreeHistograms, state.vector()[None, :], {"trees": state.header()})
        return finalize_metrics(vector, self.classes)

    def predict_dataset(self, data, output, *, runner="inline", conf_path=None, partition_cache=True):
        """Write predictions for dataset ``data`` into the new directory ``output`` (as every model's:
        ``part-NNNNN.parquet`` and ``_predictions.json``, renamed into place when all partitions are done)."""
        dataset = self._open_matching(data)
        state = self._state("evaluate")

        def run_job(staging):
            task = {"trees": state.header(), **predict_task(dataset, staging, class_labels=self.class_labels,
                                                            class_names=self.class_names)}
            with JobLauncher(dataset, self._spec(dataset), runner=runner, conf_path=conf_path,
                             partition_cache=partition_cache) as launcher:
                return launcher.run(MRTreePredict, state.vector()[None, :], task)

        return write_predictions(dataset, output, run_job, model=self.model, class_labels=self.class_labels)


def tree_summary(result):
    """``inspect``'s text for a tree ensemble's ``to_dict`` result."""
    keys = ("model", "objective", "trees", "nodes", "passes", "stop_reason")
    lines = [f"{key:>16}: {result[key]}" for key in keys if result.get(key) is not None]
    if result.get("classes") is not None:
        names = result.get("class_names") or [f"{c:g}" for c in result["classes"]]
        lines.append(f"{'classes':>16}: {', '.join(names)}")
    if result.get("validation_loss"):
        losses = result["validation_loss"]
        lines.append(f"{'validation loss':>16}: {losses[0]:.6g} (0 rounds) .. best {min(losses):.6g}")
    importance = list(result["feature_importance"].items())
    lines.append(f"{'importance':>16}: total gain, splits (top {min(SUMMARY_FEATURES, len(importance))} of "
                 f"{len(importance)} features used)")
    for name, value in importance[:SUMMARY_FEATURES]:
        lines.append(f"{'':>16}  {name}: {value['gain']:.6g}, {value['splits']}")
    return "\n".join(lines)
