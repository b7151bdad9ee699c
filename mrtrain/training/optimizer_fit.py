"""The optimizer loop of the families that minimize an objective (the GLMs, the MLP): one gradient pass
per iteration of :func:`mrtrain.engine.loop.optimize`, a checkpoint after every pass.

:func:`fit_with_optimizer` runs inside a :class:`~mrtrain.training.run.TrainingRun`: it resumes from the
newest valid checkpoint when it was made with the same data and settings (or, with ``warm_start``, starts
from its parameters with a fresh optimizer), and with ``standardize`` (or the preconditioner) runs a feature
statistics pass first and the loop in standardized terms (:mod:`mrtrain.engine.standardization`). A fresh
run starts at the model's initial point (unless ``init="online"``).

Checkpoint files are numbered ``base + iteration``: ``base`` is 0 for a fresh run and one past the source
checkpoint for a warm start, so a warm-started run's checkpoints are always newer than the ones it started
from and a rerun of the same command resumes the warm-started run, not the old one.
"""

import logging
from typing import NamedTuple

import numpy as np

from mrtrain.engine.loop import (
    OVERFLOW_REASON,
    LoopStatus,
    NonFiniteObjectiveError,
    initial_status,
    optimize,
    stop_reason,
)
from mrtrain.engine.memory import check_training_size, optimizer_training_size
from mrtrain.engine.models import PartialSums
from mrtrain.engine.objective import Objective
from mrtrain.engine.optimizers import OPTIMIZERS, check_size, default_optimizer, make_optimizer
from mrtrain.engine.optimizers.base import state_from_record, state_to_record
from mrtrain.engine.overflow import RESCALE_ADVICE
from mrtrain.engine.standardization import Standardization, check_convention
from mrtrain.fitted import FittedModel
from mrtrain.initialization import online_initial_point
from mrtrain.mr_jobs.evaluate import MREvaluate
from mrtrain.mr_jobs.feature_stats import MRFeatureStats
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.names import dataset_names
from mrtrain.storage.errors import DataError
from mrtrain.training.checkpoint_schema import (
    PASS_RECORDS,
    checkpoint_coordinates,
    checkpoint_theta,
    standardization_arrays,
    training_meta,
)
from mrtrain.training.partitions import non_finite_partitions

log = logging.getLogger(__name__)

#: Settings that must match for a checkpoint to be resumed.
RESUME_KEYS = ("model", "optimizer", "l2", "l1", "standardize", "precondition", "fit_intercept", "n_features",
               "classes", "data_checksum", "layers", "activation", "seed")
#: Settings that fix the parameter vector's layout: they must match even for a warm start.
LAYOUT_KEYS = ("model", "fit_intercept", "n_features", "classes", "layers")

#: What to change when the loop stops for a reason other than max_iter.
STOP_ADVICE = {
    "line search found no decrease": (
        "the objective could not be lowered along the search direction: check the scale of the features "
        f"({RESCALE_ADVICE}) or try another optimizer"
    ),
    OVERFLOW_REASON: f"rescale the features and labels ({RESCALE_ADVICE})",
}


class LoopOptions(NamedTuple):
    """What the family tells the optimizer loop about its models.

    Attributes
    ----------
    size_option : (str, object)
        The parameter that sets the training's size when no optimizer's does, for
        :func:`~mrtrain.engine.memory.check_training_size`'s error (``("model", kind)``, the MLP's
        ``("layers", ...)``).
    preconditionable : bool
        Whether the preconditioner may run the optimizer in standardized coordinates.
    single_step : bool
        Whether an optimizer that offers it takes the quasi-Newton step alone after an accepted pass (see
        :func:`optimizer_options`).
    settings : dict
        The family's own settings recorded in the checkpoints (the MLP's ``layers``, ``activation``,
        ``seed``).
    """

    size_option: tuple
    preconditionable: bool = True
    single_step: bool = True
    settings: dict = {}


def fit_with_optimizer(run, config, model, classes, loop):
    """Train ``model`` on ``run.dataset`` (``run`` not yet open) with ``config``'s optimizer, penalties,
    limits and start (see the module docstring); ``classes``: the dataset's classes for a classifier (else
    None), ``loop``: :class:`LoopOptions`.

    Returns
    -------
    FittedModel
    """
    dataset = run.dataset
    optimizer_name = config.optimizer or default_optimizer(float(config.l1))
    check_size(optimizer_name, model.n_params)  # before the lock and any job
    optimizer_class = OPTIMIZERS[optimizer_name]
    check_training_size(optimizer_training_size(
        *size_option(loop, optimizer_name), model.n_params, optimizer_class(), checkpoint=run.saving,
    ))
    # The smallest vector a pass sums: one parameter point, no Hessian.
    reducers = run.reducers(PartialSums.zeros(1, model.n_params, 0).to_vector().size, "gradient")
    precondition = runs_preconditioned(config.precondition, optimizer_name, loop.preconditionable)
    settings = {
        "model": config.model, "optimizer": optimizer_name, "l2": float(config.l2), "l1": float(config.l1),
        "standardize": standardize_setting(config.standardize), "precondition": precondition,
        "init": config.init,
        "fit_intercept": bool(config.fit_intercept), "n_features": dataset.n_features,
        "classes": classes, "data": dataset.uri, "data_checksum": dataset.checksum,
        "encoding": dataset.encoding_digest, **dataset_names(dataset), **loop.settings,
    }
    objective = Objective(model, config.l2, config.l1)
    limits = {"max_iter": config.max_iter, "tol": config.tol, "gtol": config.gtol}
    seed = loop.settings.get("seed", 0)

    with run.open(model.spec(), reducers=reducers), run.allreduce() as session:
        launcher = run.launcher
        checkpoint, resume = run.resume(settings, RESUME_KEYS, warm_start=config.warm_start,
                                        layout_keys=LAYOUT_KEYS, single=True)
        x0 = model.initial_point(seed)
        online = config.init == "online" and checkpoint is None  # a resumed or warm start has its own
        if online:  # its own job, before an AllReduce job (started by the next pass) holds the slots
            x0 = online_initial_point(launcher, model, config.l2)
        if resume:  # the coordinates the checkpointed state is in
            scaling = checkpoint_coordinates(checkpoint, model)
        elif config.standardize or precondition:
            scaling = coordinates(session or launcher, model, dataset, config.standardize, config.l2)
        else:
            scaling = None
        optimizer = make_optimizer(optimizer_name, **optimizer_options(
            optimizer_name, objective, scaling, config.standardize, loop.single_step
        ))
        reported = scaling if config.standardize else None
        start = start_of(optimizer, checkpoint, resume,
                         x0 if scaling is None else scaling.to_standardized(x0), scaling)
        if online:  # its pass counts
            start = start._replace(status=start.status._replace(passes=1))
        passes = session or launcher

        def evaluate(points, hessian):
            originals = points if scaling is None else scaling.to_original(points)
            vector = passes.sum_vector(MRGradient, originals, {"hessian": hessian})
            sums = PartialSums.from_vector(vector, len(points), model.n_params, hessian)
            if scaling is None:
                return objective.evaluations(sums, points)
            if config.standardize:  # the penalties apply to the standardized coefficients
                return objective.evaluations(scaling.sums_to_standardized(sums), points)
            return [scaling.evaluation_to_standardized(evaluation)
                    for evaluation in objective.evaluations(sums, originals)]

        def save(status):
            run.check_held()  # a run whose lease was broken stops before writing
            verdict = stop_reason(status, **limits, optimizer=optimizer)
            save_status(run, status, settings, verdict, start, scaling)

        try:
            status, reason, converged = optimize(
                optimizer, evaluate, start.status, on_iteration=save if run.saving else None,
                callback=run.callback, **limits,
            )
        except NonFiniteObjectiveError as error:
            raise NonFiniteObjectiveError(
                f"{dataset.uri}: {error}{non_finite_partitions(passes, dataset)}"
            ) from None
        theta = status.state.x if scaling is None else scaling.to_original(status.state.x)
        # The metrics pass on the training data, served by the AllReduce job's tasks while they hold the
        # partitions: the evaluate job's vectors, added in partition order as its reducer adds them.
        metric_sums = (session.sum_vector(MREvaluate, theta[None, :], {})
                       if session is not None and run.options.training_metrics else None)
    if not converged:
        log.warning("Training stopped before converging (%s) after %d iterations; %s.", reason,
                    status.iteration, STOP_ADVICE.get(reason, "raise max_iter or loosen tol/gtol"))
    fitted = FittedModel(
        model, theta, l2=config.l2, l1=config.l1, iterations=status.iteration, passes=status.passes,
        history=status.history, converged=converged, stop_reason=reason, settings=settings,
        standardization=reported, pass_records={name: getattr(status, name) for name in PASS_RECORDS},
    )
    if metric_sums is not None:
        fitted.keep_metric_sums(dataset, metric_sums)
    return fitted


def size_option(loop, optimizer_name):
    """``(name, value)`` of the parameter that sets a training's size, for
    :func:`~mrtrain.engine.memory.check_training_size`'s error: an optimizer summing a ``p x p`` Hessian
    (Newton's) names ``optimizer``, else the family's :attr:`LoopOptions.size_option`."""
    if OPTIMIZERS[optimizer_name].hessian_points:
        return "optimizer", optimizer_name
    return loop.size_option


def runs_preconditioned(precondition, optimizer_name, preconditionable=True):
    """Whether ``precondition`` applies: an optimizer whose path depends on the coordinates (not
    affine-invariant, as Newton's is), and a family whose models take it (not the MLP)."""
    return bool(precondition and not OPTIMIZERS[optimizer_name].affine_invariant and preconditionable)


def coordinates(passes, model, dataset, standardize, l2):
    """The :class:`Standardization` the optimizer runs in: ``standardize``'s, else the preconditioner;
    from one :class:`MRFeatureStats` pass (a job, or served by the AllReduce session ``passes``)."""
    vector = feature_statistics(passes, model, dataset, precondition=not standardize)
    if standardize:
        return standardization_from_sums(vector, model, check_convention(standardize))
    return Standardization.preconditioner(vector, model.n_outputs, model.fit_intercept, float(l2))


def save_status(run, status, settings, verdict, start, scaling):
    """Save the loop's ``status`` as checkpoint ``start.base + status.iteration`` of ``run``."""
    arrays, scalars = state_to_record(status.state)
    arrays = {f"state.{k}": v for k, v in arrays.items()}
    if scaling is not None:
        arrays.update(standardization_arrays(scaling))
    meta = training_meta(settings, status.iteration, status.passes, status.history, rejected=status.rejected,
                         state_scalars=scalars, verdict=verdict, base=start.base, origin=start.origin,
                         **{name: list(getattr(status, name)) for name in PASS_RECORDS})
    run.save(start.base + status.iteration, arrays, meta)


class Start(NamedTuple):
    """Where a training loop starts.

    Attributes
    ----------
    status : LoopStatus
    base : int
        Checkpoint file number of iteration 0.
    origin : dict or None
        For a warm-started run: the checkpoint it started from (``checkpoint``, ``iteration``,
        ``settings``).
    """

    status: LoopStatus
    base: int
    origin: dict | None


def start_of(optimizer, checkpoint, resume, x0, scaling):
    """Where the loop starts: fresh at ``x0`` (no checkpoint), resumed from ``checkpoint``'s optimizer
    state (``resume``), or warm-started at its model, expressed in this run's standardized terms when
    ``scaling`` is given."""
    if checkpoint is None:
        return Start(initial_status(optimizer, x0), 0, None)
    meta = checkpoint.meta
    if resume:
        arrays = {
            k.removeprefix("state."): v for k, v in checkpoint.arrays.items() if k.startswith("state.")
        }
        state = state_from_record(optimizer.State, arrays, meta["state_scalars"])
        log.info("resuming from %s (iteration %d)", checkpoint.uri, meta["iteration"])
        status = LoopStatus(
            state, meta["iteration"], meta["passes"], tuple(meta["history"]), meta["rejected"],
            *(tuple(meta.get(name, ())) for name in PASS_RECORDS),
        )
        return Start(status, meta.get("checkpoint_base", 0), meta.get("warm_start"))
    origin = {
        "checkpoint": checkpoint.uri, "iteration": checkpoint.iteration, "settings": meta["settings"]
    }
    theta = checkpoint_theta(checkpoint)
    status = initial_status(optimizer, theta if scaling is None else scaling.to_standardized(theta))
    return Start(status, checkpoint.iteration + 1, origin)


def standardization_from_sums(vector, model, convention):
    """:meth:`Standardization.from_sums` for ``model``, centred when it has an intercept, with the standard
    deviation of ``convention`` (``"spark"`` or ``"glmnet"``), logged."""
    scaling = Standardization.from_sums(vector, model.n_outputs, model.fit_intercept, center=True,
                                        convention=convention)
    log.info("standardization of %d features (%s's standard deviation): %s", scaling.scale.size, convention,
             "centred and scaled" if scaling.shift.any() else "scaled")
    return scaling


def standardize_setting(value):
    """What the settings record of ``standardize=value``: False, or the convention's name."""
    return check_convention(value) or False


def optimizer_options(name, objective, scaling, standardize, single_step):
    """The options of optimizer ``name`` for ``objective`` in the coordinates ``scaling`` (None: the
    model's): an l1 optimizer's strengths in them (:func:`optimizer_l1_weights`); with ``single_step`` (the
    linear models), for an optimizer that offers it (L-BFGS), the quasi-Newton step alone in every pass
    that follows an accepted one.

    A linear model's objective is convex and, in the preconditioner's coordinates, well scaled: the
    full step is accepted in nearly every iteration (the same passes within 7%, one pass on a 14-pass
    problem, on dense and sparse problems), while each extra trial point of a wide model is its whole
    parameter vector shipped to and summed back from every task. The MLP keeps the four step sizes
    per pass: on its non-convex objective the full step is rejected far more often (iris, 20 passes:
    accuracy 0.53 with single steps against 0.95).
    """
    optimizer = OPTIMIZERS[name]
    if optimizer.handles_l1:
        return {"l1": optimizer_l1_weights(objective, scaling, standardize)}
    if optimizer.offers_single_step and single_step:
        return {"single_step": True}
    return {}


def feature_statistics(passes, model, dataset, *, precondition):
    """The :func:`~mrtrain.engine.standardization.feature_sums` total of ``dataset`` from one
    :class:`MRFeatureStats` pass (a job, or served by the AllReduce session ``passes``); a
    :class:`DataError` naming the partitions when float64 overflowed (``precondition``: the message
    names ``--no-precondition``)."""
    vector = passes.sum_vector(MRFeatureStats, np.zeros((1, model.n_params)), {})
    if not np.isfinite(vector).all():
        raise DataError(
            f"{dataset.uri}: the feature statistics are not finite: float64 overflowed summing squared "
            f"features{non_finite_partitions(passes, dataset)}; {RESCALE_ADVICE}"
            + (" (or train with --no-precondition)" if precondition else "")
        )
    return vector


def optimizer_l1_weights(objective, scaling, standardize):
    """An l1 optimizer's per-parameter l1 strengths in the coordinates it runs in.

    In standardized coordinates ``|wⱼ| = |w'ⱼ| / σⱼ``, so an l1 penalty on the stored features'
    coefficients is one of strength ``l1/σⱼ`` on ``w'ⱼ``; with ``standardize`` the penalty is on ``w'``.
    """
    if scaling is None or standardize:
        return objective.l1_weights
    return objective.l1_weights / scaling.parameter_scales()
