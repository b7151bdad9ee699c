"""The tree ensembles' family: ``gbt`` (gradient-boosted trees) and ``random-forest``.

Its config is :class:`mrtrain.tree_training.TreeConfig` (validated there, for the CLI and the Python API
alike); its fit loop is :func:`mrtrain.tree_training.fit_in_run` (a bins pass, a base-score pass, one
histogram pass per level, a checkpoint after each), which returns a
:class:`mrtrain.tree_fitted.TreeFittedModel`. The loop runs in the trainer's
:class:`~mrtrain.training.run.TrainingRun` (its lock, checkpoint writer, launcher or the trees' AllReduce
session, resume with the settings check); its checkpoints follow their own schema (bins, trees, growers),
which the run reads and writes through :data:`mrtrain.tree_training.TREE_CHECKPOINTS`. The family takes
datasets with missing values (``ingest --keep-missing``). Its checkpoints are validated and read back by
:meth:`TreeFamily.validate_checkpoint` and :meth:`TreeFamily.load` (:mod:`mrtrain.tree_fitted`). Its
``mrtrain train`` options are :func:`mrtrain.tree_cli.add_tree_options`'s.

Shared parameters keep the other families' defaults: ``l2`` 0 (LightGBM's ``lambda_l2``; XGBoost's is 1),
``seed`` 0, ``validation_fraction`` None (no early stopping) and ``n_iter_no_change`` 5 (with a
validation fraction).
"""

from mrtrain.families.family import Config, Family
from mrtrain.tree_cli import train_trees
from mrtrain.tree_fitted import TreeFittedModel, tree_summary, validate_tree_checkpoint
from mrtrain.tree_models import TREE_MODELS
from mrtrain.tree_training import TreeConfig, fit_in_run

#: The tree parameters of :class:`mrtrain.Trainer` beyond the shared ones; None: :class:`TreeConfig`'s
#: default (``n_trees`` 100, ``learning_rate`` 0.1, ``max_depth`` 6, ``max_bins`` 255, ...), so that the CLI,
#: which passes every parameter it parsed, gives None for an option left out.
TREE_PARAMETERS = dict.fromkeys(("objective", "n_trees", "learning_rate", "max_depth", "max_leaves",
                                 "max_bins", "min_child_weight", "min_split_gain", "subsample", "colsample",
                                 "max_features"))


def tree_config(model, values):
    """The :class:`TreeConfig` of ``values`` (every tree parameter and ``l2``, ``seed``,
    ``validation_fraction``, ``n_iter_no_change``), checked."""
    settings = {name: values[name] for name in TREE_PARAMETERS if values.get(name) is not None}
    if values.get("l2") is not None and model == "gbt":
        settings["l2"] = float(values["l2"])
    if values.get("seed") is not None:
        settings["seed"] = values["seed"]
    if values.get("validation_fraction") is not None:
        settings["validation_fraction"] = values["validation_fraction"]
        settings["n_iter_no_change"] = values.get("n_iter_no_change") or 5
    return TreeConfig(model=model, **settings).check()


class TreeFamily(Family):
    """Gradient-boosted trees and random forests (module docstring)."""

    models = TREE_MODELS
    title = "tree ensemble"
    parameters = {**TREE_PARAMETERS, "l2": 0.0, "seed": 0, "validation_fraction": None, "n_iter_no_change": 5}
    takes_missing = True
    report_style = "trees"
    train_command = staticmethod(train_trees)

    def config(self, model, values):
        if model == "random-forest" and values.get("l2"):
            raise ValueError("The 'l2' parameter does not apply to model 'random-forest' (its leaves hold "
                             f"means). Got l2={values['l2']!r} instead.")
        return Config(model, tree=tree_config(model, values))

    def validate_checkpoint(self, checkpoint):
        validate_tree_checkpoint(checkpoint)

    def load(self, checkpoint):
        return TreeFittedModel.from_checkpoint(checkpoint)

    def evaluate_result(self, fitted, metrics):
        return {"model": fitted.model, "classes": fitted.classes,
                **({} if fitted.class_names is None else {"class_names": fitted.class_names}),
                "metrics": metrics}

    def inspect_result(self, fitted, directory, checkpoints):
        return {**fitted.to_dict(), "checkpoints": checkpoints}

    def summary(self, result):
        return tree_summary(result)

    def fit(self, run, config):
        return fit_in_run(run, config.tree)
