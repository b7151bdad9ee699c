"""The report's sections about a grid run (``--cv``, ``--validation-fraction``, ``--reg-path`` or a penalty
list): validation loss against the penalty with the selected one marked, and the coefficient path.

Both read the newest checkpoint of the run (:func:`mrtrain.fitted.latest_training_checkpoint`): the table of
candidates its grid scored (:func:`mrtrain.grid_training.GridRun.score`) and every member's parameters
(:func:`mrtrain.grid_training.member_parameters`). The penalty on the x axis is the total ``λ = l1 + l2``
(Spark's ``regParam``; with ``--reg-path`` the path's λ), on a log scale when every λ is positive.
"""

import numpy as np

from mrtrain.engine.grid import grid_members
from mrtrain.families.glm_grid import NOT_SELECTED, member_parameters
from mrtrain.report_text import literal

#: Coefficients drawn in the path (those of largest magnitude anywhere along it); the table lists them all.
PATH_LINES = 12
#: Coefficients listed in the path's table (those of largest magnitude anywhere along it).
PATH_COLUMNS = 40


def grid_sections(fitted, checkpoint, figure_class, feature_names, section, png, figure):
    """The grid sections that apply to ``fitted`` (a grid's result) and its newest ``checkpoint``.

    ``section``, ``png`` and ``figure`` are :mod:`mrtrain.report`'s constructors (passed in so this
    module does not import the page's module).
    """
    grid = checkpoint.meta.get("grid") if checkpoint is not None else None
    if not isinstance(grid, dict) or not grid.get("table"):
        return []
    table = grid["table"]
    sections = []
    if table[0].get("validation_loss_mean") is not None or any(
            row.get("validation_loss_mean") is not None for row in table):
        sections.append(_validation_section(fitted, table, figure_class, section, png, figure))
    path = _coefficient_path_section(fitted, checkpoint, figure_class, feature_names, section, png, figure)
    if path is not None:
        sections.append(path)
    return sections


def _penalty(row):
    return row["lambda"] if "lambda" in row else row["l1"] + row["l2"]


def _set_penalty_axis(axis, penalties):
    if min(penalties) > 0:
        axis.set_xscale("log")
    axis.set_xlabel("penalty λ = l1 + l2")


def _validation_section(fitted, table, figure_class, section, png, figure):
    spec = fitted.settings.get("grid") or {}
    metric = table[0].get("metric")
    scored = [row for row in table if row.get("validation_loss_mean") is not None]
    penalties = [_penalty(row) for row in scored]
    means = [row["validation_loss_mean"] for row in scored]
    stds = [row.get("validation_loss_std") for row in scored]
    selected = next(row for row in table if row["selected"])
    canvas = figure(figure_class, 7, 3.6)
    axis = canvas.subplots()
    if all(std is not None for std in stds):
        axis.errorbar(penalties, means, yerr=stds, marker="o", markersize=4, capsize=3, color="C0",
                      label="mean ± std over the folds")
    else:
        axis.plot(penalties, means, marker="o", markersize=4, color="C0", label="hold-out part")
    axis.axvline(_penalty(selected), color="C3", linestyle="--", linewidth=1)
    if selected.get("validation_loss_mean") is not None:
        axis.plot([_penalty(selected)], [selected["validation_loss_mean"]], marker="*", markersize=14,
                  color="C3", linestyle="none", label=f"selected λ = {_penalty(selected):.4g}")
    _set_penalty_axis(axis, penalties)
    axis.set(ylabel="validation loss", title="validation loss against the penalty")
    axis.legend(loc="best")
    title = "Validation loss against the penalty"
    fraction = spec.get("validation_fraction") or 0
    scoring = (f"{spec['cv']}-fold cross-validation (mean and standard deviation over the folds)"
               if spec.get("cv") else f"a hold-out part of about {fraction:g} of the rows (each model's best "
               "iterate)")
    caption = (f"The mean loss on held-out rows of each of the {len(table)} penalties, by {scoring}; the "
               f"selected penalty, λ = {_penalty(selected):.6g} (l1 {selected['l1']:.6g}, l2 "
               f"{selected['l2']:.6g}), is marked.")
    columns = ("λ", "l1", "l2", "validation loss", "std", metric or "metric", "selected")
    rows = [(_penalty(row), row["l1"], row["l2"], row.get("validation_loss_mean"),
             row.get("validation_loss_std"), row.get(f"{metric}_mean") if metric else None,
             "yes" if row["selected"] else "") for row in table]
    return section(title, png(canvas, title), caption, columns, rows)


def _path_members(settings, grid):
    """Per candidate, the member whose parameters trace the path and how it ended: its refit on all rows
    (``cv``, or a plain path) or its hold-out member."""
    spec = settings["grid"]
    members = grid_members(len(grid["candidates"]), cv=spec["cv"],
                           holdout=bool(spec["validation_fraction"]))
    chosen = {}
    for i, member in enumerate(members):
        if member.role in ("refit", "holdout"):
            chosen[member.candidate] = i
    return [chosen[c] for c in range(len(grid["candidates"]))]


def _coefficient_path_section(fitted, checkpoint, figure_class, feature_names, section, png, figure):
    coef = fitted.coef_
    d = fitted.model.n_features
    if not isinstance(coef, np.ndarray) or coef.shape[-1] != d:
        return None
    grid = checkpoint.meta["grid"]
    table = sorted(grid["table"], key=lambda row: -_penalty(row))  # largest penalty (sparsest) first
    if len(table) < 2:
        return None
    chosen = _path_members(checkpoint.meta["settings"], grid)
    thetas = member_parameters(checkpoint)
    paths = np.stack([np.atleast_2d(fitted.model.coefficients(thetas[chosen[row["candidate"]]])[0]).ravel()
                      for row in table])
    rows_per_class = np.atleast_2d(coef).shape[0]
    names = feature_names or [f"feature {j}" for j in range(d)]
    labels = [(f"class {fitted.class_labels_[k]}: " if rows_per_class > 1 else "") + names[j]
              for k in range(rows_per_class) for j in range(d)]
    x = [_penalty(row) for row in table]
    top = np.argsort(-np.max(np.abs(paths), axis=0), kind="stable")
    drawn, listed = top[:PATH_LINES], top[:PATH_COLUMNS]
    canvas = figure(figure_class, 8, 4)
    axis = canvas.subplots()
    for n, j in enumerate(drawn):  # past the 10 colours of the cycle, dashed lines tell them apart
        axis.plot(x, paths[:, j], marker="o", markersize=2.5, linewidth=1.2, label=literal(labels[j]),
                  linestyle="-" if n < 10 else "--")
    selected = next(row for row in table if row["selected"])
    axis.axvline(_penalty(selected), color="C3", linestyle="--", linewidth=1)
    axis.axhline(0, color="0.5", linewidth=0.6)
    _set_penalty_axis(axis, x)
    if min(x) > 0:
        axis.invert_xaxis()
    axis.set(ylabel="coefficient", title="coefficient path")
    axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    title = "Coefficient path"
    spec = checkpoint.meta["settings"]["grid"]
    stopped = [row for row in table if grid["members"][chosen[row["candidate"]]]["reason"] == NOT_SELECTED]
    source = ("the refit on all rows of every penalty" if spec["cv"] else
              "the model of every penalty (its last iterate)" if spec["validation_fraction"] else
              "the model of every penalty")
    caption = (f"Coefficients for the features as stored, from {source}, the penalty falling from left to "
               f"right; the {len(drawn)} of largest magnitude anywhere on the path are drawn (of "
               f"{paths.shape[1]}), the selected penalty dashed.")
    if stopped:
        caption += (f" The refits of {len(stopped)} penalties stopped when cross-validation selected another "
                    "(their coefficients are where their training stopped).")
    columns = ("λ", "l1", "l2", "selected", *(labels[j] for j in listed))
    rows = [(x[r], row["l1"], row["l2"], "yes" if row["selected"] else "",
             *(float(paths[r, j]) for j in listed)) for r, row in enumerate(table)]
    return section(title, png(canvas, title), caption, columns, rows)


