"""Training a tree ensemble (``gbt``, ``random-forest``) as a series of MapReduce passes, PLANET's way.

1. **Bins** (one map-only pass, :class:`~mrtrain.mr_jobs.tree_bins.MRTreeBins`): every partition's value
   summary, merged in partition order; ``make_bins`` gives at most ``max_bins`` quantile bins per feature.
2. **Base score** (GBT only, one pass of :class:`~mrtrain.mr_jobs.tree_histograms.MRTreeHistograms` in its
   ``"base"`` phase): the objective's label statistics; a forest starts from 0.
3. **Levels** (one histogram pass each): the map tasks build the histograms of the nodes the growers ask for
   (:mod:`mrtrain.engine.tree_pass`); the driver's :class:`~mrtrain.engine.trees.grower.TreeGrower` s split
   them. GBT grows one tree per round (softmax: one per class, sharing the passes); the forest grows
   :data:`FOREST_TREES_PER_PASS` independent trees in the same passes (K > 2 classes: trees of vector
   leaves, the class frequencies, split by the Gini criterion: objective ``onehot_squared_error``). A pass
   after the last tree measures the validation loss (with ``validation_fraction``); early stopping keeps the
   best round.

The loop runs in a :class:`~mrtrain.training.run.TrainingRun` (:func:`fit_in_run`; :func:`fit_trees` makes
one for the Python API): its lock, background checkpoint writer, launcher or the trees' AllReduce session
(:class:`~mrtrain.tree_allreduce.TreeAllReduceSession`), and resume with the settings check. A checkpoint
is written after every pass (the bins, the finished ensemble, every growing tree's state, the validation
history; :data:`TREE_CHECKPOINTS`), so a run killed at any moment resumes to the same bits; every sum is
added in partition order, so every runner and any ``reducers`` give the same trees.
"""

import logging
from dataclasses import asdict, dataclass

import numpy as np

from mrtrain.allreduce import DEFAULT_TIMEOUT, check_settings
from mrtrain.engine.tree_pass import VALIDATION_ENTRIES, PassState, ensemble_arrays, ensemble_from_arrays
from mrtrain.engine.trees.binning import (
    DEFAULT_CAPACITY,
    Bins,
    BinSummary,
    check_max_bins,
    make_bins,
    merge_summaries,
)
from mrtrain.engine.trees.grower import GrowParams, TreeGrower, check_grow_params, pass_sizes, update_growers
from mrtrain.engine.trees.objectives import make_objective
from mrtrain.engine.trees.tree import ALL_OUTPUTS, Ensemble
from mrtrain.mr_jobs.tree_bins import MRTreeBins
from mrtrain.mr_jobs.tree_histograms import MRTreeHistograms
from mrtrain.names import dataset_names
from mrtrain.storage.dataset import Dataset
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import absolute
from mrtrain.training.resume import SettingsMismatchError
from mrtrain.training.run import CheckpointFormat, RunOptions, TrainingRun
from mrtrain.tree_allreduce import TreeAllReduceSession
from mrtrain.tree_fitted import TreeFittedModel, validate_tree_checkpoint
from mrtrain.tree_models import FOREST_OBJECTIVES, GBT_OBJECTIVES, TREE_MODELS, grows_forest  # noqa: F401

log = logging.getLogger(__name__)

#: Trees of a forest grown in the same passes (their histograms share each pass's vector).
FOREST_TREES_PER_PASS = 8
#: Most trees of an ensemble.
MAX_TREES = 10_000


#: The error of a checkpoint directory holding a tree training made with other data or settings.
SettingsMismatch = SettingsMismatchError


@dataclass(frozen=True)
class TreeConfig:
    """A tree ensemble's settings (validated by :meth:`check`); the options of ``mrtrain train``.

    ``objective`` None: ``logistic`` for two classes, ``softmax`` for more, ``squared_error`` for other
    labels (GBT); ``classification`` or ``regression`` likewise (forest).
    """

    model: str = "gbt"
    objective: str | None = None
    n_trees: int = 100
    learning_rate: float = 0.1
    max_depth: int = 6
    max_leaves: int | None = None
    max_bins: int = 255
    l2: float = 0.0
    min_child_weight: float = 1.0
    min_split_gain: float = 0.0
    subsample: float = 1.0
    colsample: float = 1.0
    max_features: object = None
    seed: int = 0
    validation_fraction: float = 0.0
    n_iter_no_change: int | None = None

    def check(self):
        """Return the config if every setting is valid, else raise ValueError naming it."""
        if self.model not in TREE_MODELS:
            raise ValueError(f"The 'model' parameter must be one of {list(TREE_MODELS)}. Got {self.model!r} "
                             "instead.")
        allowed = GBT_OBJECTIVES if self.model == "gbt" else FOREST_OBJECTIVES
        if self.objective is not None and self.objective not in allowed:
            raise ValueError(f"The 'objective' parameter of model {self.model!r} must be one of "
                             f"{list(allowed)}. Got {self.objective!r} instead.")
        n_trees = self.n_trees
        if isinstance(n_trees, bool) or not isinstance(n_trees, int) or not 1 <= n_trees <= MAX_TREES:
            raise ValueError(f"The 'n_trees' parameter must be an int in [1, {MAX_TREES}]. Got {n_trees!r} "
                             "instead.")
        check_max_bins(self.max_bins)
        check_grow_params(self.grow_params(1))
        if not (isinstance(self.subsample, int | float) and 0 < self.subsample <= 1):
            raise ValueError(f"The 'subsample' parameter must be a number in (0, 1]. Got {self.subsample!r} "
                             "instead.")
        if not (isinstance(self.validation_fraction, int | float) and 0 <= self.validation_fraction < 1):
            raise ValueError("The 'validation_fraction' parameter must be a number in [0, 1). Got "
                             f"{self.validation_fraction!r} instead.")
        if self.n_iter_no_change is not None and (
                isinstance(self.n_iter_no_change, bool) or not isinstance(self.n_iter_no_change, int)
                or self.n_iter_no_change < 1 or self.validation_fraction == 0):
            raise ValueError("The 'n_iter_no_change' parameter must be an int >= 1, with a "
                             "'validation_fraction' > 0. Got "
                             f"n_iter_no_change={self.n_iter_no_change!r} with "
                             f"validation_fraction={self.validation_fraction!r} instead.")
        if grows_forest(self.model):
            for name, default in (("learning_rate", 0.1), ("l2", 0.0), ("subsample", 1.0),
                                  ("validation_fraction", 0.0), ("min_split_gain", 0.0)):
                if getattr(self, name) != default:
                    raise ValueError(f"The {name!r} parameter does not apply to model 'random-forest' "
                                     "(each tree is grown on a bootstrap sample to the mean of its leaves); "
                                     f"leave it at {default!r}. Got {getattr(self, name)!r} instead.")
        elif self.max_features is not None:
            raise ValueError("The 'max_features' parameter applies to model 'random-forest' (use 'colsample' "
                             f"for gbt). Got {self.max_features!r} instead.")
        return self

    def grow_params(self, n_trees):
        """The growers' :class:`GrowParams`: a forest's leaves hold their mean divided by ``n_trees``, so the
        margin is the trees' average (λ = 0, the Hessian sum is the bootstrap weight)."""
        forest = grows_forest(self.model)
        return GrowParams(max_depth=self.max_depth, max_leaves=self.max_leaves, l2=0.0 if forest else self.l2,
                          min_child_weight=self.min_child_weight, min_split_gain=self.min_split_gain,
                          learning_rate=1.0 / n_trees if forest else self.learning_rate,
                          colsample=self.colsample, max_features=self.max_features, seed=self.seed)


def objective_of(config, dataset):
    """``(objective, n_classes, classes)``: the engine objective, softmax's classes and the label classes
    (None for regression) of ``config`` on ``dataset``.

    Raises
    ------
    DataError
        A classification objective on labels that are no classes, a regression on class names.
    """
    objective = config.objective
    classifying = objective in (None, "logistic", "softmax", "classification")
    if objective is None:  # class names or two label values: a classifier; else a regression
        classifying = dataset.class_names is not None or (
            dataset.classes is not None and len(dataset.classes) == 2)
    if classifying:
        if dataset.classes is None or len(dataset.classes) < 2:
            found = "non-integer or over 1000 label values" if dataset.classes is None else "one"
            raise DataError(f"{dataset.uri}: field '{dataset.label_name}': expected at least two class "
                            f"labels for {config.model} classification, found {found}")
        k = len(dataset.classes)
        if grows_forest(config.model):  # leaves of class frequencies: one, or a vector of K for K > 2
            return ("squared_error", None, dataset.classes) if k == 2 else (
                "onehot_squared_error", k, dataset.classes)
        if objective == "logistic" and k != 2:
            raise DataError(f"{dataset.uri}: field '{dataset.label_name}': expected two classes for the "
                            f"logistic objective, found {k} (use softmax)")
        return ("logistic" if k == 2 and objective != "softmax" else "softmax", k if k > 2 or objective ==
                "softmax" else None, dataset.classes)
    if dataset.class_names is not None:
        raise DataError(f"{dataset.uri}: field '{dataset.label_name}': expected numeric labels for "
                        f"{config.model} regression, found class names")
    name = "squared_error" if objective in (None, "regression") else objective
    return name, None, None


#: Label values a warning lists before it leaves the rest out.
LISTED_LABELS = 10


def warn_integer_labels(config, dataset):
    """Log a warning when the default objective makes a regression of numeric labels that may be classes.

    ``ingest`` records the values of a numeric label that takes at most 1000 integer values as the dataset's
    classes; with no ``objective`` two of them make a classifier, more a regression (the documented default:
    a count may be such a label too). So more than two, without an objective, are a regression the user may
    not have meant: the warning names the label's values, the objective chosen and the objectives to pass,
    for a classifier or to keep the regression.
    """
    if config.objective is not None or dataset.class_names is not None or dataset.classes is None or len(
            dataset.classes) <= 2:
        return
    values = [f"{value:g}" for value in dataset.classes]
    shown = ", ".join(values[:LISTED_LABELS]) + (", ..." if len(values) > LISTED_LABELS else "")
    classify, regress = ("classification", "regression") if grows_forest(config.model) else (
        "softmax", "squared_error")
    log.warning("%s: field '%s': the label takes %d integer values [%s], so %s trains a regression "
                "(objective %s) by default; pass --objective %s for a classifier of these classes, or "
                "--objective %s to keep the regression", dataset.uri, dataset.label_name, len(values), shown,
                config.model, regress, classify, regress)


class _Training:
    """The state of one tree training between passes (what a checkpoint holds)."""

    def __init__(self, config, dataset, settings, objective, n_classes, classes):
        self.config, self.dataset, self.settings = config, dataset, settings
        self.objective, self.n_classes, self.classes = objective, n_classes, classes
        engine_objective = make_objective(objective, n_classes)
        self.n_outputs = engine_objective.n_outputs
        #: The width of every tree's leaves: K for vector leaves (a K-class forest), else 1.
        self.leaf_width = self.n_outputs if engine_objective.vector_leaves else 1
        self.forest = grows_forest(config.model)
        self.bins = None
        self.ensemble = None
        self.growers = []
        self.round = 0
        self.passes = 0
        self.history = []
        self.done = False
        self.stop_reason = None
        self.params = config.grow_params(config.n_trees)

    # -- checkpoints ----------------------------------------------------------------------------------------
    def arrays(self):
        arrays = {}
        if self.bins is not None:
            arrays.update({f"bins_{k}": v for k, v in self.bins.to_arrays().items()})
        if self.ensemble is not None:
            arrays.update(ensemble_arrays(self.ensemble))
        for k, grower in enumerate(self.growers):
            arrays.update({f"grower{k}_{name}": v for name, v in grower.to_arrays().items()})
        return arrays

    def meta(self):
        return {"family": "trees", "settings": self.settings, "round": self.round, "passes": self.passes,
                "history": self.history, "done": self.done, "stop_reason": self.stop_reason,
                "growers": [[g.tree_index, output] for g, output in zip(self.growers, self.outputs,
                                                                        strict=True)],
                "has_bins": self.bins is not None, "has_ensemble": self.ensemble is not None}

    def restore(self, checkpoint):
        meta, arrays = checkpoint.meta, checkpoint.arrays
        self.round, self.passes, self.history = meta["round"], meta["passes"], list(meta["history"])
        self.done, self.stop_reason = meta["done"], meta["stop_reason"]
        if meta["has_bins"]:
            self.bins = Bins.from_arrays({"n_edges": arrays["bins_n_edges"], "edges": arrays["bins_edges"]})
        if meta["has_ensemble"]:
            self.ensemble = ensemble_from_arrays(arrays)
        self.growers, self.outputs = [], []
        for k, (_, output) in enumerate(meta["growers"]):
            prefix = f"grower{k}_"
            own = {n[len(prefix):]: v for n, v in arrays.items() if n.startswith(prefix)}
            self.growers.append(TreeGrower.from_arrays(self.bins, self.params, own, self.leaf_width))
            self.outputs.append(output)

    outputs = ()

    # -- what the next pass needs ---------------------------------------------------------------------------
    def state(self, phase):
        growing = [(g.tree_index, o, g.tree, g.build_nodes) for g, o in zip(self.growers, self.outputs,
                                                                             strict=True) if not g.finished]
        sampling = "bootstrap" if self.forest else ("subsample" if self.config.subsample < 1 else "none")
        return PassState(phase, objective=self.objective, n_classes=self.n_classes, classes=self.classes,
                         seed=self.config.seed, sampling=sampling, subsample=self.config.subsample,
                         validation_fraction=self.config.validation_fraction, capacity=DEFAULT_CAPACITY,
                         bins=self.bins, ensemble=self.ensemble, growing=growing, independent=self.forest)

    def start_round(self):
        """The growers of the next round: GBT's tree per output, or the forest's next batch of trees (a
        K-class forest's trees have vector leaves and add to all outputs)."""
        if self.forest:
            first = self.round * FOREST_TREES_PER_PASS
            trees = range(first, min(first + FOREST_TREES_PER_PASS, self.config.n_trees))
            if self.leaf_width > 1:
                pairs = [(t, ALL_OUTPUTS) for t in trees]
            else:
                pairs = [(t * self.n_outputs + o, o) for t in trees for o in range(self.n_outputs)]
        else:
            pairs = [(self.round * self.n_outputs + o, o) for o in range(self.n_outputs)]
        self.growers = [TreeGrower(self.bins, self.params, index, self.leaf_width) for index, _ in pairs]
        self.outputs = [o for _, o in pairs]

    @property
    def n_rounds(self):
        if self.forest:
            return -(-self.config.n_trees // FOREST_TREES_PER_PASS)
        return self.config.n_trees

    def finish_round(self):
        trees = [self.ensemble.tree(t) for t in range(self.ensemble.n_trees)] + [g.tree for g in self.growers]
        outputs = list(self.ensemble.tree_output) + list(self.outputs)
        self.ensemble = Ensemble.from_trees(trees, outputs, self.ensemble.base_score, self.dataset.n_features)
        self.growers, self.outputs = [], []
        self.round += 1


def _settings(config, dataset, objective, n_classes, classes):
    return {"family": "trees", **asdict(config), "objective_used": objective, "n_classes": n_classes,
            "classes": classes, "n_features": dataset.n_features, "data": dataset.uri,
            "data_checksum": dataset.checksum, "encoding": dataset.encoding_digest,
            "forest_trees_per_pass": FOREST_TREES_PER_PASS, **dataset_names(dataset)}


#: How :class:`~mrtrain.training.run.TrainingRun` checks a tree training's checkpoints (their own schema:
#: bins, trees, growers), read back for resume and before every write.
TREE_CHECKPOINTS = CheckpointFormat(read=validate_tree_checkpoint, write=validate_tree_checkpoint)


def fit_trees(data, config, *, runner="inline", conf_path=None, reducers=1, checkpoint_dir=None,
              partition_cache=True, break_lock=False, callback=None, max_passes=None, allreduce=False,
              allreduce_address=None, allreduce_tasks=None, allreduce_timeout=DEFAULT_TIMEOUT,
              job_times=None):
    """Train the tree ensemble of ``config`` on the dataset at ``data`` (module docstring).

    Parameters
    ----------
    data : str
        A dataset directory (``mrtrain ingest``; ``--keep-missing`` datasets too).
    config : TreeConfig
    runner, conf_path, reducers, partition_cache, break_lock
        As :class:`mrtrain.trainer.Trainer`'s.
    allreduce, allreduce_address, allreduce_tasks, allreduce_timeout
        Serve the histogram passes by one AllReduce job (:mod:`mrtrain.tree_allreduce`; the bins and base
        score passes stay jobs): the same trees.
    checkpoint_dir : str, optional
        Checkpoint after every pass; a run with the same data and settings resumes the newest checkpoint.
    callback : callable, optional
        ``callback(training)`` after every pass (its checkpoint is being written in the background).
    max_passes : int, optional
        Stop after this many passes of this run (tests of resuming).
    job_times : list, optional
        Receives the :class:`mrtrain.launcher.JobTime` of every job the training ran (for the CLI's
        ``--allreduce`` hint, :mod:`mrtrain.allreduce_hint`), also when it fails.

    Returns
    -------
    TreeFittedModel
    """
    config = config.check()
    if allreduce:
        check_settings(runner=runner, address=allreduce_address, tasks=allreduce_tasks,
                       timeout=allreduce_timeout)
    options = RunOptions(runner=runner, conf_path=conf_path, checkpoint_dir=checkpoint_dir,
                         break_lock=break_lock, reducers=reducers, partition_cache=partition_cache,
                         allreduce=allreduce, allreduce_address=allreduce_address,
                         allreduce_tasks=allreduce_tasks, allreduce_timeout=allreduce_timeout)
    run = TrainingRun(Dataset.open(absolute(data)), options)
    try:
        return fit_in_run(run, config, callback=callback, max_passes=max_passes)
    finally:
        if job_times is not None:
            job_times.extend(run.job_times)


def fit_in_run(run, config, *, callback=None, max_passes=None):
    """Train the tree ensemble of ``config`` (checked) inside ``run``, a
    :class:`~mrtrain.training.run.TrainingRun` not yet open: its lock, checkpoint writer (the tree schema,
    :data:`TREE_CHECKPOINTS`), launcher or AllReduce session, and its resume with the settings check (every
    setting must match). ``callback`` and ``max_passes``: :func:`fit_trees`'s."""
    dataset = run.dataset
    if not dataset.has_label:
        raise DataError(f"{dataset.uri}: field '{dataset.label_name}': expected labels to train "
                        f"{config.model}, found a dataset ingested without its label column (for predict "
                        "only)")
    objective, n_classes, classes = objective_of(config, dataset)
    warn_integer_labels(config, dataset)
    settings = _settings(config, dataset, objective, n_classes, classes)
    training = _Training(config, dataset, settings, objective, n_classes, classes)
    spec = {"kind": config.model, "n_features": dataset.n_features, "classes": classes,
            "fit_intercept": False}
    with run.open(spec, reducers=run.reducers(2 * VALIDATION_ENTRIES, "histogram"),
                  checkpoints=TREE_CHECKPOINTS):
        checkpoint, _ = run.resume(settings, tuple(settings))
        if checkpoint is not None:
            training.restore(checkpoint)
            log.info("resuming %s after pass %d", checkpoint.uri, training.passes)
        if not training.done:
            with run.allreduce(session=TreeAllReduceSession, state=training.state("bins")):
                _run(training, run, callback, max_passes)
    return TreeFittedModel(training.ensemble, training.bins, objective, classes, settings, training.history,
                           training.stop_reason, training.passes)


def _pass(launcher, job, state, map_only=False, length=None):
    header, vector = state.header(), state.vector()
    task = {"trees": header, **({} if length is None else {"length": length})}
    if map_only:
        records = launcher.run(job, vector[None, :], {**task, "shards": 1}, ["--map-only"], reducers=0)
        tagged = sorted((value for _, value in records), key=lambda item: item[0])
        return [v for _, v in tagged]
    return launcher.sum_vector(job, vector[None, :], task)


def _run(training, run, callback, max_passes):
    config, dataset = training.config, training.dataset
    launcher, passes = run.launcher, run.passes
    ran = 0

    def saved():
        nonlocal ran
        training.passes += 1
        ran += 1
        run.save(training.passes, training.arrays(), training.meta())
        if callback is not None:
            callback(training)
        return max_passes is not None and ran >= max_passes

    if training.bins is None:
        vectors = _pass(launcher, MRTreeBins, training.state("bins"), map_only=True)
        if len(vectors) != len(dataset.partitions):
            raise RuntimeError(f"MRTreeBins returned {len(vectors)} summaries; expected one per partition "
                               f"({len(dataset.partitions)})")
        summary = merge_summaries([BinSummary.from_vector(v) for v in vectors])
        training.bins = make_bins(summary, config.max_bins)
        if saved():
            return
    if training.ensemble is None:
        if training.forest:
            base = np.zeros(training.n_outputs)
        else:
            stats = _pass(launcher, MRTreeHistograms, training.state("base"))
            base = make_objective(training.objective, training.n_classes).base_score(stats)
        training.ensemble = Ensemble.from_trees([], [], base, dataset.n_features)
        if saved():
            return
    while not training.done:
        if not training.growers and training.round < training.n_rounds:
            training.start_round()
        fresh = all(g.n_nodes == 1 and g.build_nodes == [0] for g in training.growers)
        length = sum(pass_sizes(training.growers)) + VALIDATION_ENTRIES
        vector = _pass(passes, MRTreeHistograms, training.state("grow"), length=length)
        loss, weight = vector[-VALIDATION_ENTRIES:]
        if config.validation_fraction and fresh:  # the margin of the rounds so far: one more point
            training.history.append(float(loss / weight) if weight > 0 else None)
            if _early_stop(training):
                if saved():
                    return
                continue
        if not training.growers:
            training.done, training.stop_reason = True, f"{training.round} rounds"
        elif update_growers(training.growers, vector[:-VALIDATION_ENTRIES]):
            training.finish_round()
            if training.round >= training.n_rounds and not config.validation_fraction:
                training.done, training.stop_reason = True, f"{training.round} rounds"
        if saved():
            return


def _early_stop(training):
    """Whether the validation history says stop (then only the best round's trees are kept)."""
    history, patience = training.history, training.config.n_iter_no_change
    if not patience or None in history:
        return False
    best = int(np.argmin(history))
    if len(history) - 1 - best < patience:
        return False
    _keep_round(training, best)
    training.growers, training.outputs = [], []
    training.done = True
    training.stop_reason = (f"early stop: the validation loss was best after round {best} of "
                            f"{len(history) - 1}")
    return True


def _keep_round(training, best):
    """Keep the first ``best`` rounds' trees."""
    per_round = training.n_outputs
    keep = best * per_round
    trees = [training.ensemble.tree(t) for t in range(keep)]
    training.ensemble = Ensemble.from_trees(trees, training.ensemble.tree_output[:keep],
                                            training.ensemble.base_score, training.dataset.n_features)
    training.round = best
