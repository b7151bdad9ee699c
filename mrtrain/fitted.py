"""A trained model: coefficients, in-memory prediction, and MapReduce evaluate / predict over datasets.

:meth:`FittedModel.load` reads the newest valid checkpoint of a directory; the checkpoint schema is
:mod:`mrtrain.training.checkpoint_schema` (its names used here are importable from this module too).
"""

import logging

import numpy as np

from mrtrain.engine.kmeans import ClusterStatistics, kmeans_metrics, statistics_length
from mrtrain.engine.metrics import binned_roc_curve, finalize_metrics, has_roc_curve, metric_vector_length
from mrtrain.engine.models import Model, is_sparse
from mrtrain.engine.objective import Objective
from mrtrain.engine.overflow import check_finite
from mrtrain.launcher import JobLauncher, effective_reducers
from mrtrain.mr_jobs.evaluate import MREvaluate
from mrtrain.mr_jobs.kmeans_job import MRKMeans
from mrtrain.mr_jobs.kmeans_predict import MRKMeansPredict
from mrtrain.mr_jobs.predict import MRPredict
from mrtrain.names import class_labels, feature_names
from mrtrain.predictions import check_like_training, predict_task, write_predictions
from mrtrain.storage.dataset import Dataset, refuse_missing
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import absolute
from mrtrain.training.checkpoint_schema import (
    KMEANS_CENTERS,
    KMEANS_SIZES,
    NAIVE_BAYES_PARAMS,
    PASS_RECORDS,
    STANDARDIZATION_ARRAYS,
    checkpoint_coordinates,
    checkpoint_standardization,
    checkpoint_theta,
    latest_training_checkpoint,
    settings_model,
    standardization_arrays,
    validate_checkpoint,
    validate_new_checkpoint,
)

log = logging.getLogger(__name__)

#: The checkpoint schema's names that callers import from here.
__all__ = ["FittedModel", "KMEANS_CENTERS", "KMEANS_SIZES", "NAIVE_BAYES_PARAMS", "PASS_RECORDS",
           "STANDARDIZATION_ARRAYS", "checkpoint_coordinates", "checkpoint_theta",
           "latest_training_checkpoint", "settings_model", "standardization_arrays", "validate_checkpoint",
           "validate_new_checkpoint"]



class FittedModel:
    """A fitted linear model, as produced by :class:`mrtrain.trainer.Trainer` or loaded from
    checkpoints.

    Attributes
    ----------
    model : mrtrain.engine.models.Model
    theta_ : ndarray, shape (p,)
        All parameters, intercept last (per class row for softmax).
    coef_ : ndarray, shape (d,) or (K, d)
        For ``mlp``: a list of the layers' weights, ``(n_{l-1}, n_l)`` each (scikit-learn's ``coefs_``).
    intercept_ : float or ndarray of shape (K,)
        For ``mlp``: a list of the layers' biases, ``(n_l,)`` each (scikit-learn's ``intercepts_``).
    classes_ : list of float or None
    feature_names_ : list of str, length d
        The training dataset's feature names (:func:`mrtrain.names.feature_names`: ``feature j`` where it
        had none).
    class_names_ : list of str or None
        String labels: the name of each class of ``classes_`` (``classes_[k] == k``); None otherwise.
    class_labels_ : list of str or None
        Each class as outputs show it: its name, else its label as ``%g``; None for a model without classes.
    l2 : float
    l1 : float
    standardization : mrtrain.engine.standardization.Standardization or None
        The map to the standardized features the penalties applied to (``settings["standardize"]``).
    n_iter_ : int
        Optimizer iterations.
    n_passes_ : int
        Data passes (MapReduce jobs) used by training.
    objective_ : float
    history_ : list of float
        Objective after each accepted iteration.
    converged_ : bool
    stop_reason_ : str
    settings : dict
        The training settings recorded in the checkpoints.
    cv_results_ : list of dict or None
        A grid run's table of candidates (:mod:`mrtrain.grid_training`): penalties, validation loss
        and metric (mean and standard deviation over the folds), iterations, the selected one.
    cluster_sizes_ : ndarray of shape (k,) or None
        k-means: the rows nearest each centre in the last Lloyd pass (``coef_`` holds the centres, (k, d),
        and ``intercept_`` is None).
    pass_records_ : dict of str to list of float
        The objective, gradient max-norm and seconds of the run's last passes (:data:`PASS_RECORDS`, as
        checkpointed; empty lists for models without an optimizer loop and for older checkpoints).
    """

    def __init__(self, model, theta, *, l2, iterations, passes, history, converged, stop_reason, settings,
                 l1=0.0, standardization=None, cluster_sizes=None, pass_records=None):
        self.model = model
        self.theta_ = np.asarray(theta, dtype=np.float64)
        self.l2 = float(l2)
        self.l1 = float(l1)
        self.standardization = standardization
        self.classes_ = model.classes
        self.n_iter_ = int(iterations)
        self.n_passes_ = int(passes)
        self.history_ = [float(value) for value in history]
        self.objective_ = self.history_[-1] if self.history_ else float("nan")
        self.converged_ = bool(converged)
        self.stop_reason_ = stop_reason
        self.settings = dict(settings)
        self.feature_names_ = feature_names(self.settings, model.n_features)
        self.class_names_ = self.settings.get("class_names")
        self.class_labels_ = class_labels(self.settings, self.classes_)
        self.coef_, self.intercept_ = model.coefficients(self.theta_)
        self.cluster_sizes_ = None if cluster_sizes is None else np.asarray(cluster_sizes, dtype=np.float64)
        self.cv_results_ = None
        self.pass_records_ = {name: [float(v) for v in (pass_records or {}).get(name, ())]
                              for name in PASS_RECORDS}
        self._metric_sums = None

    def keep_metric_sums(self, dataset, vector):
        """Keep the evaluate job's total ``vector`` at this model on ``dataset`` (computed by the training's
        AllReduce job): :meth:`evaluate` of that dataset, unchanged (same URI and checksum), uses it instead
        of running the job."""
        self._metric_sums = (dataset.uri, dataset.checksum, np.asarray(vector, dtype=np.float64))

    @classmethod
    def load(cls, checkpoint_dir):
        """The model in the newest valid checkpoint of ``checkpoint_dir``.

        Raises
        ------
        FileNotFoundError
            If the directory holds no valid checkpoint.
        """
        checkpoint_dir = absolute(checkpoint_dir)
        checkpoint = latest_training_checkpoint(checkpoint_dir)
        if checkpoint is None:
            raise FileNotFoundError(f"{checkpoint_dir}: no valid checkpoint found")
        return cls.from_checkpoint(checkpoint)

    @classmethod
    def from_checkpoint(cls, checkpoint):
        """The model in ``checkpoint``, a checkpoint that passed :func:`validate_checkpoint`."""
        meta = checkpoint.meta
        settings = meta["settings"]
        model = settings_model(settings)
        grid = meta.get("grid")  # a grid run (mrtrain.grid_training): its result member's iterations
        iterations = grid["result"]["iteration"] if isinstance(grid, dict) else meta["iteration"]
        fitted = cls(
            model, checkpoint_theta(checkpoint), l2=settings["l2"], l1=settings.get("l1", 0.0),
            standardization=checkpoint_standardization(checkpoint, model), iterations=iterations,
            passes=meta["passes"], history=meta["history"], converged=meta["converged"],
            stop_reason=meta["stop_reason"], settings=settings,
            cluster_sizes=checkpoint.arrays[KMEANS_SIZES] if model.clusters else None,
            pass_records={name: meta[name] for name in PASS_RECORDS if name in meta},
        )
        fitted.cv_results_ = grid.get("table") if isinstance(grid, dict) else None
        return fitted

    def predict(self, X):
        """Predicted values (linear, poisson) or class labels (logistic, softmax), shape (n,).

        ``X``: array_like (n, d), or a scipy sparse matrix (used as it is, never densified).
        """
        return self.model.predict(_features(X), self.theta_)["prediction"]

    def predict_proba(self, X):
        """Class probabilities, shape (n, K) (K = 2 for logistic, columns in ``classes_`` order).

        Raises
        ------
        ValueError
            For a model without probabilities: one that is no classifier (a regression, k-means), or one
            whose loss has no inverse link, ``linear-svc`` (use :meth:`decision_function`).
        """
        if self.model.classes is None:
            raise ValueError(f"predict_proba needs a classifier; this model is {self.model.kind!r}.")
        if self.model.loss.inverse_link is None:
            raise ValueError(f"Model {self.model.kind!r} gives no probabilities (an SVM's margin is not "
                             "one); use decision_function for its signed margins.")
        out = self.model.predict(_features(X), self.theta_)
        if self.model.loss.is_multiclass:
            return out["probabilities"]
        return np.column_stack([1.0 - out["probability"], out["probability"]])

    def decision_function(self, X):
        """Margins, shape (n,) (positive for ``classes_[1]`` in binary models), or (n, K) per class (for
        naive Bayes the joint log-likelihoods ``log P(c) + log P(x | c)``)."""
        return self.model.decision_function(_features(X), self.theta_)

    def to_dict(self):
        """JSON-able summary with the keys of ``mrtrain train --json`` (``metrics`` added by callers)."""
        return {
            "model": self.model.kind,
            "coefficients": _listed(self.coef_),
            "intercept": _listed(self.intercept_),
            "classes": self.classes_,
            **({} if self.class_names_ is None else {"class_names": self.class_names_}),
            "feature_names": self.feature_names_,
            "iterations": self.n_iter_,
            "passes": self.n_passes_,
            "objective": self.objective_,
            "converged": self.converged_,
            "stop_reason": self.stop_reason_,
            "settings": self.settings,
            **({} if self.cv_results_ is None else {"cross_validation": self.cv_results_}),
            **({} if self.cluster_sizes_ is None else {
                "centers": self.coef_.tolist(), "cluster_sizes": [int(n) for n in self.cluster_sizes_]}),
        }

    def _model_spec(self):
        if isinstance(self.model, Model):
            return self.model.spec()
        return {
            "kind": self.model.kind, "n_features": self.model.n_features, "classes": self.model.classes,
            "fit_intercept": self.model.fit_intercept,
        }

    def _open_matching(self, data):
        dataset = Dataset.open(absolute(data))
        refuse_missing(dataset, self.model.kind)
        if self.model.dense_only and dataset.layout != "dense":
            raise DataError(f"{dataset.uri}: expected a dense dataset for model {self.model.kind!r}, found "
                            f"layout {dataset.layout!r}")
        check_like_training(dataset, self.settings, n_features=self.model.n_features,
                            class_names=self.class_names_, class_labels=self.class_labels_,
                            has_classes=self.model.classes is not None)
        return dataset

    def evaluate(self, data, *, runner="inline", conf_path=None, partition_cache=True, reducers=1,
                 roc_curve=False):
        """Metrics of the model on dataset ``data``, computed by the evaluate MapReduce job (or, for the
        training dataset of a model trained with ``allreduce`` and ``training_metrics``, from the sums its
        AllReduce job computed: :meth:`keep_metric_sums`).

        ``partition_cache`` and ``reducers`` are those of :class:`mrtrain.trainer.Trainer`; with
        ``roc_curve`` the metrics of a binary classifier with probabilities (``logistic``) add
        ``"roc_curve"`` (:func:`mrtrain.engine.metrics.binned_roc_curve`, from the same pass).

        Returns
        -------
        dict
            :func:`mrtrain.engine.metrics.finalize_metrics` plus ``"objective"`` (mean loss + penalty).
        """
        dataset = self._open_matching(data)
        if not dataset.has_label and not self.model.clusters:
            raise DataError(f"{dataset.uri}: field '{dataset.label_name}': expected labels to evaluate on, "
                            "found a dataset ingested without its label column (for predict only)")
        if self.model.clusters:
            return self._evaluate_kmeans(dataset, runner, conf_path, partition_cache, reducers)
        if self._metric_sums is not None and self._metric_sums[:2] == (dataset.uri, dataset.checksum):
            vector = self._metric_sums[2]  # the training's AllReduce job summed it: the same bits
        else:
            reducers = effective_reducers(reducers, metric_vector_length(self.model), "evaluate")
            with JobLauncher(dataset, self._model_spec(), runner=runner, conf_path=conf_path,
                             partition_cache=partition_cache, reducers=reducers) as launcher:
                vector = launcher.sum_vector(MREvaluate, self.theta_[None, :], {})
        metrics = finalize_metrics(self.model, vector)
        if roc_curve and has_roc_curve(self.model):
            metrics["roc_curve"] = binned_roc_curve(self.model, vector)
        if metrics.get("loss") is not None:
            theta = self.theta_ if self.standardization is None else self.standardization.to_standardized(
                self.theta_
            )
            metrics["objective"] = metrics["loss"] + Objective(self.model, self.l2, self.l1).penalty(theta)
        return metrics

    def _evaluate_kmeans(self, dataset, runner, conf_path, partition_cache, reducers):
        """k-means metrics (:func:`mrtrain.engine.kmeans.kmeans_metrics`: ``n``, ``inertia``,
        ``cluster_sizes``, ``cluster_weights``) from one statistics pass at the centres."""
        centers = self.model.centers(self.theta_)
        reducers = effective_reducers(reducers, statistics_length(*centers.shape), "evaluate")
        with JobLauncher(dataset, self._model_spec(), runner=runner, conf_path=conf_path,
                         partition_cache=partition_cache, reducers=reducers) as launcher:
            vector = launcher.sum_vector(MRKMeans, centers, {"pass": "statistics"})
        check_finite(f"{dataset.uri}: the k-means statistics at the model's {len(centers)} centres", vector)
        return kmeans_metrics(ClusterStatistics(vector, *centers.shape))

    def predict_dataset(self, data, output, *, runner="inline", conf_path=None, partition_cache=True):
        """Write predictions for dataset ``data`` to the directory ``output``, by a MapReduce job.

        One Parquet file per input partition (``part-NNNNN.parquet``: ``row`` (the dataset's row index), the
        dataset's kept columns (``ingest --id/--keep``), ``label`` (unless the dataset has none),
        ``prediction`` (class names for string labels) and, for classifiers with probabilities, one
        ``probability_<class>`` column per class (``linear-svc``: ``margin``; k-means: the centre index and
        ``distance``); see :mod:`mrtrain.mr_jobs.predict`) plus ``_predictions.json``. The tasks write into
        a temporary sibling directory that is renamed to ``output`` only when every partition is done, so
        a failed run leaves no partial output.

        Returns
        -------
        dict
            The written ``_predictions.json`` content.
        """
        dataset = self._open_matching(data)
        job, points = (MRPredict, self.theta_[None, :])
        if self.model.clusters:
            job, points = (MRKMeansPredict, self.model.centers(self.theta_))

        def run_job(staging):
            with JobLauncher(dataset, self._model_spec(), runner=runner, conf_path=conf_path,
                             partition_cache=partition_cache) as launcher:
                task = predict_task(dataset, staging, class_labels=self.class_labels_,
                                    class_names=self.class_names_)
                return launcher.run(job, points, task)

        return write_predictions(dataset, output, run_job, model=self.model.kind,
                                 class_labels=self.class_labels_)


def _listed(value):
    """Arrays (or lists of arrays: an MLP's layers) as nested lists for JSON; anything else as it is."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [_listed(item) for item in value]
    return value


def _features(X):
    """``X`` for in-memory prediction: scipy sparse matrices as they are, anything else as float64."""
    return X if is_sparse(X) else np.asarray(X, dtype=np.float64)
