"""What one map task computes in a tree ensemble's pass, and the state the driver ships for it.

A tree training (:mod:`mrtrain.tree_training`) runs three kinds of pass over the partitions, each one vector
per partition, the vectors added (or merged) in partition order:

- ``"bins"``: the partition's :class:`~mrtrain.engine.trees.binning.BinSummary` as one vector
  (:meth:`~mrtrain.engine.trees.binning.BinSummary.to_vector`); the driver merges them
  (``merge_summaries``) and makes the bins.
- ``"base"``: the objective's summable label statistics (``Objective.base_stats``) of the training rows,
  for the base score.
- ``"grow"``: the rows are binned with the training bins, routed through the trees being grown to their
  current nodes, and for every tree the histograms of its ``build_nodes`` are built
  (:func:`~mrtrain.engine.trees.histograms.build_histograms`), the gradients taken at each row's margin of
  the finished trees; the trees' vectors are concatenated in tree order. Two more entries end the vector:
  ``[Σ w·loss, Σ w]`` of the held-out validation rows at the finished trees' margin (zeros without a
  validation fraction), the early-stopping curve. A tree of vector leaves (output
  :data:`~mrtrain.engine.trees.tree.ALL_OUTPUTS`, a K-class forest's) takes all ``K`` gradients
  (``K + 2`` channels per cell).

Row weights: the user's weight times, per tree, the random forest's Poisson(1) bootstrap count or GBT's
subsample mask (:mod:`mrtrain.engine.trees.sampling`); validation rows (``validation_fraction``, a seeded row
hash of its own stream) weigh 0 in every tree. All draws hash ``(seed, tree, partition id, row)``, so they
are the same on every runner.

The state travels as a JSON header (:meth:`PassState.header`) and one float64 vector
(:meth:`PassState.vector`: the bins, the finished ensemble and the growing trees' arrays; integers below
2**53 are exact), the shape of every job's task file and parameter file.
"""

import numpy as np

from mrtrain.engine.trees.binning import Bins, summarize
from mrtrain.engine.trees.histograms import build_histograms
from mrtrain.engine.trees.objectives import EPSILON, OBJECTIVES, make_objective
from mrtrain.engine.trees.sampling import bootstrap_weights, row_uniform, subsample_mask
from mrtrain.engine.trees.tree import ALL_OUTPUTS, FIELD_TYPES, Ensemble, Tree, node_values, route_binned

PHASES = ("bins", "base", "grow", "evaluate")
#: Bins of the predicted probability in an evaluate pass's ROC histograms (positives, negatives).
ROC_BINS = 1000
#: Stream tag of the validation rows' hash (the sampling module uses 1..3).
VALIDATION_STREAM = 7
#: Entries that end a grow pass's vector: the validation rows' Σ w·loss and Σ w.
VALIDATION_ENTRIES = 2


def pack(arrays):
    """``(layout, vector)``: named arrays as one float64 vector and ``[[name, length], ...]``."""
    layout = [[name, int(np.asarray(value).size)] for name, value in arrays.items()]
    vector = (np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in arrays.values()])
              if arrays else np.zeros(0))
    return layout, vector


def unpack(layout, vector):
    """The named float64 arrays of :func:`pack`'s ``(layout, vector)``."""
    vector = np.asarray(vector, dtype=np.float64).ravel()
    total = sum(length for _, length in layout)
    if vector.size != total:
        raise ValueError(f"A packed tree state of layout {[n for n, _ in layout]} has {total} values. Got "
                         f"{vector.size} instead.")
    arrays, start = {}, 0
    for name, length in layout:
        arrays[name] = vector[start:start + length]
        start += length
    return arrays


def tree_arrays(tree, prefix):
    """The fields of a :class:`~mrtrain.engine.trees.tree.Tree` as named arrays under ``prefix``."""
    return {f"{prefix}{name}": getattr(tree, name) for name, _ in FIELD_TYPES}


def tree_from_arrays(arrays, prefix):
    """The :class:`~mrtrain.engine.trees.tree.Tree` of :func:`tree_arrays`."""
    n_nodes = np.asarray(arrays[f"{prefix}feature"]).size
    return Tree(*(node_values(arrays[f"{prefix}{name}"], n_nodes) if name == "value"
                  else np.asarray(arrays[f"{prefix}{name}"]).astype(dtype) for name, dtype in FIELD_TYPES))


def ensemble_from_arrays(arrays, prefix="ensemble_"):
    """The :class:`~mrtrain.engine.trees.tree.Ensemble` stored under ``prefix`` by :func:`ensemble_arrays`."""
    return Ensemble.from_arrays({name[len(prefix):]: value for name, value in arrays.items()
                                 if name.startswith(prefix)})


def ensemble_arrays(ensemble, prefix="ensemble_"):
    """An :class:`~mrtrain.engine.trees.tree.Ensemble`'s arrays under ``prefix``."""
    return {f"{prefix}{name}": value for name, value in ensemble.to_arrays().items()}


class PassState:
    """What a map task needs for one pass (see the module docstring).

    Parameters
    ----------
    phase : {"bins", "base", "grow"}
    objective : str
        An objective of :mod:`mrtrain.engine.trees.objectives`.
    n_classes : int or None
        Softmax's (and ``onehot_squared_error``'s) classes.
    classes : list of float or None
        The label values of classes ``0 .. K-1`` (classification); None: labels are used as they are.
    seed : int
    sampling : {"none", "subsample", "bootstrap"}
    subsample : float in (0, 1]
    validation_fraction : float in [0, 1)
    capacity : int
        The bin summary's capacity (``"bins"`` pass).
    bins : Bins or None
    ensemble : Ensemble or None
        The finished trees (``"grow"``).
    growing : list of (tree_index, output, Tree, build_nodes)
        The trees being grown in this pass (``output`` −1: vector leaves, all outputs).
    independent : bool
        The trees do not depend on the finished ones (a random forest): gradients at the base score; its
        classifier's margin is the class frequency (``"evaluate"``).
    """

    def __init__(self, phase, *, objective, n_classes=None, classes=None, seed=0, sampling="none",
                 subsample=1.0, validation_fraction=0.0, capacity=8192, bins=None, ensemble=None, growing=(),
                 independent=False):
        if phase not in PHASES:
            raise ValueError(f"The 'phase' parameter must be one of {list(PHASES)}. Got {phase!r} instead.")
        self.phase = phase
        self.objective_name = objective
        self.n_classes = n_classes
        self.objective = make_objective(objective, n_classes)
        self.classes = None if classes is None else [float(c) for c in classes]
        self.seed = int(seed)
        self.sampling = sampling
        self.subsample = float(subsample)
        self.validation_fraction = float(validation_fraction)
        self.capacity = int(capacity)
        self.bins = bins
        self.ensemble = ensemble
        self.growing = [(int(t), int(o), tree, [int(n) for n in nodes]) for t, o, tree, nodes in growing]
        self.independent = bool(independent)

    # -- the wire -------------------------------------------------------------------------------------------
    def _arrays(self):
        arrays = {}
        if self.bins is not None:
            arrays.update({f"bins_{k}": v for k, v in self.bins.to_arrays().items()})
        if self.ensemble is not None:
            arrays.update(ensemble_arrays(self.ensemble))
        for k, (_, _, tree, _) in enumerate(self.growing):
            arrays.update(tree_arrays(tree, f"growing{k}_"))
        return arrays

    def header(self):
        """The JSON-able header: everything but the arrays, and their layout."""
        return {"phase": self.phase, "objective": self.objective_name, "n_classes": self.n_classes,
                "classes": self.classes, "seed": self.seed, "sampling": self.sampling,
                "subsample": self.subsample, "validation_fraction": self.validation_fraction,
                "capacity": self.capacity, "has_bins": self.bins is not None,
                "has_ensemble": self.ensemble is not None, "independent": self.independent,
                "growing": [[t, o, nodes] for t, o, _, nodes in self.growing],
                "layout": pack(self._arrays())[0]}

    def vector(self):
        """The arrays as one float64 vector (the layout is in :meth:`header`)."""
        return pack(self._arrays())[1]

    @classmethod
    def from_wire(cls, header, vector):
        """The state of :meth:`header` and :meth:`vector`."""
        arrays = unpack(header["layout"], vector)
        bins = (Bins.from_arrays({"n_edges": arrays["bins_n_edges"], "edges": arrays["bins_edges"]})
                if header["has_bins"] else None)
        ensemble = ensemble_from_arrays(arrays) if header["has_ensemble"] else None
        growing = [(t, o, tree_from_arrays(arrays, f"growing{k}_"), nodes)
                   for k, (t, o, nodes) in enumerate(header["growing"])]
        return cls(header["phase"], objective=header["objective"], n_classes=header["n_classes"],
                   classes=header["classes"], seed=header["seed"], sampling=header["sampling"],
                   subsample=header["subsample"], validation_fraction=header["validation_fraction"],
                   capacity=header["capacity"], bins=bins, ensemble=ensemble, growing=growing,
                   independent=header["independent"])

    # -- the map side ---------------------------------------------------------------------------------------
    def labels(self, y):
        """Labels as the objective takes them: class indices for classification.

        Raises
        ------
        ValueError
            A label that is none of the classes.
        """
        y = np.asarray(y, dtype=np.float64)
        if self.classes is None:
            return y
        index = np.searchsorted(self.classes, y)
        index = np.minimum(index, len(self.classes) - 1)
        if len(y) and not np.array_equal(np.asarray(self.classes)[index], y):
            bad = y[np.asarray(self.classes)[index] != y][0]
            raise ValueError(f"expected one of the training classes {self.classes}, found {float(bad)!r}")
        return index.astype(np.float64)

    def validation_rows(self, partition_id, n_rows):
        """Whether each row of the partition is a held-out validation row."""
        if self.validation_fraction <= 0:
            return np.zeros(n_rows, dtype=bool)
        return row_uniform(self.seed, VALIDATION_STREAM, 0, partition_id, n_rows) < self.validation_fraction

    def tree_weights(self, tree_index, partition_id, w, validation):
        """Every row's weight in tree ``tree_index``: user weight × bootstrap or subsample, 0 if held out."""
        n = len(validation)
        weight = np.ones(n) if w is None else np.asarray(w, dtype=np.float64).copy()
        if self.sampling == "bootstrap":
            weight = weight * bootstrap_weights(self.seed, tree_index, partition_id, n)
        elif self.sampling == "subsample":
            weight = weight * subsample_mask(self.seed, tree_index, partition_id, n, self.subsample)
        weight[validation] = 0.0
        return weight

    def partition_vector(self, X, y, w, partition_id, memory=None):
        """The vector one partition contributes to this pass (module docstring).

        ``memory``: the partition's :class:`~mrtrain.engine.tree_memory.PartitionMemory` (an AllReduce task
        keeps one per partition across passes): the same vector, without binning the rows and routing them
        through every tree again each pass."""
        if self.phase == "bins":  # rows of weight 0 are no data: their values make no bins
            return summarize(X if w is None else X[np.asarray(w) > 0], self.capacity).to_vector()
        labels = self.labels(y) if memory is None else memory.labels(self, y)
        if self.phase == "evaluate":
            return self.metric_sums(X, labels, w)
        validation = self.validation_rows(partition_id, len(labels))
        if self.phase == "base":
            weight = np.ones(len(labels)) if w is None else np.asarray(w, dtype=np.float64).copy()
            weight[validation] = 0.0
            return self.objective.base_stats(labels, weight)
        binned = self.bins.transform(X) if memory is None else memory.binned(self.bins, X)
        missing_bins = self.bins.n_edges + 1
        if self.independent:
            margin = np.broadcast_to(self.ensemble.base_score, (len(labels), self.ensemble.n_outputs))
        elif memory is None:
            margin = self.ensemble.predict_margin_binned(binned, missing_bins)
        else:
            margin = memory.margin(self.ensemble, binned, missing_bins)
        if memory is None:
            grad, hess = self.objective.gradients(labels, margin)
        else:
            grad, hess = memory.gradients(self.objective, labels, margin)
            memory.forget_routes([tree_index for tree_index, _, _, _ in self.growing])
        parts = []
        for tree_index, output, tree, nodes in self.growing:
            row_node = (route_binned(tree, binned, missing_bins) if memory is None
                        else memory.route(tree_index, tree, binned, missing_bins))
            weight = self.tree_weights(tree_index, partition_id, w, validation)
            vector_leaves = output == ALL_OUTPUTS
            parts.append(build_histograms(binned, grad if vector_leaves else grad[:, output],
                                          hess[:, 0 if vector_leaves else output], weight, row_node, nodes,
                                          self.bins.offsets))
        parts.append(self.validation_sums(labels, margin, w, validation))
        return np.concatenate(parts)

    def validation_sums(self, labels, margin, w, validation):
        """``[Σ w·loss, Σ w]`` of the validation rows at ``margin``, summed in row order."""
        if not validation.any():
            return np.zeros(VALIDATION_ENTRIES)
        weight = (np.ones(len(labels)) if w is None else np.asarray(w, dtype=np.float64))[validation]
        loss = pointwise_loss(self.objective_name, labels[validation], margin[validation])
        return np.cumsum(np.column_stack((weight * loss, weight)), axis=0)[-1]


    def outputs(self, X):
        """``(margin, prediction)`` of rows ``X``: P(class 1) (n,) or class probabilities (n, K) for a
        classifier, else the predicted mean (n,)."""
        forest_classes = self.independent and self.classes is not None
        return ensemble_outputs(self.ensemble, self.objective_name, forest_classes, X)

    def metric_sums(self, X, labels, w):
        """``[Σw, Σw·loss, Σw·correct, Σw·(ŷ − y)², Σw·y, Σw·y²]`` (+ binary: the ROC histograms of
        P(class 1), positives then negatives, :data:`ROC_BINS` each), summed in row order."""
        weight = np.ones(len(labels)) if w is None else np.asarray(w, dtype=np.float64)
        margin, prediction = self.outputs(X)
        if self.classes is not None:
            p = prediction if prediction.ndim == 2 else np.column_stack((1 - prediction, prediction))
            p = np.clip(p, EPSILON, 1.0)
            index = labels.astype(np.int64)
            loss = -np.log(p[np.arange(len(labels)), index])
            correct = (np.argmax(p, axis=1) == index).astype(np.float64)
            estimate = np.argmax(p, axis=1).astype(np.float64)
        else:
            loss = pointwise_loss(self.objective_name, labels, margin)
            correct = np.zeros(len(labels))
            estimate = prediction
        columns = np.column_stack((weight, weight * loss, weight * correct, weight * (estimate - labels) ** 2,
                                   weight * labels, weight * labels ** 2))
        sums = np.cumsum(columns, axis=0)[-1] if len(labels) else np.zeros(columns.shape[1])
        if self.classes is None or len(self.classes) != 2:
            return sums
        slot = np.minimum((np.clip(prediction if prediction.ndim == 1 else prediction[:, 1], 0, 1)
                           * ROC_BINS).astype(np.int64), ROC_BINS - 1)
        positive = labels == 1
        histograms = [np.bincount(slot[rows], weights=weight[rows], minlength=ROC_BINS)
                      for rows in (positive, ~positive)]
        return np.concatenate((sums, *histograms))


def ensemble_outputs(ensemble, objective, forest_classes, X):
    """``(margin, prediction)`` of an ensemble on raw rows ``X`` (NaN: missing), as
    :meth:`PassState.outputs`.

    A forest classifier's margin is its trees' average class frequency (clipped to [0, 1], normalised); a
    boosted classifier's is a logit (logistic) or a vector of them (softmax)."""
    margin = ensemble.predict_margin(X)
    if forest_classes:
        if margin.shape[1] == 1:
            return margin, np.clip(margin[:, 0], 0.0, 1.0)
        p = np.clip(margin, 0.0, None)
        return margin, p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300)
    n_classes = margin.shape[1] if margin.shape[1] > 1 else None  # softmax's outputs, one for the others
    return margin, make_objective(objective, n_classes).predict(margin)


def finalize_metrics(vector, classes):
    """The metrics of a summed evaluate vector: ``n`` (Σw), ``loss`` (mean log loss for classifiers, the
    objective's mean loss else), ``accuracy`` (classifiers), ``mse`` and ``r2`` (regression), ``roc_auc``
    (binary, from :data:`ROC_BINS`-bin histograms: exact up to ties within a bin)."""
    total, loss, correct, squared, sum_y, sum_y2 = (float(v) for v in vector[:6])
    metrics = {"n": total, "loss": loss / total if total else None}
    if classes is not None:
        metrics["accuracy"] = correct / total if total else None
    else:
        metrics["mse"] = squared / total if total else None
        variance = sum_y2 - sum_y * sum_y / total if total else 0.0
        metrics["r2"] = 1.0 - squared / variance if variance > 0 else None
    if classes is not None and len(classes) == 2:
        positives, negatives = vector[6:6 + ROC_BINS], vector[6 + ROC_BINS:]
        p_total, n_total = positives.sum(), negatives.sum()
        if p_total > 0 and n_total > 0:
            below = np.concatenate(([0.0], np.cumsum(negatives)[:-1]))
            metrics["roc_auc"] = float((positives * (below + 0.5 * negatives)).sum() / (p_total * n_total))
    return metrics


def pointwise_loss(objective, y, margin):
    """Each row's loss at its margin (n, K): :meth:`Objective.pointwise_loss` of ``objective`` (a name of
    :data:`~mrtrain.engine.trees.objectives.OBJECTIVES`)."""
    return OBJECTIVES[objective].pointwise_loss(y, np.asarray(margin, dtype=np.float64))
