"""The schema of a training checkpoint, in one place: the arrays and meta fields every family writes
(:func:`training_meta`), the checks a reader applies (:func:`validate_checkpoint`), and the one function
that finds the newest valid checkpoint (:func:`latest_training_checkpoint`), used by
:meth:`mrtrain.fitted.FittedModel.load` (``inspect``, ``evaluate``, ``predict``) and by a training's resume
(:meth:`mrtrain.training.run.TrainingRun.resume`) alike. The files themselves:
:mod:`mrtrain.storage.checkpoint`.

A checkpoint's meta holds ``settings`` (the run's settings: ``model``, ``optimizer``, penalties,
``n_features``, ``classes``, the data's checksum, and each family's own), ``iteration``, ``passes``,
``history``, ``rejected``, ``state_scalars``, ``stop_reason``, ``converged``, ``checkpoint_base`` and
``warm_start``, plus a family's own fields (``kmeans``, ``grid``, the :data:`PASS_RECORDS`). Its arrays:
the optimizer state (``state.*``) and :data:`STANDARDIZATION_ARRAYS`, or :data:`NAIVE_BAYES_PARAMS`, or
:data:`KMEANS_CENTERS` and :data:`KMEANS_SIZES` (a grid adds ``grid.*``).
"""

import json
import math

import numpy as np

from mrtrain.engine.models import MODELS
from mrtrain.engine.optimizers import OPTIMIZERS
from mrtrain.engine.optimizers.base import state_to_record
from mrtrain.engine.overflow import RESCALE_ADVICE, OverflowDataError
from mrtrain.engine.registry import make_model
from mrtrain.engine.standardization import CONVENTIONS, Standardization
from mrtrain.storage.checkpoint import latest_checkpoint
from mrtrain.storage.errors import CheckpointError


def training_meta(settings, iteration, passes, history, *, rejected=0, state_scalars=None, verdict=None,
                  base=0, origin=None, **more):
    """The meta of a training checkpoint: the fields every family writes, in their order, then ``more``
    (a family's own). ``verdict``: ``(stop reason, converged)`` once the run stops, else None."""
    return {
        "settings": settings, "iteration": iteration, "passes": passes, "history": list(history),
        "rejected": rejected, "state_scalars": {} if state_scalars is None else state_scalars,
        "stop_reason": verdict[0] if verdict else None, "converged": bool(verdict and verdict[1]),
        "checkpoint_base": base, "warm_start": origin, **more,
    }


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
    model = settings_model(checkpoint.meta["settings"])
    if model.statistics_only:
        return checkpoint.arrays[NAIVE_BAYES_PARAMS]
    if model.clusters:
        return checkpoint.arrays[KMEANS_CENTERS].ravel()
    scaling = checkpoint_coordinates(checkpoint, model)
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
    field(settings, "model", "settings.", kind="str", choices=MODELS)
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
    if model.statistics_only:
        field(settings, "smoothing", "settings.", kind="float", minimum=0)
    optimizer = field(settings, "optimizer", "settings.", kind="str", choices=set(OPTIMIZERS),
                      nullable=model.statistics_only or model.clusters)
    if model.statistics_only:
        _validate_naive_bayes(checkpoint, model.n_params)
        return
    if model.clusters:
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
