"""``mrtrain report`` of a tree ensemble: feature importance, the validation loss per round, metrics.

The page is :func:`mrtrain.report.render_html`'s, with the sections of a tree ensemble: the metrics of one
evaluate pass (with ``--data``), the features of largest total gain (and their split counts), the
validation loss after each round (with ``--validation-fraction``) and the settings.
"""

from types import SimpleNamespace

import numpy as np

from mrtrain.names import feature_names
from mrtrain.report_text import literal

#: Features shown in the importance plot (largest total gain first).
TOP_FEATURES = 20


def tree_sections(fitted, metrics, figure_class, section, png, figure):
    """The report's sections for ``fitted`` (a :class:`~mrtrain.tree_fitted.TreeFittedModel`); ``section``,
    ``png`` and ``figure`` are :mod:`mrtrain.report`'s Section type and drawing helpers."""
    sections = []
    if metrics is not None:
        rows = [(name, value) for name, value in metrics.items() if not isinstance(value, list | dict)]
        sections.append(section("Metrics", None, "Computed by one evaluate pass on the dataset.",
                                ("metric", "value"), rows))
    gain, count = fitted.feature_importance()
    names = feature_names(fitted.settings, len(gain))
    order = [j for j in np.argsort(-gain, kind="stable") if count[j]][:TOP_FEATURES]
    if order:
        shown = [(names[j], float(gain[j]), int(count[j])) for j in order]
        fig = figure(figure_class, 8, 0.9 + 0.28 * len(shown))
        axis = fig.subplots()
        positions = np.arange(len(shown))[::-1]
        axis.barh(positions, [g for _, g, _ in shown], color="C0")
        axis.set_yticks(positions, [literal(name) for name, _, _ in shown])
        axis.set(xlabel="total gain of the feature's splits",
                 title=f"feature importance ({len(shown)} of {int((count > 0).sum())} features used)")
        title = "Feature importance"
        caption = (f"The {len(shown)} features of largest total gain over all {fitted.ensemble.n_trees} "
                   "trees (the sum of their splits' gains), with how many splits use each.")
        sections.append(section(title, png(fig, title), caption, ("feature", "total gain", "splits"), shown))
    if fitted.history:
        fig = figure(figure_class, 7, 3.5)
        axis = fig.subplots()
        rounds = np.arange(len(fitted.history))
        axis.plot(rounds, fitted.history, marker="o", markersize=3)
        best = int(np.argmin(fitted.history))
        axis.axvline(best, color="0.5", linestyle="--", linewidth=0.8)
        axis.set(xlabel="rounds", ylabel="validation loss",
                 title=f"validation loss (best after {best} rounds)")
        title = "Validation loss per round"
        caption = ("The mean loss of the held-out rows after each round (0: the base score); the model keeps "
                   "the rounds up to the best when early stopping ended the training.")
        sections.append(section(title, png(fig, title), caption, ("round", "validation loss"),
                                list(zip(rounds.tolist(), fitted.history, strict=True))))
    settings = [(key, value) for key, value in sorted(fitted.settings.items())
                if not isinstance(value, list | dict) and key not in ("data_checksum",)]
    sections.append(section("Training", None, f"{fitted.ensemble.n_trees} trees in {fitted.passes} passes: "
                            f"{fitted.stop_reason}.", ("setting", "value"), settings))
    return sections


def page_header(fitted):
    """What :func:`mrtrain.report.render_html` reads of a fitted model, for a tree ensemble."""
    return SimpleNamespace(converged_=True, n_iter_=fitted.ensemble.n_trees, n_passes_=fitted.passes,
                           stop_reason_=fitted.stop_reason, model=SimpleNamespace(kind=fitted.model),
                           settings=fitted.settings)
