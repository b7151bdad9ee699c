"""Many models in the passes of one: penalty lists and paths, k-fold cross-validation, early stopping.

A data pass reads every partition anyway, so one map task can compute the sums of many models at once. A
*grid* is a set of **candidates** (penalty pairs ``(l1, l2)``) and, for each, one or more **members**: a
model trained on some groups of rows of a row split (:mod:`mrtrain.engine.folds`) and scored on another.

- ``cv = K``: for every candidate, K fold members (trained on the rows outside fold f, scored on fold f) and
  one refit member trained on all rows. When every fold member has stopped, the candidate with the least
  mean validation loss is selected; refits of the other candidates stop there ("not selected"), and the
  selected candidate's refit is the run's result.
- ``validation_fraction = F``: one member per candidate, trained on the rows outside a hold-out part of
  about ``F`` of the rows and scored on it. A member stops early when its validation loss has not improved
  (by more than ``tol`` relative) for ``n_iter_no_change`` iterations; its result is its iterate with the
  least validation loss, and the run's result is the candidate whose best validation loss is least.

Every pass (:func:`run_grid`), the trial points of every member that has not stopped go to one grouped
gradient job (:mod:`mrtrain.mr_jobs.grouped_gradient`), which returns each group's sums at each point; a
member's objective is the sum over the groups it trains on (added in group order, so bitwise the same on
every runner) and its validation loss the mean loss over its held-out group at the point its optimizer
accepted. Identical points of several members (the shared starting point) are evaluated once. Each member's
loop is :func:`mrtrain.engine.loop.optimize`'s, step for step: the same stopping rule, the same rejected-
pass and overflow handling.

With ``reg_path = N`` the candidates come from the first pass, glmnet's way: ``λmax`` is the smallest
penalty at which every coefficient stays 0 (the largest gradient entry of the mean loss at zero
coefficients and the intercept-only optimum, divided by ``max(α, 1e-3)``), then ``N`` values log-spaced
from ``λmax`` down to ``λmax · reg_path_ratio``; each gives ``l1 = αλ``, ``l2 = (1 - α)λ`` (``α`` the
``elastic_net`` mix, Spark's ``elasticNetParam``).
"""

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mrtrain.engine.folds import check_split
from mrtrain.engine.loop import (
    OVERFLOW_REASON,
    STOPPING_RULE_REASONS,
    LoopStatus,
    Progress,
    finish_pass,
    pass_plan,
    stop_reason,
)
from mrtrain.engine.models import PartialSums
from mrtrain.engine.objective import Objective
from mrtrain.engine.optimizers.protocol import Optimizer
from mrtrain.engine.params import check_int, check_number
from mrtrain.engine.standardization import Standardization

log = logging.getLogger(__name__)

#: Validation metric reported beside the validation loss, per model kind.
CV_METRICS = {"linear": "rmse", "poisson": "mean_deviance", "logistic": "accuracy", "softmax": "accuracy",
              "linear-svc": "accuracy"}
#: Smallest elastic-net mix used to scale ``λmax`` (glmnet's floor for ridge paths).
MIN_PATH_ALPHA = 1e-3


#: Default ``reg_path_ratio`` (glmnet's ``lambda.min.ratio`` when there are more rows than features).
DEFAULT_PATH_RATIO = 1e-4
#: Default elastic-net mix of a penalty path: the lasso, as glmnet.
DEFAULT_PATH_ALPHA = 1.0


def penalty_list(name, value):
    """``value`` (a number or a sequence of them) as a list of floats >= 0, naming ``name`` if invalid."""
    values = list(value) if isinstance(value, list | tuple | np.ndarray) else [value]
    if not values:
        raise ValueError(f"The {name!r} parameter must be a number >= 0 or a non-empty list of them. Got an "
                         "empty list instead.")
    return [check_number(name, v, minimum=0) for v in values]


def is_grid(trainer):
    """Whether ``trainer``'s settings ask for a grid (several penalties, a path, cv or a hold-out part)."""
    return (len(penalty_list("l1", trainer.l1)) > 1 or len(penalty_list("l2", trainer.l2)) > 1
            or any(getattr(trainer, name) is not None for name in ("reg_path", "cv", "validation_fraction")))


def grid_spec(trainer):
    """The grid ``trainer`` asks for, checked, as the JSON-able dict recorded in the settings.

    Raises
    ------
    ValueError
        Naming the parameter: mismatched list lengths, a path with lists, ``cv < 2``, a fraction outside
        (0, 1), cv with a hold-out fraction, several penalties without cv or a hold-out part to choose.
    """
    l1s, l2s = penalty_list("l1", trainer.l1), penalty_list("l2", trainer.l2)
    if len(l1s) > 1 and len(l2s) > 1 and len(l1s) != len(l2s):
        raise ValueError(f"The 'l1' and 'l2' lists are pairs and must have the same length. Got {len(l1s)} "
                         f"l1 values and {len(l2s)} l2 values instead.")
    spec = {"l1": None, "l2": None, "reg_path": None, "reg_path_ratio": None, "elastic_net": None,
            "cv": None, "validation_fraction": None, "n_iter_no_change": None, "fold_seed": None}
    if trainer.reg_path is not None:
        check_int("reg_path", trainer.reg_path, minimum=1)
        if len(l1s) > 1 or len(l2s) > 1 or any(l1s) or any(l2s):
            raise ValueError(f"The 'reg_path' parameter makes the penalties itself and cannot be combined "
                             f"with 'l1' or 'l2'. Got reg_path={trainer.reg_path!r} with l1={trainer.l1!r}, "
                             f"l2={trainer.l2!r} instead.")
        ratio = trainer.reg_path_ratio if trainer.reg_path_ratio is not None else DEFAULT_PATH_RATIO
        check_number("reg_path_ratio", ratio, minimum=0, strictly=True)
        if not ratio < 1:
            raise ValueError(f"The 'reg_path_ratio' parameter must be in (0, 1). Got {ratio!r} instead.")
        alpha = trainer.elastic_net if trainer.elastic_net is not None else DEFAULT_PATH_ALPHA
        check_number("elastic_net", alpha, minimum=0)
        if alpha > 1:
            raise ValueError(f"The 'elastic_net' parameter must be in [0, 1]. Got {alpha!r} instead.")
        spec.update(reg_path=trainer.reg_path, reg_path_ratio=float(ratio), elastic_net=float(alpha))
        n_candidates = trainer.reg_path
    else:
        for name in ("reg_path_ratio", "elastic_net"):
            if getattr(trainer, name) is not None:
                raise ValueError(f"The {name!r} parameter applies to a penalty path ('reg_path'). Got "
                                 f"{name}={getattr(trainer, name)!r} without reg_path instead.")
        n_candidates = max(len(l1s), len(l2s))
        spec.update(l1=l1s * (n_candidates // len(l1s)), l2=l2s * (n_candidates // len(l2s)))
    if trainer.cv is not None and trainer.validation_fraction is not None:
        raise ValueError(f"The 'cv' and 'validation_fraction' parameters are two ways to score models; "
                         f"choose one. Got cv={trainer.cv!r} and validation_fraction="
                         f"{trainer.validation_fraction!r}.")
    seed = check_int("fold_seed", trainer.fold_seed, minimum=0)
    if trainer.cv is not None:
        check_int("cv", trainer.cv, minimum=2)
        spec.update(cv=trainer.cv, fold_seed=seed)
    elif trainer.validation_fraction is not None:
        fraction = check_number("validation_fraction", trainer.validation_fraction, minimum=0, strictly=True)
        if not fraction < 1:
            raise ValueError(f"The 'validation_fraction' parameter must be in (0, 1). Got {fraction!r} "
                             "instead.")
        spec.update(validation_fraction=fraction, fold_seed=seed,
                    n_iter_no_change=check_int("n_iter_no_change", trainer.n_iter_no_change, minimum=1))
    elif n_candidates > 1:
        raise ValueError(f"Several penalties ({n_candidates}) need 'cv' (k-fold cross-validation) or "
                         f"'validation_fraction' (a hold-out part) to choose among them. Got neither.")
    return spec


def split_of(spec):
    """The row split (:mod:`mrtrain.engine.folds`) a grid spec uses, or None."""
    if spec["cv"]:
        return check_split({"kind": "folds", "k": spec["cv"], "seed": spec["fold_seed"]})
    if spec["validation_fraction"]:
        return check_split({"kind": "holdout", "fraction": spec["validation_fraction"],
                            "seed": spec["fold_seed"]})
    return None


@dataclass(frozen=True)
class Member:
    """One model of a grid.

    Attributes
    ----------
    candidate : int
        Index of its penalty pair.
    role : {"fold", "refit", "holdout"}
    fold : int or None
        The fold it is scored on (``"fold"`` members).
    train_groups : tuple of int
        Row groups it trains on.
    valid_group : int or None
        Row group it is scored on (None for refits).
    """

    candidate: int
    role: str
    fold: int | None
    train_groups: tuple
    valid_group: int | None


def member_count(spec):
    """How many members the grid ``spec`` (:func:`grid_spec`) trains, without making them: per candidate
    its ``cv`` fold members and its refit, or one member."""
    n_candidates = spec["reg_path"] or len(spec["l2"])
    return n_candidates * (spec["cv"] + 1 if spec["cv"] else 1)


def grid_members(n_candidates, *, cv=None, holdout=False):
    """The members of a grid: per candidate its K fold members then its refit (``cv = K``), or its hold-out
    member."""
    members = []
    for c in range(n_candidates):
        if cv:
            for f in range(cv):
                members.append(Member(c, "fold", f, tuple(g for g in range(cv) if g != f), f))
            members.append(Member(c, "refit", None, tuple(range(cv)), None))
        elif holdout:
            members.append(Member(c, "holdout", None, (0,), 1))
        else:
            members.append(Member(c, "refit", None, (0,), None))
    return members


@dataclass
class MemberRun:
    """Where one member's training stands (checkpointed after every pass)."""

    status: LoopStatus
    done: bool = False
    reason: str | None = None
    converged: bool = False
    valid: float | None = None
    valid_history: list = field(default_factory=list)
    best_valid: float | None = None
    best_iteration: int = 0
    best_history: int = 0
    best_state: tuple | None = None
    no_improve: int = 0
    last_step: float = 0.0  # length of the last accepted step (progress display only; not checkpointed)


def regularization_path(zero_sums, model, *, n_values, ratio, alpha, feature_means=None):
    """glmnet's penalty path from the sums of a pass at zero parameters over all rows.

    Parameters
    ----------
    zero_sums : PartialSums
        Totals at the single point ``theta = 0``, in the optimizer's terms (standardized if so).
    model : mrtrain.engine.models.Model
    n_values : int >= 1
    ratio : float in (0, 1)
        ``λmin / λmax``.
    alpha : float in [0, 1]
        Elastic-net mix: ``l1 = αλ``, ``l2 = (1 - α)λ``.
    feature_means : ndarray of shape (d,) or None
        Weighted feature means in the optimizer's terms; needed with an intercept, to move the gradient to
        the intercept-only optimum (None: they are 0, e.g. centred standardized features).

    Returns
    -------
    lambda_max : float
    pairs : list of (l1, l2)
    """
    grad = zero_sums.grad[0] / zero_sums.weight
    k, d = model.n_outputs, model.n_features
    rows = grad.reshape(k, d + int(model.fit_intercept))
    coefficient_grad = rows[:, :d].copy()
    if model.fit_intercept and feature_means is not None and model.loss.canonical_link:
        # For a canonical-link GLM with w = 0 the coefficient gradient is mean(x (mu(b) - y)), affine in
        # mu(b); at the intercept-only optimum mu(b*) = mean(y) = mu(0) - (intercept gradient at 0).
        coefficient_grad -= rows[:, d:] * feature_means[None, :]
    lambda_max = float(np.max(np.abs(coefficient_grad), initial=0.0)) / max(alpha, MIN_PATH_ALPHA)
    if not lambda_max > 0 or not math.isfinite(lambda_max):
        raise ValueError(f"The penalty path needs a positive, finite largest gradient at zero coefficients "
                         f"(λmax). Got {lambda_max!r}: the labels do not depend on the features at all.")
    lambdas = [lambda_max * ratio ** (i / (n_values - 1)) if n_values > 1 else lambda_max
               for i in range(n_values)]
    return lambda_max, [(alpha * lam, (1.0 - alpha) * lam) for lam in lambdas]


def add_sums(a, b):
    """The sums of two disjoint blocks of rows at the same points."""
    return PartialSums(a.weight + b.weight, a.loss + b.loss, a.grad + b.grad,
                       None if a.hess is None else a.hess + b.hess)


def member_sums(group_sums, member, indices, hessian_rows):
    """A member's training sums: its groups' sums at its points' rows, added in group order."""
    total = None
    for g in member.train_groups:
        sums = group_sums[g]
        part = PartialSums(sums.weight, sums.loss[indices], sums.grad[indices],
                           sums.hess[hessian_rows] if hessian_rows else None)
        total = part if total is None else add_sums(total, part)
    return total


class PointTable:
    """The distinct points of one pass, with Hessians at the leading ones: ``add`` returns a point's row."""

    def __init__(self):
        self.rows = []
        self._index = {}
        self.hessian = 0

    def add(self, point):
        key = point.tobytes()
        if key not in self._index:
            self._index[key] = len(self.rows)
            self.rows.append(point)
        return self._index[key]


def judge_again(runs: Sequence[MemberRun], *, max_iter: int, tol: float, gtol: float,
                optimizers: Sequence[Optimizer] | None = None) -> list[int]:
    """Judge every member that stopped by the stopping rule again under these limits, as a resumed single
    model is (:func:`mrtrain.engine.loop.stop_reason` from its status): a member stopped by a lower
    ``max_iter`` trains on. Members stopped otherwise (overflow, early stopping, not selected) stay stopped.
    ``optimizers`` (one per member) give the rule its predicted-decrease condition, as in the loop.

    Returns
    -------
    list of int
        The members that train on (updated in place).
    """
    reopened = []
    for i, run in enumerate(runs):
        if run.done and run.reason in STOPPING_RULE_REASONS:
            verdict = stop_reason(run.status, max_iter=max_iter, tol=tol, gtol=gtol,
                                  optimizer=None if optimizers is None else optimizers[i])
            if verdict is None:
                run.done, run.reason, run.converged = False, None, False
                reopened.append(i)
            else:
                run.reason, run.converged = verdict
    return reopened


def run_grid(
    members: Sequence[Member],
    runs: Sequence[MemberRun],
    optimizers: Sequence[Optimizer],
    objectives: Sequence[Objective],
    evaluate_groups: Callable[[np.ndarray, int], Sequence[PartialSums]],
    *,
    max_iter: int,
    tol: float,
    gtol: float,
    n_iter_no_change: int,
    on_pass: Callable[[], None] | None = None,
    callback: Callable[[Progress], None] | None = None,
    select: Callable[[], int] | None = None,
    coordinates: Sequence[Standardization] | None = None,
) -> int:
    """Train every member concurrently until all have stopped.

    Parameters
    ----------
    members : list of Member
    runs : list of MemberRun
        Updated in place.
    optimizers, objectives : sequences of Optimizer and Objective, one per member
    evaluate_groups : callable ``(points (m, p), hessian: int) -> list of PartialSums`` (one per group)
    max_iter, tol, gtol : the stopping rule of :func:`mrtrain.engine.loop.stop_reason`
    n_iter_no_change : int
        Early stopping of members with a validation group (hold-out grids).
    on_pass : callable ``() -> None``, optional
        Called after every pass (checkpointing).
    callback : callable ``(Progress) -> None``, optional
        Called after every pass with the progress of the member ``select()`` names.
    select : callable ``() -> int``, optional
        The member whose progress ``callback`` shows.
    coordinates : sequence of Standardization, optional
        One per member: the coordinates its optimizer runs in (the preconditioner of its ``l2``). Its
        points are mapped to the model's parameters before they are evaluated (identical parameters of
        several members once) and its evaluations pulled back, so its objective stays the stored
        features'. Without, every member runs in the model's parameters.

    Returns
    -------
    int
        Passes made.
    """
    limits = {"max_iter": max_iter, "tol": tol, "gtol": gtol}
    passes = 0
    while True:
        for run_index, run in enumerate(runs):
            if not run.done:
                verdict = stop_reason(run.status, **limits, optimizer=optimizers[run_index])
                if verdict is not None:
                    run.done, (run.reason, run.converged) = True, verdict
        active = [i for i, run in enumerate(runs) if not run.done]
        if not active:
            return passes
        started = time.perf_counter()
        table = PointTable()
        plans = {}
        with np.errstate(all="ignore"):
            for i in active:
                plan = pass_plan(optimizers[i], runs[i].status.state)
                if not np.isfinite(plan.points).all():
                    runs[i].done, runs[i].converged = True, False
                    runs[i].reason = OVERFLOW_REASON
                    continue
                plans[i] = plan
            originals = {i: plan.points if coordinates is None else coordinates[i].to_original(plan.points)
                         for i, plan in plans.items()}
            lead = {i: [table.add(p) for p in originals[i][:optimizers[i].hessian_points]] for i in plans}
            table.hessian = len(table.rows)
            rest = {i: [table.add(p) for p in originals[i][optimizers[i].hessian_points:]] for i in plans}
            if not plans:
                continue
            group_sums = evaluate_groups(np.stack(table.rows), table.hessian)
            for i, plan in plans.items():
                indices = lead[i] + rest[i]
                sums = member_sums(group_sums, members[i], indices, lead[i])
                evaluations = objectives[i].evaluations(sums, originals[i])
                if coordinates is not None:
                    evaluations = [coordinates[i].evaluation_to_standardized(e) for e in evaluations]
                runs[i].status, step = finish_pass(optimizers[i], runs[i].status, plan, evaluations)
                runs[i].last_step = step.size
                if step.accepted and members[i].valid_group is not None:
                    _score(runs[i], members[i], group_sums, indices, plan.points, runs[i].status.state, tol,
                           n_iter_no_change)
        passes += 1
        if on_pass is not None:
            on_pass()
        shown = select() if select is not None else active[0]
        run = runs[shown]
        log.info("pass %d: %d of %d models training; model %d iteration %d objective %.12g", passes,
                 sum(not r.done for r in runs), len(runs), shown, run.status.iteration,
                 run.status.state.value)
        if callback is not None:
            grad = float(np.max(np.abs(run.status.state.grad), initial=0.0))
            callback(Progress(run.status.iteration, run.status.state.value, grad, run.last_step,
                              time.perf_counter() - started, passes, True))


def _score(run, member, group_sums, indices, points, state, tol, n_iter_no_change):
    """Record the validation loss at the accepted point; stop a member that no longer improves."""
    row = next(indices[j] for j, point in enumerate(points) if np.array_equal(point, state.x))
    valid = group_sums[member.valid_group]
    if not valid.weight > 0:
        raise ValueError("A validation group holds no rows (total sample weight 0): use fewer folds or a "
                         "larger validation fraction.")
    run.valid = float(valid.loss[row]) / valid.weight
    run.valid_history.append(run.valid)
    if run.best_valid is None or run.valid < run.best_valid - tol * max(abs(run.best_valid), 1.0):
        run.no_improve = 0
    else:
        run.no_improve += 1
    if run.best_valid is None or run.valid < run.best_valid:
        run.best_valid, run.best_iteration, run.best_state = run.valid, run.status.iteration, state
        run.best_history = len(run.status.history)
    if member.role == "holdout" and run.no_improve >= n_iter_no_change and not run.done:
        run.done, run.converged = True, True
        run.reason = f"validation loss did not improve for {n_iter_no_change} iterations"


def grid_table_lines(table):
    """The table of a grid's candidates as text lines (``mrtrain train``'s output), selected one marked.

    Every column is as wide as its widest entry and columns are two spaces apart, so no two values run
    together however long they are (a cv of 10 folds lists 10 iteration counts).
    """
    if not table:
        return []
    metric = table[0].get("metric")
    names = ["l1", "l2"] + (["lambda", "alpha"] if "lambda" in table[0] else [])
    header = [*names] + (["validation loss", metric, "iterations"] if metric else []) + ["selected"]
    rows = []
    for row in table:
        cells = [f"{row[name]:.4g}" for name in names]
        if metric:
            cells += [_mean_std_text(row["validation_loss_mean"], row["validation_loss_std"]),
                      _mean_std_text(row[f"{metric}_mean"], row[f"{metric}_std"]),
                      ",".join(str(n) for n in row["iterations"])]
        rows.append([*cells, "*" if row["selected"] else ""])
    widths = [max(len(line[j]) for line in [header, *rows]) for j in range(len(header))]
    lines = ["candidates:"]
    for line in [header, *rows]:
        lines.append("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return lines


def _mean_std_text(mean, std):
    if mean is None:
        return "-"
    return f"{mean:.6g} ± {std:.2g}" if std is not None else f"{mean:.6g}"
