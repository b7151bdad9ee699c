"""``mrtrain report``: one self-contained HTML page about a trained model, with plots drawn by matplotlib.

The page holds what applies to the model in its checkpoint directory, in this order:

- with a dataset (``--data``): the metrics of one evaluate job;
- convergence (models trained by an optimizer): the objective, its distance to the final objective and the
  gradient max-norm per data pass on log scales (the objective's when it spans more than a factor of 10),
  and the seconds of each pass, from the per-pass records of the newest checkpoint
  (:class:`mrtrain.engine.loop.LoopStatus`); a checkpoint written before those records existed (or a
  grid run's) gives the objective per accepted iteration only; k-means: the inertia per Lloyd pass; naive
  Bayes, fitted in one pass, has none;
- with a dataset: the confusion matrix (classifiers) and the ROC curve (binary logistic models:
  :func:`mrtrain.engine.metrics.binned_roc_curve`, from the evaluate job's score histograms);
- a grid run (``--cv``, ``--validation-fraction``, ``--reg-path``, penalty lists): the validation loss
  against the penalty λ with the selected λ marked, and the coefficient path
  (:mod:`mrtrain.report_grid`);
- parameters: the largest coefficients by magnitude (linear models), the class priors (naive Bayes), the
  rows nearest each centre (k-means); none for parameters that are not one coefficient per feature (an
  MLP's layers);
- with ``--standardize``: every coefficient on both scales, for the features as stored and for the
  standardized features the penalty applied to;
- the ``--inference`` table (estimate, standard error, z or t, p-value) kept with the newest checkpoint;
- the run: result and every training setting, one readable row each (a grid's settings one per row).

Every figure is a PNG inlined as base64 (``<img src="data:image/png;base64,...">``, with the figure's
title also in the PNG's ``Title`` text chunk), followed by the numbers it shows in a table, so the page
needs nothing but itself. matplotlib is an optional dependency (``pip install 'mrtrain[report]'``); figures
are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas, never through pyplot's global
state. What a user wrote (column names, category values) is drawn literally: every ``$`` in it is escaped,
so matplotlib never reads it as math markup, and TeX rendering is off whatever the matplotlib configuration
says.
"""

import base64
import html
import io
import logging
import math
from typing import NamedTuple

import numpy as np

from mrtrain.engine.standardization import STANDARD_DEVIATIONS
from mrtrain.families.registry import family_of
from mrtrain.inference import load_inference
from mrtrain.model_dir import read_model
from mrtrain.report_grid import grid_sections
from mrtrain.report_text import literal
from mrtrain.storage.dataset import Dataset
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import absolute, write_new_file
from mrtrain.tree_report import page_header, tree_sections

log = logging.getLogger(__name__)

#: How to install the optional plotting dependency.
INSTALL_HINT = "pip install 'mrtrain[report]'"
#: Coefficients shown by the coefficient plot (largest magnitude first).
TOP_COEFFICIENTS = 20
#: Largest confusion matrix whose cells get their counts written in.
ANNOTATED_CLASSES = 20
#: Figure resolution (dots per inch) of the inlined PNGs.
DPI = 96


class MissingDependencyError(ImportError):
    """matplotlib, which the report draws with, is not installed."""


class Section(NamedTuple):
    """One part of the page: a heading, an optional figure, a caption and the numbers behind it.

    Attributes
    ----------
    title : str
    png : bytes or None
        The figure, or None for a table-only section.
    caption : str
    columns : tuple of str
        Column names of ``rows``.
    rows : list of tuple
        The values the figure shows (or the table itself).
    """

    title: str
    png: bytes | None
    caption: str
    columns: tuple
    rows: list


def require_matplotlib():
    """Import matplotlib's object-oriented API, or raise one line saying how to install it.

    Returns
    -------
    type
        :class:`matplotlib.figure.Figure`.

    Raises
    ------
    MissingDependencyError
        If matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise MissingDependencyError(
            f"mrtrain report draws its plots with matplotlib, which is not installed ({error}); install it "
            f"with: {INSTALL_HINT}"
        ) from None
    return Figure


def build_report(model_dir, *, data=None, runner="inline", conf_path=None, partition_cache=True):
    """The report of the model in ``model_dir`` as one HTML document.

    Parameters
    ----------
    model_dir : str
        A checkpoint directory (local or ``hdfs://``).
    data : str, optional
        A dataset to evaluate the model on (one evaluate job): metrics, confusion matrix, ROC curve.
    runner, conf_path, partition_cache
        For the evaluate job, as in :meth:`mrtrain.fitted.FittedModel.evaluate`.

    Returns
    -------
    html : str
    sections : list of Section
        What the page shows, in order.

    Raises
    ------
    MissingDependencyError
        Without matplotlib, before anything is read.
    FileNotFoundError
        If ``model_dir`` holds no valid checkpoint.
    """
    figure_class = require_matplotlib()
    model_dir, data = absolute(model_dir), absolute(data)
    family, checkpoint, fitted = read_model(model_dir)
    if family.report_style == "trees":
        metrics = None if data is None else fitted.evaluate(data, runner=runner, conf_path=conf_path,
                                                            partition_cache=partition_cache)
        sections = tree_sections(fitted, metrics, figure_class, Section, _png, _figure)
        return render_html(page_header(fitted), model_dir, data, sections), sections
    inference = load_inference(model_dir, checkpoint.iteration)
    metrics = None
    if data is not None:
        metrics = fitted.evaluate(data, runner=runner, conf_path=conf_path, partition_cache=partition_cache,
                                  roc_curve=True)
    sections = report_sections(fitted, metrics, figure_class, feature_names=_feature_names(fitted, data),
                               checkpoint=checkpoint, inference=inference)
    return render_html(fitted, model_dir, data, sections), sections


def write_report(model_dir, output, **options):
    """Write :func:`build_report`'s page to the new file ``output`` (local or ``hdfs://``).

    The page appears complete and never replaces anything (:func:`mrtrain.storage.filesystem.write_new_file`:
    refused before the report is built if ``output`` exists, then created exclusively, which fails if anything
    appeared at ``output`` while the report was built, say another report to the same path).

    Returns
    -------
    list of Section

    Raises
    ------
    FileExistsError
        If ``output`` exists (checked again by the final, exclusive step).
    """
    built = {}

    def page():
        built["page"], built["sections"] = build_report(model_dir, **options)
        return built["page"].encode("utf-8")

    output = write_new_file(output, page, "the report")
    log.info("wrote the report of %s to %s (%d sections)", model_dir, output, len(built["sections"]))
    return built["sections"]


def report_sections(fitted, metrics, figure_class, feature_names=None, checkpoint=None, inference=None):
    """The sections that apply to ``fitted`` (and to ``metrics``, an evaluate result, if given; to
    ``checkpoint``, the newest one, for a grid's candidates; to ``inference``, the ``--inference`` table
    kept with that checkpoint)."""
    from matplotlib import rc_context

    with rc_context({"text.usetex": False}):  # the user's strings are escaped for mathtext, not TeX
        return _sections(fitted, metrics, figure_class, feature_names, checkpoint, inference)


def _style(fitted):
    """How the report shows ``fitted``'s model: its family's ``report_style``."""
    return family_of(fitted.model.kind).report_style


def _sections(fitted, metrics, figure_class, feature_names, checkpoint, inference):
    sections = [] if metrics is None else [_metrics_section(metrics)]
    style = _style(fitted)
    records = fitted.pass_records_
    if records["pass_objectives"]:
        sections.append(_convergence_section(fitted, figure_class))
        sections.append(_seconds_section(fitted, figure_class))
    elif fitted.history_ and style != "statistics":
        sections.append(_history_section(fitted, figure_class))
    if metrics is not None and metrics.get("confusion_matrix") is not None:
        sections.append(_confusion_section(fitted, metrics["confusion_matrix"], figure_class))
    if metrics is not None and metrics.get("roc_curve"):
        sections.append(_roc_section(metrics["roc_curve"], metrics.get("roc_auc"), figure_class))
    sections += grid_sections(fitted, checkpoint, figure_class, feature_names, Section, _png, _figure)
    if fitted.cluster_sizes_ is not None:
        sections.append(_cluster_section(fitted, figure_class))
    elif style == "statistics":
        sections.append(_prior_section(fitted, figure_class))
    else:
        coefficients = _coefficient_section(fitted, figure_class, feature_names)
        if coefficients is not None:
            sections.append(coefficients)
        if fitted.standardization is not None and coefficients is not None:
            sections.append(_scales_section(fitted, feature_names))
    if inference:
        sections.append(_inference_section(inference))
    sections.append(_run_section(fitted))
    return sections


def _feature_names(fitted, data):
    """Feature names recorded at training, else from ``data``, else from the training dataset if it is still
    there, else None."""
    if "feature_names" in fitted.settings:
        return fitted.feature_names_
    for uri in (data, fitted.settings.get("data")):
        if uri is None:
            continue
        try:
            dataset = Dataset.open(uri)
        except (OSError, DataError, ValueError):
            continue
        if dataset.n_features == fitted.model.n_features:
            return dataset.feature_names
    return None


def _png(figure, title):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Title": title})
    return buffer.getvalue()


def _figure(figure_class, width, height):
    return figure_class(figsize=(width, height), layout="constrained")


def _whole_numbers(axis):
    """Ticks at whole numbers only on ``axis``'s x axis (pass and iteration numbers)."""
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))


#: Readable names of the recorded settings (any other setting is shown under its own name, ``_`` as spaces).
SETTING_NAMES = {
    "model": "model", "data": "trained on", "data_checksum": "dataset checksum", "n_features": "features",
    "classes": "classes", "fit_intercept": "intercept", "optimizer": "optimizer", "l2": "l2 penalty",
    "l1": "l1 penalty", "standardize": "standardized features", "precondition": "preconditioned optimizer",
    "init": "starting point", "encoding": "categorical encoding", "smoothing": "smoothing",
    "layers": "hidden layers", "activation": "activation", "seed": "seed", "k": "centres (k)",
    "init_centers": "initial centres", "init_steps": "k-means|| steps",
}
#: Readable names of a grid's settings, shown as ``grid: <name>``.
GRID_NAMES = {
    "l1": "l1 list", "l2": "l2 list", "reg_path": "penalty path values", "reg_path_ratio": "path ratio",
    "elastic_net": "elastic-net mix", "cv": "cross-validation folds",
    "validation_fraction": "hold-out fraction",
    "n_iter_no_change": "early stop after", "fold_seed": "fold seed",
}


def _setting_text(value):
    """A setting's value as a person reads it: yes/no, numbers in %g, lists comma-separated."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, list | tuple):
        return ", ".join(_setting_text(item) for item in value) if value else "none"
    if value is None:
        return "none"
    return str(value)


def setting_rows(settings):
    """The recorded training settings as ``(name, text)`` rows: readable names, the model's identity first,
    a grid's settings one per row, settings that do not apply (None) left out."""
    rows = []
    order = [*(name for name in SETTING_NAMES if name in settings),
             *sorted(name for name in settings if name not in SETTING_NAMES and name != "grid")]
    for name in order:
        value = settings[name]
        if value is None:  # a setting that does not apply (a regression's classes, a dataset's encoding)
            continue
        if name == "encoding" and isinstance(value, dict):
            value = ", ".join(f"{key} {_setting_text(item)}" for key, item in sorted(value.items())
                              if not isinstance(item, dict | list))
        if name == "standardize" and value in STANDARD_DEVIATIONS:  # a convention's name, or True before it
            value = f"yes, {STANDARD_DEVIATIONS[value]}"
        rows.append((SETTING_NAMES.get(name, name.replace("_", " ")), _setting_text(value)))
    for name, value in sorted((settings.get("grid") or {}).items()):
        if value is not None:
            rows.append((f"grid: {GRID_NAMES.get(name, name.replace('_', ' '))}", _setting_text(value)))
    return rows


def _run_section(fitted):
    rows = [
        ("iterations", fitted.n_iter_),
        ("passes", fitted.n_passes_),
        ("objective" if _style(fitted) != "clusters" else "inertia (last pass)", fitted.objective_),
        ("converged", _setting_text(fitted.converged_)),
        ("stop reason", fitted.stop_reason_),
    ]
    rows += setting_rows(fitted.settings)
    return Section("Run and settings", None, "The training result and every setting recorded in the "
                   "newest checkpoint.", ("name", "value"), rows)


def _inference_section(table):
    statistic = table["statistic_name"]
    caption = (f"Standard errors, {statistic} statistics and two-sided p-values of the coefficients "
               "(mrtrain train --inference, at the optimum"
               + (f": {table['newton_steps']} Newton step(s) from the fitted coefficients, "
                  f"{table['remaining_step']:.1e} standard errors left" if "newton_steps" in table else "")
               + ")")
    if table.get("df"):
        caption += (f", with {table['df']:g} residual degrees of freedom and dispersion "
                    f"{table['dispersion']:.6g}")
    columns = ("coefficient", "estimate", "std. error", statistic, "p-value")
    rows = list(zip(table["names"], table["estimate"], table["std_error"], table["statistic"],
                    table["p_value"], strict=True))
    return Section("Coefficient inference", None, caption + ".", columns, rows)


def _scales_section(fitted, feature_names):
    """Coefficients for the features as stored and for the standardized features ``(x - μ) / σ`` the
    penalty applied to: ``σⱼ wⱼ`` (constant features keep scale 1)."""
    scaling = fitted.standardization
    rows = np.atleast_2d(fitted.coef_)
    d = rows.shape[1]
    names = feature_names or [f"feature {j}" for j in range(d)]
    several = rows.shape[0] > 1
    table = []
    for k, row in enumerate(rows):
        for j in range(d):
            table.append(((f"class {fitted.class_labels_[k]}: " if several else "") + names[j],
                          float(row[j]), float(row[j] * scaling.scale[j]), float(scaling.shift[j]),
                          float(scaling.scale[j])))
    caption = ("With --standardize the penalty applied to the coefficients of the standardized features "
               "(x − shift) / scale (scale: "
               + ("Spark's n − 1 standard deviation" if fitted.settings.get("standardize") == "spark" else
                  "the population standard deviation")
               + "), where they compare with one another; the model predicts with the "
               "coefficients for the features as stored. Standardized coefficient = stored coefficient × "
               "scale.")
    return Section("Coefficients on both scales", None, caption,
                   ("coefficient", "features as stored", "standardized features", "shift", "scale"), table)


def _metrics_section(metrics):
    rows = [(name, value) for name, value in metrics.items()
            if name not in ("confusion_matrix", "roc_curve") and not isinstance(value, list | dict)]
    return Section("Metrics", None, "Computed by one evaluate job on the dataset.", ("metric", "value"), rows)


def _pass_numbers(fitted, count):
    """The numbers of the run's last ``count`` passes (the first pass is 1)."""
    return list(range(fitted.n_passes_ - count + 1, fitted.n_passes_ + 1))


def _log_axis(axis, values):
    """Log scale when every value is positive (non-positive ones would vanish) and they span more than a
    factor of 10, else linear."""
    if len(values) and min(values) > 0 and max(values) > 10 * min(values):
        axis.set_yscale("log")


def _convergence_section(fitted, figure_class):
    records = fitted.pass_records_
    objectives, norms = records["pass_objectives"], records["pass_grad_norms"]
    passes = _pass_numbers(fitted, len(objectives))
    final = objectives[-1]
    gaps = [value - final for value in objectives]
    figure = _figure(figure_class, 11, 3.4)
    left, middle, right = figure.subplots(1, 3)
    left.plot(passes, objectives, marker="o", markersize=3)
    _log_axis(left, objectives)
    left.set(title="objective", xlabel="pass")
    shown = [(p, gap) for p, gap in zip(passes, gaps, strict=True) if gap > 0]
    middle.plot([p for p, _ in shown], [gap for _, gap in shown], marker="o", markersize=3, color="C1")
    middle.set_yscale("log")
    middle.set(title="objective − final objective", xlabel="pass")
    positive = [(p, norm) for p, norm in zip(passes, norms, strict=True) if norm > 0]
    right.plot([p for p, _ in positive], [norm for _, norm in positive], marker="o", markersize=3,
               color="C2")
    right.set_yscale("log")
    right.set(title="gradient max-norm", xlabel="pass")
    for axis in (left, middle, right):
        _whole_numbers(axis)
    title = "Objective and gradient norm per pass"
    caption = (f"After each of the last {len(passes)} data passes: the objective at the current point, its "
               "distance to the final objective (zero, at the last pass, is not drawn on the log scale) and "
               "the gradient's max-norm (with l1: the pseudo-gradient's).")
    if passes and passes[0] > 1:
        caption += f" Passes 1-{passes[0] - 1} were not recorded (an older checkpoint, or the online start)."
    return Section(title, _png(figure, title), caption, ("pass", "objective", "objective − final",
                                                         "gradient max-norm"),
                   list(zip(passes, objectives, gaps, norms, strict=True)))


def _seconds_section(fitted, figure_class):
    seconds = fitted.pass_records_["pass_seconds"]
    passes = _pass_numbers(fitted, len(seconds))
    figure = _figure(figure_class, 7, 3)
    axis = figure.subplots()
    axis.bar(passes, seconds, color="C0")
    axis.set(title="seconds per pass", xlabel="pass", ylabel="seconds")
    _whole_numbers(axis)
    title = "Seconds per pass"
    caption = (f"Wall-clock seconds of each pass (the MapReduce job and the optimizer step, not the "
               f"checkpoint write); total {sum(seconds):.3g} s, median {float(np.median(seconds)):.3g} s.")
    return Section(title, _png(figure, title), caption, ("pass", "seconds"),
                   list(zip(passes, seconds, strict=True)))


def _history_section(fitted, figure_class):
    history = fitted.history_
    kmeans = _style(fitted) == "clusters"
    label = "inertia" if kmeans else "objective"
    steps = list(range(1, len(history) + 1)) if kmeans else list(range(len(history)))
    figure = _figure(figure_class, 7, 3)
    axis = figure.subplots()
    axis.plot(steps, history, marker="o", markersize=3)
    _log_axis(axis, history)
    axis.set(title=f"{label} per {'Lloyd pass' if kmeans else 'iteration'}",
             xlabel="Lloyd pass" if kmeans else "iteration")
    _whole_numbers(axis)
    title = "Inertia per Lloyd pass" if kmeans else "Objective per iteration"
    caption = ("The inertia of each Lloyd pass's assignment." if kmeans else
               "The objective after each accepted iteration (starting point first); this checkpoint records "
               "no per-pass gradient norms or seconds (it was written before they were recorded, or by a "
               "grid of penalties trained in shared passes).")
    return Section(title, _png(figure, title), caption, ("Lloyd pass" if kmeans else "iteration", label),
                   list(zip(steps, history, strict=True)))


def _confusion_section(fitted, confusion, figure_class):
    counts = np.asarray(confusion, dtype=np.float64)
    names = fitted.class_labels_
    k = len(names)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = min(3 + 0.45 * k, 12)
    figure = _figure(figure_class, size + 1.2, size)
    axis = figure.subplots()
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axis, label="share of the true class")
    ticks = range(k) if k <= ANNOTATED_CLASSES else []
    axis.set_xticks(list(ticks), [literal(names[i]) for i in ticks])
    axis.set_yticks(list(ticks), [literal(names[i]) for i in ticks])
    axis.set(xlabel="predicted class", ylabel="true class", title="confusion matrix")
    if k <= ANNOTATED_CLASSES:
        for i in range(k):
            for j in range(k):
                axis.text(j, i, f"{counts[i, j]:g}", ha="center", va="center",
                          color="white" if shares[i, j] > 0.5 else "black")
    title = "Confusion matrix"
    caption = "Rows: true class, columns: predicted class; cells coloured by their share of the row."
    rows = [(names[i], *(counts[i].tolist())) for i in range(k)]
    return Section(title, _png(figure, title), caption, ("true \\ predicted", *names), rows)


def _roc_section(curve, auc, figure_class):
    fpr, tpr, thresholds = curve["fpr"], curve["tpr"], curve["threshold"]
    figure = _figure(figure_class, 5, 4.6)
    axis = figure.subplots()
    axis.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1)
    axis.plot(fpr, tpr, color="C3", label="ROC" + ("" if auc is None else f" (AUC {auc:.4f})"))
    axis.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate",
             title="ROC curve")
    axis.set_aspect("equal")
    axis.legend(loc="lower right")
    title = "ROC curve"
    caption = ("True against false positive rate as the threshold on the predicted probability of the "
               "second class falls; thresholds are the edges of the evaluate job's score histogram bins.")
    rows = list(zip(thresholds, fpr, tpr, strict=True))
    return Section(title, _png(figure, title), caption, ("threshold", "false positive rate",
                                                         "true positive rate"), rows)


def _coefficient_section(fitted, figure_class, feature_names):
    coef, d = fitted.coef_, fitted.model.n_features
    if not isinstance(coef, np.ndarray) or coef.ndim not in (1, 2) or coef.shape[-1] != d:
        return None  # parameters that are not one coefficient per feature (and class)
    rows = np.atleast_2d(coef)
    names = feature_names or [f"feature {j}" for j in range(fitted.model.n_features)]
    several = rows.shape[0] > 1
    labels = [(f"class {fitted.class_labels_[k]}: " if several else "") + names[j]
              for k in range(rows.shape[0]) for j in range(rows.shape[1])]
    values = rows.ravel()
    order = np.argsort(-np.abs(values), kind="stable")[:TOP_COEFFICIENTS]
    shown = [(labels[i], float(values[i])) for i in order]
    figure = _figure(figure_class, 8, 0.9 + 0.28 * len(shown))
    axis = figure.subplots()
    positions = np.arange(len(shown))[::-1]
    axis.barh(positions, [value for _, value in shown],
              color=["C0" if value >= 0 else "C3" for _, value in shown])
    axis.set_yticks(positions, [literal(name) for name, _ in shown])
    axis.axvline(0, color="0.3", linewidth=0.8)
    axis.set(xlabel="coefficient", title=f"largest coefficients ({len(shown)} of {values.size})")
    title = "Largest coefficients"
    caption = (f"The {len(shown)} coefficients of largest magnitude (of {values.size}), for the features as "
               "stored; the intercept is not shown.")
    return Section(title, _png(figure, title), caption, ("coefficient", "value"), shown)


def _prior_section(fitted, figure_class):
    priors = np.exp(np.atleast_1d(np.asarray(fitted.intercept_, dtype=np.float64)))
    names = fitted.class_labels_
    figure = _figure(figure_class, min(3 + 0.4 * len(names), 12), 3)
    axis = figure.subplots()
    axis.bar(range(len(names)), priors, color="C0")
    axis.set_xticks(range(len(names)) if len(names) <= ANNOTATED_CLASSES else [],
                    [literal(name) for name in names] if len(names) <= ANNOTATED_CLASSES else [])
    axis.set(xlabel="class", ylabel="prior probability", title="class priors")
    title = "Class priors"
    caption = "Naive Bayes is fitted in one pass (no convergence history): the class prior probabilities."
    return Section(title, _png(figure, title), caption, ("class", "prior"),
                   list(zip(names, priors.tolist(), strict=True)))


def _cluster_section(fitted, figure_class):
    sizes = fitted.cluster_sizes_
    k = sizes.size
    figure = _figure(figure_class, min(3 + 0.4 * k, 12), 3)
    axis = figure.subplots()
    axis.bar(range(k), sizes, color="C0")
    axis.set(xlabel="centre", ylabel="rows", title="rows nearest each centre")
    _whole_numbers(axis)
    title = "Cluster sizes"
    caption = "The rows nearest each centre in the last Lloyd pass."
    return Section(title, _png(figure, title), caption, ("centre", "rows"),
                   [(i, int(size)) for i, size in enumerate(sizes)])


def _cell(value):
    if isinstance(value, float):
        return "null" if not math.isfinite(value) and value != float("inf") else f"{value:.10g}"
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _table(columns, rows):
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(value))}</td>" for value in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
img { max-width: 100%; } figure { margin: 0; } figcaption { color: #555; font-size: 0.9em; }
details { margin: 0.4em 0 1em; } .status { font-size: 1.05em; }
"""


def _count(number, singular, plural=None):
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


def render_html(fitted, model_dir, data, sections):
    """The page: a header, then each section's figure, caption and table (tables of figures folded)."""
    status = "converged" if fitted.converged_ else "stopped before converging"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>mrtrain report: {html.escape(str(model_dir))}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>mrtrain report: {html.escape(fitted.model.kind)} model</h1>",
        f'<p class="status">Model directory <code>{html.escape(str(model_dir))}</code>, trained on '
        f"<code>{html.escape(str(fitted.settings.get('data')))}</code>: {status} after "
        f"{_count(fitted.n_iter_, 'iteration')} ({_count(fitted.n_passes_, 'pass', 'passes')}), "
        f"{html.escape(str(fitted.stop_reason_))}."
        + (f" Evaluated on <code>{html.escape(str(data))}</code>." if data is not None else "") + "</p>",
    ]
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        if section.png is None:
            parts.append(f"<p>{html.escape(section.caption)}</p>{_table(section.columns, section.rows)}")
        else:
            encoded = base64.b64encode(section.png).decode("ascii")
            parts.append(
                f'<figure><img alt="{html.escape(section.title)}" src="data:image/png;base64,{encoded}">'
                f"<figcaption>{html.escape(section.caption)}</figcaption></figure>"
                f"<details><summary>Values</summary>{_table(section.columns, section.rows)}</details>"
            )
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
