"""A trained model: coefficients, in-memory prediction, and MapReduce evaluate / predict over datasets.

Also the schema of a training checkpoint (:func:`validate_checkpoint`) and the one function that finds the
newest valid one (:func:`latest_training_checkpoint`), used by :meth:`FittedModel.load` (``inspect``,
``evaluate``, ``predict``) and by the trainer's resume alike.
"""

import json
import logging
import math

import numpy as np

from mrtrain.engine.kmeans import KMEANS, ClusterStatistics, kmeans_metrics, statistics_length
from mrtrain.engine.metrics import binned_roc_curve, finalize_metrics, has_roc_curve, metric_vector_length
from mrtrain.engine.models import MODELS, NAIVE_BAYES_MODELS, Model, is_sparse, make_model
from mrtrain.engine.objective import Objective
from mrtrain.engine.optimizers import OPTIMIZERS
from mrtrain.engine.optimizers.base import state_to_record
from mrtrain.engine.overflow import RESCALE_ADVICE, OverflowDataError, check_finite
from mrtrain.engine.standardization import CONVENTIONS, Standardization
from mrtrain.launcher import JobLauncher, effective_reducers, task_uri
from mrtrain.mr_jobs.evaluate import MREvaluate
from mrtrain.mr_jobs.kmeans_job import MRKMeans
from mrtrain.mr_jobs.kmeans_predict import MRKMeansPredict
from mrtrain.mr_jobs.predict import MRPredict
from mrtrain.names import class_labels, feature_names
from mrtrain.storage.checkpoint import latest_checkpoint
from mrtrain.storage.dataset import Dataset, refuse_missing
from mrtrain.storage.encoding import encoding_difference
from mrtrain.storage.errors import CheckpointError, DataError
from mrtrain.storage.filesystem import absolute, get_filesystem, join, temp_sibling

log = logging.getLogger(__name__)

#: Name of the small manifest written next to prediction partitions.
PREDICTIONS_MANIFEST = "_predictions.json"


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
            cluster_sizes=checkpoint.arrays[KMEANS_SIZES] if model.kind == KMEANS else None,
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
        if dataset.n_features != self.model.n_features:
            raise DataError(
                f"{dataset.uri}: expected {self.model.n_features} features (as in training), "
                f"found {dataset.n_features}"
            )
        difference = self._encoding_difference(dataset)
        if difference is not None:
            raise DataError(f"{dataset.uri}: expected the categorical encoding of the training data "
                            f"(ingest it with --like TRAINING_DATASET): {difference}")
        if dataset.has_label and self.class_names_ != dataset.class_names and self.model.classes is not None:
            raise DataError(f"{dataset.uri}: field '{dataset.label_name}': expected the classes of the "
                            f"training data {self.class_labels_} (ingest it with --like TRAINING_DATASET), "
                            f"found {dataset.class_names or dataset.classes}")
        return dataset

    def _encoding_difference(self, dataset):
        """The difference between ``dataset``'s encoding and the training data's, or None.

        The training dataset (``settings["data"]``, if it is still there with the recorded checksum) names
        the difference; else the encoding digest the trainer recorded (``settings["encoding"]``), if any.
        """
        training = None
        try:
            training = Dataset.open(self.settings["data"])
        except (KeyError, OSError, DataError):
            pass
        if training is not None and training.checksum == self.settings.get("data_checksum"):
            return encoding_difference(training.encoding, dataset.encoding)
        if "encoding" in self.settings and self.settings["encoding"] != dataset.encoding_digest:
            return f"encoding digest: expected {self.settings['encoding']}, found {dataset.encoding_digest}"
        return None

    def evaluate(self, data, *, runner="inline", conf_path=None, partition_cache=True, reducers=1,
                 roc_curve=False):
        """Metrics of the model on dataset ``data``, computed by the evaluate MapReduce job.

        ``partition_cache`` and ``reducers`` are those of :class:`mrtrain.trainer.Trainer`; with
        ``roc_curve`` the metrics of a binary classifier with probabilities (``logistic``) add
        ``"roc_curve"`` (:func:`mrtrain.engine.metrics.binned_roc_curve`, from the same pass).

        Returns
        -------
        dict
            :func:`mrtrain.engine.metrics.finalize_metrics` plus ``"objective"`` (mean loss + penalty).
        """
        dataset = self._open_matching(data)
        if not dataset.has_label and self.model.kind != KMEANS:
            raise DataError(f"{dataset.uri}: field '{dataset.label_name}': expected labels to evaluate on, "
                            "found a dataset ingested without its label column (for predict only)")
        if self.model.kind == KMEANS:
            return self._evaluate_kmeans(dataset, runner, conf_path, partition_cache, reducers)
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

    def _predict_task(self, dataset):
        """What the predict tasks need beyond the model: row offsets, class names, the kept columns' files."""
        offsets = np.concatenate([[0], np.cumsum([part.rows for part in dataset.partitions])[:-1]])
        task = {"row_offsets": [int(v) for v in offsets], "class_labels": self.class_labels_,
                "class_names": self.class_names_, "has_label": dataset.has_label}
        if dataset.kept_columns:
            files = [dataset.kept_file(part.index) for part in dataset.partitions]
            task.update(kept_columns=dataset.kept_columns,
                        kept=[{**entry, "uri": task_uri(entry["uri"])} for entry in files])
        return task

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
        output = absolute(output)
        fs = get_filesystem(output)
        if fs.exists(output):
            raise FileExistsError(f"{output}: output already exists; choose a new path")
        staging = temp_sibling(output)
        fs.makedirs(staging)
        try:
            with JobLauncher(dataset, self._model_spec(), runner=runner, conf_path=conf_path,
                             partition_cache=partition_cache) as launcher:
                job, points = (MRPredict, self.theta_[None, :])
                if self.model.kind == KMEANS:
                    job, points = (MRKMeansPredict, self.model.centers(self.theta_))
                task = {"output": task_uri(staging), **self._predict_task(dataset)}
                records = launcher.run(job, points, task)
            rows = dict(records)
            expected = [part.index for part in dataset.partitions]
            if sorted(rows) != expected:
                raise RuntimeError(f"Predictions written for partitions {sorted(rows)}; expected {expected}.")
            manifest = {
                "format": "mrtrain-predictions", "version": 1, "source": dataset.uri,
                "source_checksum": dataset.checksum, "model": self.model.kind,
                "partitions": [
                    {"file": f"part-{index:05d}.parquet", "rows": rows[index]} for index in expected
                ],
                "n_rows": sum(rows.values()),
                **({} if self.class_labels_ is None else {"classes": self.class_labels_}),
            }
            fs.write_bytes(join(staging, PREDICTIONS_MANIFEST), json.dumps(manifest, indent=1).encode())
            fs.rename(staging, output)
        except BaseException:
            fs.delete(staging, recursive=True)
            raise
        log.info("wrote predictions for %d rows to %s", manifest["n_rows"], output)
        return manifest


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


def settings_model(settings):
    """The (untrained) model a checkpoint's settings describe."""
    return make_model(settings["model"], settings["n_features"], classes=settings["classes"],
                      fit_intercept=settings["fit_intercept"], layers=settings.get("layers"),
                      activation=settings.get("activation"))


#: Optional per-pass records of a training checkpoint's meta (:class:`mrtrain.engine.loop.LoopStatus`):
#: the objective, gradient max-norm and seconds of each of the run's last passes.
PASS_RECORDS = ("pass_objectives", "pass_grad_norms", "pass_seconds")
#: Checkpoint array of a naive Bayes model: its parameter vector (:mod:`mrtrain.engine.naive_bayes`).
NAIVE_BAYES_PARAMS = "naive_bayes.params"
#: Checkpoint arrays of k-means (:mod:`mrtrain.kmeans_training`): the centres (k, d) and the rows
#: nearest each centre in the last Lloyd pass (k,).
KMEANS_CENTERS, KMEANS_SIZES = "kmeans.centers", "kmeans.sizes"

#: Checkpoint arrays of a standardized run: the feature shift and scale and the constant features (0/1).
STANDARDIZATION_ARRAYS = ("standardization.shift", "standardization.scale", "standardization.constant")


def standardization_arrays(scaling):
    """The checkpoint arrays (:data:`STANDARDIZATION_ARRAYS`) that record ``scaling``."""
    values = (scaling.shift, scaling.scale, scaling.constant.astype(np.float64))
    return dict(zip(STANDARDIZATION_ARRAYS, values, strict=True))


def runs_in_standardized_coordinates(settings):
    """True if a run's optimizer state (``state.x``) is in standardized coordinates: ``standardize`` or
    ``precondition`` (both recorded in the checkpoint's :data:`STANDARDIZATION_ARRAYS`)."""
    return bool(settings.get("standardize", False) or settings.get("precondition", False))


def checkpoint_standardization(checkpoint, model):
    """The :class:`Standardization` whose penalty a checkpoint's run used (``standardize``), or None."""
    if not checkpoint.meta["settings"].get("standardize", False):
        return None
    return checkpoint_coordinates(checkpoint, model)


def checkpoint_coordinates(checkpoint, model):
    """The map from a checkpoint's optimizer coordinates to the stored features' parameters, or None when
    they are the same (:func:`runs_in_standardized_coordinates`)."""
    if not runs_in_standardized_coordinates(checkpoint.meta["settings"]):
        return None
    shift, scale, constant = (checkpoint.arrays[name] for name in STANDARDIZATION_ARRAYS)
    return Standardization(shift, scale, model.n_outputs, model.fit_intercept, constant != 0)


def checkpoint_theta(checkpoint):
    """The parameters of a checkpoint's model for the features as stored (``state.x`` mapped back from
    standardized terms when the run standardized)."""
    if checkpoint.meta["settings"]["model"] in NAIVE_BAYES_MODELS:
        return checkpoint.arrays[NAIVE_BAYES_PARAMS]
    if checkpoint.meta["settings"]["model"] == KMEANS:
        return checkpoint.arrays[KMEANS_CENTERS].ravel()
    scaling = checkpoint_coordinates(checkpoint, settings_model(checkpoint.meta["settings"]))
    x = checkpoint.arrays["state.x"]
    return x if scaling is None else scaling.to_original(x)


def latest_training_checkpoint(checkpoint_dir):
    """The newest checkpoint of ``checkpoint_dir`` that passes :func:`validate_checkpoint`, or None.

    Invalid newer checkpoints are skipped with one warning each
    (:func:`mrtrain.storage.checkpoint.latest_checkpoint`).
    """
    return latest_checkpoint(checkpoint_dir, validate=validate_checkpoint)


def validate_new_checkpoint(checkpoint):
    """:func:`validate_checkpoint` for a checkpoint about to be written: the ``validate`` every training
    passes to its checkpoint writes, so that nothing is written that a reader would skip.

    Raises
    ------
    OverflowDataError
        For a value that is not finite (float64 overflowed in the run's sums), naming the file and field.
    mrtrain.storage.errors.CheckpointError
        For anything else :func:`validate_checkpoint` refuses.
    """
    try:
        validate_checkpoint(checkpoint)
    except CheckpointError as exc:
        if "finite" not in exc.reason:
            raise
        raise OverflowDataError(f"{checkpoint.uri}: not written: {exc.reason}: float64 overflowed; "
                                f"{RESCALE_ADVICE}") from None


def _expect(uri, where, value, kind, *, minimum=None, choices=None, nullable=False):
    """Return ``value`` if it is a ``kind`` ("int", "float", "bool", "str", "list", "dict") in range."""
    if value is None and nullable:
        return value
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool)
        and math.isfinite(value),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "list": isinstance(value, list),
        "dict": isinstance(value, dict),
    }[kind]
    ok = ok and (minimum is None or value >= minimum) and (choices is None or value in choices)
    if not ok:
        allowed = {"float": "a finite number", "int": "an int", "bool": "true or false", "str": "a string",
                   "list": "a list", "dict": "an object"}[kind]
        allowed += "" if minimum is None else f" >= {minimum}"
        allowed += "" if choices is None else f" in {sorted(choices)}"
        allowed += " or null" if nullable else ""
        found = "no value" if value is _MISSING else f"{json.dumps(value)[:80]}"
        raise CheckpointError(uri, f"meta field {where!r}: expected {allowed}, found {found}")
    return value


_MISSING = object()


def validate_checkpoint(checkpoint):
    """Check that ``checkpoint`` is a training checkpoint written by :class:`mrtrain.trainer.Trainer`.

    Every meta field the trainer and :meth:`FittedModel.load` read is checked for its type and range
    (finite floats), the file number is ``checkpoint_base + iteration``, and the ``state.*`` arrays are
    the optimizer state's fields with the shapes the model's parameter count gives, all finite except a
    field that starts as NaN (an objective value not evaluated yet).

    Raises
    ------
    mrtrain.storage.errors.CheckpointError
        Naming the file, the field, what was expected and what was found.
    """
    uri, meta = checkpoint.uri, checkpoint.meta

    def field(mapping, key, prefix="", **expected):
        return _expect(uri, prefix + key, mapping.get(key, _MISSING), **expected)

    settings = field(meta, "settings", kind="dict")
    kind = field(settings, "model", "settings.", kind="str", choices=MODELS)
    naive_bayes = kind in NAIVE_BAYES_MODELS
    if naive_bayes:
        field(settings, "smoothing", "settings.", kind="float", minimum=0)
    optimizer = field(settings, "optimizer", "settings.", kind="str", choices=set(OPTIMIZERS),
                      nullable=naive_bayes or kind == KMEANS)
    field(settings, "l2", "settings.", kind="float", minimum=0)
    if "l1" in settings:  # written since l1 penalties exist
        field(settings, "l1", "settings.", kind="float", minimum=0)
    if "precondition" in settings:
        field(settings, "precondition", "settings.", kind="bool")
    if "standardize" in settings and not isinstance(settings["standardize"], bool):
        # the convention's name since standardize has two; a bool before (True was glmnet's)
        field(settings, "standardize", "settings.", kind="str", choices=set(CONVENTIONS))
    field(settings, "fit_intercept", "settings.", kind="bool")
    field(settings, "n_features", "settings.", kind="int", minimum=1)
    classes = field(settings, "classes", "settings.", kind="list", nullable=True)
    for i, label in enumerate(classes or []):
        _expect(uri, f"settings.classes[{i}]", label, kind="float")
    for key in ("feature_names", "class_names"):  # written since names are recorded
        for i, name in enumerate((field(settings, key, "settings.", kind="list", nullable=True)
                                  if key in settings else None) or []):
            _expect(uri, f"settings.{key}[{i}]", name, kind="str")
    field(settings, "data", "settings.", kind="str")
    field(settings, "data_checksum", "settings.", kind="str")
    if "encoding" in settings:  # written since categorical encodings exist
        field(settings, "encoding", "settings.", kind="str", nullable=True)
    iteration = field(meta, "iteration", kind="int", minimum=0)
    field(meta, "passes", kind="int", minimum=0)
    for i, value in enumerate(field(meta, "history", kind="list")):
        _expect(uri, f"history[{i}]", value, kind="float")
    _validate_pass_records(uri, meta)
    field(meta, "rejected", kind="int", minimum=0)
    field(meta, "stop_reason", kind="str", nullable=True)
    field(meta, "converged", kind="bool")
    base = _expect(uri, "checkpoint_base", meta.get("checkpoint_base", 0), kind="int", minimum=0)
    origin = _expect(uri, "warm_start", meta.get("warm_start"), kind="dict", nullable=True)
    if origin is not None:
        field(origin, "checkpoint", "warm_start.", kind="str")
        field(origin, "iteration", "warm_start.", kind="int", minimum=0)
        field(origin, "settings", "warm_start.", kind="dict")
    grid = _expect(uri, "grid", meta.get("grid"), kind="dict", nullable=True)
    if grid is not None:  # a grid run's checkpoint (mrtrain.grid_training)
        result = _expect(uri, "grid.result", grid.get("result", _MISSING), kind="dict")
        field(result, "iteration", "grid.result.", kind="int", minimum=0)
        field(grid, "members", "grid.", kind="list")
        field(grid, "candidates", "grid.", kind="list")
        field(grid, "table", "grid.", kind="list", nullable=True)
    if base + iteration != checkpoint.iteration:
        raise CheckpointError(uri, f"meta fields 'checkpoint_base' + 'iteration': expected "
                                   f"{checkpoint.iteration} (the checkpoint's iteration), found "
                                   f"{base} + {iteration}")
    try:
        model = make_model(settings["model"], settings["n_features"], classes=classes,
                           fit_intercept=settings["fit_intercept"], layers=settings.get("layers"),
                           activation=settings.get("activation"))
    except ValueError as exc:
        raise CheckpointError(uri, f"meta field 'settings' does not describe a model: {exc}") from None
    if naive_bayes:
        _validate_naive_bayes(checkpoint, model.n_params)
        return
    if kind == KMEANS:
        _validate_kmeans(checkpoint, model.n_features)
        return
    _validate_state(checkpoint, OPTIMIZERS[optimizer](), model.n_params)
    if runs_in_standardized_coordinates(settings):
        _validate_standardization(checkpoint, model)


def _validate_pass_records(uri, meta):
    """Check the optional per-pass records (:data:`PASS_RECORDS`): equally long lists of finite numbers
    (gradient norms and seconds >= 0), no more than the passes made."""
    lengths = set()
    for name in PASS_RECORDS:
        if name not in meta:  # written since the records exist
            continue
        values = _expect(uri, name, meta[name], kind="list")
        for i, value in enumerate(values):
            _expect(uri, f"{name}[{i}]", value, kind="float",
                    minimum=None if name == "pass_objectives" else 0)
        lengths.add(len(values))
    if len(lengths) > 1 or max(lengths, default=0) > meta["passes"]:
        found = {name: len(meta[name]) for name in PASS_RECORDS if name in meta}
        raise CheckpointError(uri, f"meta fields {list(found)}: expected lists of one length, at most "
                                   f"'passes' ({meta['passes']}), found lengths {found}")


def _validate_naive_bayes(checkpoint, n_params):
    """Check the :data:`NAIVE_BAYES_PARAMS` array of a naive Bayes model's checkpoint."""
    value = checkpoint.arrays.get(NAIVE_BAYES_PARAMS)
    if value is None or value.shape != (n_params,) or not np.isfinite(value).all():
        found = "no such array" if value is None else f"shape {value.shape}" if value.shape != (n_params,) \
            else "non-finite values"
        raise CheckpointError(checkpoint.uri, f"array {NAIVE_BAYES_PARAMS!r}: expected {n_params} finite "
                                              f"parameters, found {found}")


def _validate_kmeans(checkpoint, d):
    """Check the settings, ``meta["kmeans"]`` and arrays of a k-means checkpoint."""
    uri, meta = checkpoint.uri, checkpoint.meta
    settings = meta["settings"]
    k = _expect(uri, "settings.k", settings.get("k", _MISSING), kind="int", minimum=1)
    _expect(uri, "settings.seed", settings.get("seed", _MISSING), kind="int", minimum=0)
    _expect(uri, "settings.init_centers", settings.get("init_centers", _MISSING), kind="str")
    _expect(uri, "settings.init_steps", settings.get("init_steps", _MISSING), kind="int", minimum=1)
    state = _expect(uri, "kmeans", meta.get("kmeans", _MISSING), kind="dict")
    for name in ("shift", "threshold"):
        _expect(uri, f"kmeans.{name}", state.get(name, _MISSING), kind="float", minimum=0,
                nullable=meta["iteration"] == 0)
    for name, shape in ((KMEANS_CENTERS, (k, d)), (KMEANS_SIZES, (k,))):
        value = checkpoint.arrays.get(name)
        if value is None or value.shape != shape or not np.isfinite(value).all():
            found = "no such array" if value is None else f"shape {value.shape}" if value.shape != shape \
                else "non-finite values"
            raise CheckpointError(uri, f"array {name!r}: expected shape {shape} of finite values, found "
                                       f"{found}")


def _validate_standardization(checkpoint, model):
    """Check the :data:`STANDARDIZATION_ARRAYS` of a standardized run's checkpoint."""
    uri, d = checkpoint.uri, model.n_features
    for name in STANDARDIZATION_ARRAYS:
        value = checkpoint.arrays.get(name)
        if value is None or value.shape != (d,):
            found = "no such array" if value is None else f"shape {value.shape}"
            raise CheckpointError(uri, f"array {name!r}: expected shape ({d},) for a standardized run, "
                                       f"found {found}")
    try:
        checkpoint_coordinates(checkpoint, model)
    except ValueError as exc:
        raise CheckpointError(uri, f"standardization arrays: {exc}") from None


def _validate_state(checkpoint, optimizer, n_params):
    """Check the ``state.*`` arrays and ``state_scalars`` against ``optimizer``'s initial state."""
    uri = checkpoint.uri
    template_arrays, template_scalars = state_to_record(optimizer.init(np.zeros(n_params)))
    scalars = _expect(uri, "state_scalars", checkpoint.meta.get("state_scalars", _MISSING), kind="dict")
    if sorted(scalars) != sorted(template_scalars):
        raise CheckpointError(uri, f"meta field 'state_scalars': expected the keys "
                                   f"{sorted(template_scalars)}, found {sorted(scalars)[:20]}")
    for name, value in scalars.items():
        _expect(uri, f"state_scalars.{name}", value, kind="int", minimum=0)
    arrays = {name.removeprefix("state."): value for name, value in checkpoint.arrays.items()
              if name.startswith("state.")}
    if sorted(arrays) != sorted(template_arrays):
        raise CheckpointError(uri, f"arrays: expected {sorted('state.' + n for n in template_arrays)}, "
                                   f"found {sorted('state.' + n for n in arrays)[:20]}")
    by_shape = {}
    for name, template in template_arrays.items():
        value = arrays[name]
        # A dimension that is 0 in the initial state grows (L-BFGS's history rows); all others are fixed.
        fits = value.ndim == template.ndim and all(
            expected in (0, found) for expected, found in zip(template.shape, value.shape, strict=True)
        )
        if not fits:
            expected = tuple("k" if n == 0 else n for n in template.shape)
            raise CheckpointError(uri, f"array 'state.{name}': expected shape {expected} for "
                                       f"{n_params} parameters, found {value.shape}")
        first = by_shape.setdefault(template.shape, (name, value.shape))
        if first[1] != value.shape:
            raise CheckpointError(uri, f"array 'state.{name}': expected the shape of 'state.{first[0]}' "
                                       f"{first[1]}, found {value.shape}")
        may_be_nan = template.ndim == 0 and np.isnan(template)
        bad = np.flatnonzero(~(np.isfinite(value) | (may_be_nan & np.isnan(value))))
        if bad.size:
            raise CheckpointError(uri, f"array 'state.{name}': expected finite values, found "
                                       f"{value.reshape(-1)[bad[0]]} at flat index {bad[0]}")
