"""Training a grid of penalized GLMs in shared passes (:func:`fit_grid`; its loop: :mod:`.grid`).

:meth:`mrtrain.trainer.Trainer.fit` runs this when ``l1`` or ``l2`` is a list, or ``reg_path``, ``cv``
or ``validation_fraction`` is set. Each pass is one grouped gradient job over the row split
(:mod:`mrtrain.mr_jobs.grouped_gradient`; the plain gradient job without a split). After the loop, one grouped
evaluate pass (:mod:`mrtrain.mr_jobs.grouped_evaluate`) scores every scored member's final point on its
held-out rows, which gives the table of validation loss and metric per candidate (mean and population
standard deviation over the folds, as scikit-learn's ``GridSearchCV`` reports them).

Checkpoints: one per pass, numbered by the run's passes. Besides every member's optimizer state
(``grid.<i>.state.*``, and ``grid.<i>.best.state.*`` for the best iterate of a hold-out member) and
``meta["grid"]`` (candidates, members' loop status, the table once made, the result), a checkpoint holds the
current result's state as ``state.*`` and its penalties as ``settings.l1``/``settings.l2``, so
:meth:`mrtrain.fitted.FittedModel.load`, ``evaluate`` and ``predict`` use a grid's checkpoint directory
like any other. A rerun with the same data and settings resumes every member exactly.

Coordinates: with ``standardize`` every member's optimizer runs in the one standardization's coordinates
(the penalty is in them); otherwise, with the preconditioner (gd, L-BFGS, OWL-QN), each member runs in
those of its own candidate's l2 (:func:`member_coordinates`), made from the statistics pass, whose sums the
checkpoints keep (``grid.statistics``): a resume makes the same coordinates from them without a pass, and
:func:`member_parameters` maps the members' points back to the model's parameters.
"""

import logging
import math

import numpy as np

from mrtrain.engine.folds import n_groups
from mrtrain.engine.grid import (
    CV_METRICS,
    MemberRun,
    add_sums,
    grid_members,
    grid_spec,
    judge_again,
    member_count,
    regularization_path,
    run_grid,
    split_of,
)
from mrtrain.engine.loop import LoopStatus, NonFiniteObjectiveError, initial_status, stop_reason
from mrtrain.engine.memory import check_training_size, optimizer_training_size
from mrtrain.engine.metrics import finalize_metrics, metric_vector_length
from mrtrain.engine.models import PartialSums
from mrtrain.engine.objective import Objective
from mrtrain.engine.optimizers import OPTIMIZERS, check_l1, check_size, default_optimizer, make_optimizer
from mrtrain.engine.optimizers.base import state_from_record, state_to_record
from mrtrain.engine.standardization import Standardization, check_convention, feature_sums_length
from mrtrain.fitted import FittedModel
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.mr_jobs.grouped_evaluate import MRGroupedEvaluate
from mrtrain.mr_jobs.grouped_gradient import MRGroupedGradient
from mrtrain.names import dataset_names
from mrtrain.storage.errors import CheckpointError
from mrtrain.training.checkpoint_schema import (
    checkpoint_coordinates,
    settings_model,
    standardization_arrays,
    training_meta,
)
from mrtrain.training.optimizer_fit import (
    RESUME_KEYS,
    feature_statistics,
    optimizer_options,
    runs_preconditioned,
    standardization_from_sums,
    standardize_setting,
)
from mrtrain.training.partitions import non_finite_partitions

log = logging.getLogger(__name__)

#: Checkpoint array of the feature statistics a grid started with (:func:`feature_sums`): a resume makes the
#: members' coordinates from it, and :func:`member_parameters` maps their points back with it.
GRID_STATISTICS = "grid.statistics"
#: Settings of a grid run that must match to resume it (its penalties are in ``grid``).
GRID_RESUME_KEYS = tuple(key for key in RESUME_KEYS if key not in ("l1", "l2")) + ("grid",)
def fit_grid(run, config, model, classes):
    """Train the grid ``config`` asks for on ``run.dataset`` (``run`` not yet open) and return the selected
    model.

    Returns
    -------
    FittedModel
        The result (see :mod:`mrtrain.engine.grid`), with ``cv_results_`` the table of candidates.
    """
    dataset = run.dataset
    spec = grid_spec(config)
    split = split_of(spec)
    if spec["cv"] and spec["cv"] > dataset.n_rows:
        raise ValueError(f"The 'cv' parameter must be at most the dataset's {dataset.n_rows} rows. Got "
                         f"cv={spec['cv']} instead.")
    largest_l1 = spec["elastic_net"] if spec["reg_path"] else max(spec["l1"])
    optimizer_name = config.optimizer or default_optimizer(float(largest_l1))
    check_l1(optimizer_name, float(largest_l1))
    check_size(optimizer_name, model.n_params)
    for name, default in (("warm_start", False), ("init", "zeros")):
        if getattr(config, name) != default:
            raise ValueError(f"The {name!r} parameter does not apply to a grid of models (penalty lists, a "
                             f"path, cv or a validation fraction). Got {name}={getattr(config, name)!r}.")
    groups = n_groups(split)
    check_training_size(optimizer_training_size(
        *grid_size_option(spec), model.n_params, OPTIMIZERS[optimizer_name](),
        models=member_count(spec), groups=groups, checkpoint=run.saving,
    ))
    vector_length = groups * PartialSums.zeros(1, model.n_params, 0).to_vector().size
    reducers = run.reducers(vector_length, "gradient")
    settings = {
        "model": model.kind, "optimizer": optimizer_name, "l2": 0.0, "l1": 0.0,
        "standardize": standardize_setting(config.standardize), "init": "zeros",
        "fit_intercept": bool(model.fit_intercept),
        "precondition": runs_preconditioned(config.precondition, optimizer_name),
        "n_features": dataset.n_features, "classes": classes, "data": dataset.uri,
        "data_checksum": dataset.checksum, "encoding": dataset.encoding_digest, "grid": spec,
        **dataset_names(dataset),
    }
    limits = {"max_iter": config.max_iter, "tol": config.tol, "gtol": config.gtol}
    with run.open(model.spec(), reducers=reducers):
        grid = GridRun(model, spec, split, settings, optimizer_name, run, config)
        # The AllReduce job ends with the training passes, before the scoring pass (another job whose
        # files share the launcher's staging directory) starts.
        with run.allreduce(split):
            try:
                grid.start()
                grid.train(limits)
            except NonFiniteObjectiveError as error:
                where = non_finite_partitions(run.passes, dataset)
                raise NonFiniteObjectiveError(f"{dataset.uri}: {error}{where}") from None
        grid.score()
        grid.save()
    return grid.fitted()


def _precondition_hint(differences):
    """What to add to the error of a grid checkpoint made with another ``precondition``."""
    if any(d.startswith("precondition:") for d in differences):
        return ", or pass --no-precondition to resume a grid made without the preconditioner"
    return ""


def grid_size_option(spec):
    """``(name, value)`` of the parameter that sets a grid's size: ``reg_path``, else the longer penalty
    list (``l2`` on a tie), for :func:`~mrtrain.engine.memory.check_training_size`'s error."""
    if spec["reg_path"]:
        return "reg_path", spec["reg_path"]
    return ("l1", spec["l1"]) if len(set(spec["l1"])) > len(set(spec["l2"])) else ("l2", spec["l2"])


class GridRun:
    """One grid training: its candidates, members and their runs, its passes and checkpoints."""

    def __init__(self, model, spec, split, settings, optimizer_name, run, config):
        self.model, self.spec, self.split, self.settings = model, spec, split, settings
        self.optimizer_name, self.run, self.config = optimizer_name, run, config
        self.scaling = None  # standardize's coordinates, shared by every member (the penalty is in them)
        # With the preconditioner (and no standardize), each member's optimizer runs in the coordinates of
        # its candidate's l2, made from the statistics pass's sums (:meth:`_build`).
        self.preconditioned = settings["precondition"] and not config.standardize
        self.statistics = None
        self.coordinates = None
        self.feature_means = None
        self.candidates = None
        self.lambda_max = None
        self.passes = 0
        self.table = None
        self.selected = None
        self._cached = None

    # --- passes -------------------------------------------------------------------------------------------

    def evaluate_groups(self, points, hessian):
        """Every group's sums at ``points`` (in the optimizer's terms): one pass, or the path's first."""
        key = (points.tobytes(), hessian)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        originals = points if self.scaling is None else self.scaling.to_original(points)
        m, p = points.shape
        if self.split is None:
            vector = self.run.passes.sum_vector(MRGradient, originals, {"hessian": hessian})
            pieces = [vector]
        else:
            vector = self.run.passes.sum_vector(MRGroupedGradient, originals,
                                               {"hessian": hessian, "split": self.split})
            pieces = np.split(vector, n_groups(self.split))
        sums = [PartialSums.from_vector(piece, m, p, hessian) for piece in pieces]
        if self.scaling is not None:
            sums = [self.scaling.sums_to_standardized(s) for s in sums]
        self._cached = (key, sums)
        return sums

    def _statistics(self, checkpoint):
        """The feature statistics, when standardizing, preconditioning or when a path needs the feature
        means: from the checkpoint resumed (``grid.statistics``, the sums the run started with), else one
        statistics pass."""
        needs_means = self.spec["reg_path"] and self.model.fit_intercept
        if not (self.config.standardize or self.preconditioned or needs_means):
            return
        vector = None if checkpoint is None else checkpoint.arrays.get(GRID_STATISTICS)
        if vector is not None:
            expected = feature_sums_length(self.model.n_features)
            if vector.shape != (expected,):
                raise CheckpointError(checkpoint.uri, f"array {GRID_STATISTICS!r}: expected {expected} "
                                                      f"sums, found shape {list(vector.shape)}")
            if not np.isfinite(vector).all() or not vector[0] > 0:
                raise CheckpointError(checkpoint.uri, f"array {GRID_STATISTICS!r}: expected finite sums "
                                                      f"of a positive total weight, found {vector[0]!r} "
                                                      "as the total or non-finite sums")
        else:
            vector = feature_statistics(self.run.passes, self.model, self.run.dataset,
                                        precondition=self.preconditioned)
        self.statistics = vector
        d = self.model.n_features
        means = vector[1:1 + d] / vector[0]
        if self.config.standardize:
            self.scaling = standardization_from_sums(vector, self.model,
                                                     check_convention(self.config.standardize))
            means = (means - self.scaling.shift) / self.scaling.scale
        self.feature_means = means

    # --- set-up and resume --------------------------------------------------------------------------------

    def start(self):
        """Resume from the newest checkpoint, or start fresh (with a path: its first pass makes the
        candidates)."""
        checkpoint, _ = self.run.resume(self.settings, GRID_RESUME_KEYS, hint=_precondition_hint)
        self._statistics(checkpoint)
        if checkpoint is not None:
            self._restore(checkpoint)
            return
        if self.spec["reg_path"]:
            zero = np.zeros((1, self.model.n_params))
            hessian = OPTIMIZERS[self.optimizer_name].hessian_points
            groups = self.evaluate_groups(zero, hessian)
            total = groups[0]
            for more in groups[1:]:
                total = add_sums(total, more)
            self.lambda_max, self.candidates = regularization_path(
                total, self.model, n_values=self.spec["reg_path"], ratio=self.spec["reg_path_ratio"],
                alpha=self.spec["elastic_net"], feature_means=self.feature_means,
            )
            log.info("penalty path: λmax %.6g, %d values down to %.6g", self.lambda_max, len(self.candidates),
                     self.lambda_max * self.spec["reg_path_ratio"])
        else:
            self.candidates = list(zip(self.spec["l1"], self.spec["l2"], strict=True))
        self._build()
        self.runs = [MemberRun(initial_status(opt, np.zeros(self.model.n_params))) for opt in self.optimizers]

    def _build(self):
        self.members = grid_members(len(self.candidates), cv=self.spec["cv"],
                                    holdout=bool(self.spec["validation_fraction"]))
        self.objectives = [Objective(self.model, l2=self.candidates[m.candidate][1],
                                     l1=self.candidates[m.candidate][0]) for m in self.members]
        if self.preconditioned:
            self.coordinates = member_coordinates(self.statistics, self.model, self.candidates, self.members)
        self.optimizers = [
            make_optimizer(self.optimizer_name, **optimizer_options(
                self.optimizer_name, objective, self.member_scaling(i), self.config.standardize,
                True))
            for i, objective in enumerate(self.objectives)
        ]
        log.info("training %d models (%d penalties%s) in shared passes", len(self.members),
                 len(self.candidates), f" x {self.spec['cv']} folds + refits" if self.spec["cv"] else "")

    def member_scaling(self, i):
        """The coordinates member ``i``'s optimizer runs in (None: the model's parameters)."""
        return self.scaling if self.coordinates is None else self.coordinates[i]

    def to_model(self, i, x):
        """Member ``i``'s point ``x`` (its optimizer's coordinates) as the model's parameters."""
        scaling = self.member_scaling(i)
        return x if scaling is None else scaling.to_original(x)

    def _restore(self, checkpoint):
        meta, arrays = checkpoint.meta, checkpoint.arrays
        try:
            grid = meta["grid"]
            self.candidates = [tuple(float(v) for v in pair) for pair in grid["candidates"]]
            self.lambda_max = grid.get("lambda_max")
            self.passes = int(grid["passes"])
            self.table = grid.get("table")
            self._build()
            records = grid["members"]
            if len(records) != len(self.members):
                raise ValueError(f"{len(records)} members recorded, {len(self.members)} expected")
            self.runs = []
            for i, (record, optimizer) in enumerate(zip(records, self.optimizers, strict=True)):
                state = _state(optimizer, arrays, f"grid.{i}.state.", record["state_scalars"])
                best = None
                if record.get("best_state_scalars") is not None:
                    best = _state(optimizer, arrays, f"grid.{i}.best.state.", record["best_state_scalars"])
                self.runs.append(MemberRun(
                    LoopStatus(state, record["iteration"], record["passes"], tuple(record["history"]),
                               record["rejected"]),
                    done=record["done"], reason=record["reason"], converged=record["converged"],
                    valid=record["valid"], valid_history=list(record["valid_history"]),
                    best_valid=record["best_valid"], best_iteration=record["best_iteration"],
                    best_history=record["best_history"], best_state=best,
                    no_improve=record["no_improve"],
                ))
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(checkpoint.uri, f"meta field 'grid' or arrays 'grid.*': {error}") from None
        log.info("resuming %d models from %s (pass %d)", len(self.members), checkpoint.uri, self.passes)

    # --- training -----------------------------------------------------------------------------------------

    def train(self, limits):
        def on_pass():
            self.passes += 1
            self._prune()
            self.save()

        callback = None
        if self.run.callback is not None:
            def callback(progress):
                self.run.callback(progress._replace(model=self.describe(self.result_member())))

        self._train_on(limits)
        self._prune()
        run_grid(self.members, self.runs, self.optimizers, self.objectives, self.evaluate_groups,
                 n_iter_no_change=self.spec["n_iter_no_change"] or 0, on_pass=on_pass,
                 callback=callback, select=self.result_member, coordinates=self.coordinates, **limits)
        unconverged = [i for i, run in enumerate(self.runs)
                       if not run.converged and run.reason != NOT_SELECTED]
        if unconverged:
            reasons = sorted({self.runs[i].reason for i in unconverged})
            log.warning("%d of %d models stopped before converging (%s): models %s; raise max_iter or loosen "
                        "tol/gtol", len(unconverged), len(self.runs), "; ".join(reasons),
                        ", ".join(str(i) for i in unconverged[:20])
                        + (", ..." if len(unconverged) > 20 else ""))

    def describe(self, i):
        """Which model member ``i`` is, for progress lines: ``model 4 of 8 (l1 0, l2 0.01; fold 2 of 3)``."""
        member = self.members[i]
        l1, l2 = self.candidates[member.candidate]
        role = {"fold": f"fold {member.fold + 1} of {self.spec['cv']}" if member.fold is not None else "fold",
                "refit": "refit on all rows" if self.spec["cv"] else "all rows",
                "holdout": "scored on the hold-out part"}[member.role]
        return f"model {i + 1} of {len(self.members)} (l1 {l1:.4g}, l2 {l2:.4g}; {role})"

    def _train_on(self, limits):
        """A resumed grid continues as a single model does: the members stopped by the stopping rule are
        judged again under this run's limits (:func:`judge_again`; a higher ``max_iter`` trains them on).
        If a fold member trains on, the folds choose again, so the refits they had dropped train on too
        (as they would have until the folds were done), and the table is made again once all have stopped.
        Nothing changes for a rerun with the same limits (or a fresh grid)."""
        reopened = judge_again(self.runs, **limits, optimizers=self.optimizers)
        if any(not run.done for run, m in zip(self.runs, self.members, strict=True) if m.role == "fold"):
            for i, run in enumerate(self.runs):
                if run.done and run.reason == NOT_SELECTED:
                    verdict = stop_reason(run.status, **limits, optimizer=self.optimizers[i])
                    if verdict is None:
                        run.done, run.reason, run.converged = False, None, False
                        reopened.append(i)
                    else:
                        run.reason, run.converged = verdict
        if reopened:
            log.info("training %d of %d models on (their stopping rule, with max_iter %d, says go on)",
                     len(reopened), len(self.runs), limits["max_iter"])
            self.table, self.selected = None, None

    def _prune(self):
        """With cv: once every fold member has stopped, stop the refits of the candidates not selected."""
        if not self.spec["cv"] or self.selected is not None:
            return
        if not all(run.done for run, m in zip(self.runs, self.members, strict=True) if m.role == "fold"):
            return
        self.selected = self._best_candidate()
        for run, m in zip(self.runs, self.members, strict=True):
            if m.role == "refit" and m.candidate != self.selected and not run.done:
                run.done, run.converged, run.reason = True, False, NOT_SELECTED

    def _validation_means(self):
        means = []
        for c in range(len(self.candidates)):
            values = [self._valid_of(i) for i, m in enumerate(self.members)
                      if m.candidate == c and m.valid_group is not None]
            means.append(math.inf if any(v is None for v in values) else float(np.mean(values)))
        return means

    def _valid_of(self, i):
        run = self.runs[i]
        return run.best_valid if self.members[i].role == "holdout" else run.valid

    def _best_candidate(self):
        means = self._validation_means()
        return int(np.argmin(means))

    def result_member(self):
        """Index of the member whose model is the run's result (so far)."""
        candidate = self.selected if self.selected is not None else self._best_candidate() \
            if self.split is not None else 0
        role = "holdout" if self.spec["validation_fraction"] else "refit"
        return next(i for i, m in enumerate(self.members) if m.candidate == candidate and m.role == role)

    def _result_state(self, i):
        run = self.runs[i]
        if self.members[i].role == "holdout" and run.best_state is not None:
            return run.best_state
        return run.status.state

    def _result_progress(self, i):
        """``(iteration, history)`` of member ``i``'s result: a hold-out member's best iterate."""
        run = self.runs[i]
        if self.members[i].role == "holdout" and run.best_state is not None:
            return run.best_iteration, run.status.history[:run.best_history]
        return run.status.iteration, run.status.history

    # --- scoring ------------------------------------------------------------------------------------------

    def score(self):
        """One grouped evaluate pass at every scored member's final point; the table of candidates."""
        if self.split is None:
            self.selected = 0
            self.table = [self._row(0, None, None)]
            return
        if self.table is not None:
            self.selected = next(row["candidate"] for row in self.table if row["selected"])
            return
        scored = [i for i, m in enumerate(self.members) if m.valid_group is not None]
        originals = np.stack([self.to_model(i, self._result_state(i).x) for i in scored])
        vector = self.run.launcher.sum_vector(MRGroupedEvaluate, originals, {
            "split": self.split, "point_groups": [self.members[i].valid_group for i in scored]})
        self.passes += 1
        length = metric_vector_length(self.model)
        metrics = {i: finalize_metrics(self.model, vector[j * length:(j + 1) * length])
                   for j, i in enumerate(scored)}
        self.selected = self._best_candidate()
        self.table = [self._row(c, scored, metrics) for c in range(len(self.candidates))]

    def _row(self, c, scored, metrics):
        l1, l2 = self.candidates[c]
        row = {"candidate": c, "l1": l1, "l2": l2, "selected": c == self.selected}
        if self.spec["reg_path"]:
            row["lambda"] = l1 + l2
            row["alpha"] = self.spec["elastic_net"]
        if scored:
            name = CV_METRICS.get(self.model.kind, "loss")
            members = [i for i in scored if self.members[i].candidate == c]
            losses = [self._valid_of(i) for i in members]
            values = [metrics[i].get(name) for i in members]
            row["validation_loss_mean"], row["validation_loss_std"] = _mean_std(losses)
            row["metric"] = name
            row[f"{name}_mean"], row[f"{name}_std"] = _mean_std(values)
            row["iterations"] = [self.runs[i].status.iteration for i in members]
            if self.spec["validation_fraction"]:  # one hold-out score: no spread
                row["best_iteration"] = self.runs[members[0]].best_iteration
                row["validation_loss_std"] = row[f"{name}_std"] = None
        return row

    # --- checkpoints and result ---------------------------------------------------------------------------

    def save(self):
        """Write the checkpoint of the current pass (every member, the current result as ``state.*``)."""
        if not self.run.saving:
            return
        result = self.result_member()
        arrays, records = {}, []
        for i, run in enumerate(self.runs):
            state_arrays, scalars = state_to_record(run.status.state)
            arrays.update({f"grid.{i}.state.{k}": v for k, v in state_arrays.items()})
            best_scalars = None
            if run.best_state is not None and self.members[i].role == "holdout":
                best_arrays, best_scalars = state_to_record(run.best_state)
                arrays.update({f"grid.{i}.best.state.{k}": v for k, v in best_arrays.items()})
            status = run.status
            records.append({
                "iteration": status.iteration, "passes": status.passes, "history": list(status.history),
                "rejected": status.rejected, "state_scalars": scalars, "done": run.done, "reason": run.reason,
                "converged": run.converged, "valid": run.valid, "valid_history": list(run.valid_history),
                "best_valid": run.best_valid, "best_iteration": run.best_iteration,
                "best_history": run.best_history,
                "best_state_scalars": best_scalars, "no_improve": run.no_improve,
            })
        state_arrays, scalars = state_to_record(self._result_state(result))
        arrays.update({f"state.{k}": v for k, v in state_arrays.items()})
        if self.scaling is not None or self.coordinates is not None:  # what state.x is in
            arrays.update(standardization_arrays(self.scaling or self.coordinates[result]))
        if self.statistics is not None:
            arrays[GRID_STATISTICS] = self.statistics
        run = self.runs[result]
        iteration, history = self._result_progress(result)
        l1, l2 = self.candidates[self.members[result].candidate]
        meta = training_meta(
            {**self.settings, "l1": l1, "l2": l2}, self.passes, self.passes, history,
            rejected=run.status.rejected, state_scalars=scalars,
            verdict=(run.reason, run.converged) if run.done else None,
            grid={
                "candidates": [list(pair) for pair in self.candidates], "lambda_max": self.lambda_max,
                "passes": self.passes, "members": records, "table": self.table,
                "result": {"member": result, "iteration": iteration},
            },
        )
        self.run.save(self.passes, arrays, meta)

    def fitted(self):
        result = self.result_member()
        run = self.runs[result]
        l1, l2 = self.candidates[self.members[result].candidate]
        theta = self.to_model(result, self._result_state(result).x)
        iteration, history = self._result_progress(result)
        fitted = FittedModel(
            self.model, theta, l2=l2, l1=l1, iterations=iteration, passes=self.passes, history=history,
            converged=run.converged, stop_reason=run.reason,
            settings={**self.settings, "l1": l1, "l2": l2}, standardization=self.scaling,
        )
        fitted.cv_results_ = self.table
        return fitted


def member_coordinates(statistics, model, candidates, members):
    """The coordinates each member's optimizer runs in with the preconditioner: its candidate's
    :meth:`Standardization.preconditioner` (the scale depends on the candidate's l2), one object per
    candidate shared by its members."""
    by_candidate = [
        Standardization.preconditioner(statistics, model.n_outputs, model.fit_intercept, float(l2))
        for _, l2 in candidates
    ]
    return [by_candidate[m.candidate] for m in members]


def member_parameters(checkpoint):
    """Every member's parameters for the features as stored, in member order, from a grid's checkpoint
    (its ``grid.<i>.state.x`` are in the coordinates each member's optimizer ran in)."""
    settings, grid = checkpoint.meta["settings"], checkpoint.meta["grid"]
    model = settings_model(settings)
    xs = [checkpoint.arrays[f"grid.{i}.state.x"] for i in range(len(grid["members"]))]
    if settings.get("standardize"):
        scaling = checkpoint_coordinates(checkpoint, model)
        return [scaling.to_original(x) for x in xs]
    if not settings.get("precondition"):
        return xs
    spec = settings["grid"]
    candidates = [tuple(pair) for pair in grid["candidates"]]
    members = grid_members(len(candidates), cv=spec["cv"], holdout=bool(spec["validation_fraction"]))
    coordinates = member_coordinates(checkpoint.arrays[GRID_STATISTICS], model, candidates, members)
    return [scaling.to_original(x) for scaling, x in zip(coordinates, xs, strict=True)]


#: Stop reason of a refit whose candidate cross-validation did not select.
NOT_SELECTED = "not selected by cross-validation"


def _state(optimizer, arrays, prefix, scalars):
    fields = {name.removeprefix(prefix): value for name, value in arrays.items() if name.startswith(prefix)}
    return state_from_record(optimizer.State, fields, scalars)


def _mean_std(values):
    if not values or any(v is None for v in values):
        return None, None
    return float(np.mean(values)), float(np.std(values))
