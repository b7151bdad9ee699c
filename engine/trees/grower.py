"""Growing one tree on the driver, one histogram pass at a time: a pure state machine.

The driver holds a :class:`TreeGrower`. Before each pass, :attr:`TreeGrower.build_nodes` names the nodes
whose histograms the map tasks must compute (they route their rows with :attr:`TreeGrower.tree` and call
:func:`.histograms.build_histograms`); :meth:`TreeGrower.update` takes the summed vector and grows the tree.
The tree is finished when ``build_nodes`` is empty; :attr:`TreeGrower.tree` is then final. Several growers
(a random forest's trees, softmax's trees of one round) can share passes: their vectors are concatenated
in grower order (:func:`pass_sizes`, :func:`update_growers`).

Depth-wise growth (``max_leaves=None``, XGBoost's ``depthwise``): each pass splits every node of the
frontier that has an acceptable split (:mod:`.splits`), until ``max_depth``; one pass per level.

Best-first growth (``max_leaves`` set, LightGBM's leaf-wise, XGBoost's ``lossguide``): among all leaves
with an acceptable split, the one of largest gain (ties: lowest node index) is split, until there are
``max_leaves`` leaves (or ``max_depth`` stops every leaf). This is exactly LightGBM's order, so it costs one
pass per split whose children can still be split.

Sibling subtraction: of a split's two children, only the one of smaller weight (ties: the left one) is
built; the other is ``parent − built``. Children at ``max_depth`` get no histogram at all.

Features: the tree may use :func:`.sampling.choose_features` ``(seed, tree_index, -1)`` of
``n_chosen(colsample)`` features; each node draws ``n_chosen(max_features)`` of those with its own index.

The state is plain arrays (:meth:`TreeGrower.to_arrays` / :meth:`TreeGrower.from_arrays`) so a checkpoint
after any pass resumes exactly.

Vector leaves (``n_outputs = K > 1``, a K-class random forest): the histograms have ``K + 2`` channels
(:mod:`.histograms`), the gain sums over the outputs and every node's value is a vector of ``K``
(:mod:`.splits`); the tree's ``value`` is then of shape (n_nodes, K).
"""

from typing import NamedTuple

import numpy as np

from mrtrain.engine.trees.histograms import HESS, WEIGHT, n_channels, node_totals, subtract_histograms
from mrtrain.engine.trees.sampling import choose_features, n_chosen
from mrtrain.engine.trees.splits import SplitRule, best_splits, leaf_values
from mrtrain.engine.trees.tree import LEAF, Tree

#: Largest ``max_depth``.
MAX_DEPTH = 30


class GrowParams(NamedTuple):
    """How a tree grows (validated by :func:`check_grow_params`).

    Attributes
    ----------
    max_depth : int in [1, 30]
    max_leaves : int >= 2 or None
        Grow best-first to at most this many leaves; ``None``: depth-wise.
    l2 : float >= 0
        λ, the L2 penalty on leaf values.
    min_child_weight : float >= 0
        Least Hessian sum of a child.
    min_split_gain : float >= 0
        γ: a split needs a gain above it.
    learning_rate : float > 0
        Scales leaf values.
    colsample : float in (0, 1]
        Fraction of the features a tree may use.
    max_features : None, "sqrt", "log2" or float in (0, 1]
        Features each node draws from the tree's (``None``: all).
    seed : int in [0, 2**63)
    """

    max_depth: int = 6
    max_leaves: int | None = None
    l2: float = 1.0
    min_child_weight: float = 1.0
    min_split_gain: float = 0.0
    learning_rate: float = 0.1
    colsample: float = 1.0
    max_features: object = None
    seed: int = 0

    @property
    def rule(self):
        return SplitRule(float(self.l2), float(self.min_child_weight), float(self.min_split_gain))


def _is_int(value):
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def check_grow_params(params):
    """Return ``params`` (a :class:`GrowParams`) if every field is valid, else raise ValueError naming it."""
    checks = (
        ("max_depth", _is_int(params.max_depth) and 1 <= params.max_depth <= MAX_DEPTH,
         f"an int in [1, {MAX_DEPTH}]"),
        ("max_leaves", params.max_leaves is None or (_is_int(params.max_leaves) and params.max_leaves >= 2),
         "None or an int >= 2"),
        ("l2", _is_number(params.l2) and params.l2 >= 0, "a number >= 0"),
        ("min_child_weight", _is_number(params.min_child_weight) and params.min_child_weight >= 0,
         "a number >= 0"),
        ("min_split_gain", _is_number(params.min_split_gain) and params.min_split_gain >= 0, "a number >= 0"),
        ("learning_rate", _is_number(params.learning_rate) and params.learning_rate > 0, "a number > 0"),
        ("colsample", _is_number(params.colsample) and 0 < params.colsample <= 1, "a number in (0, 1]"),
        ("max_features", params.max_features in (None, "sqrt", "log2") or (
            _is_number(params.max_features) and 0 < params.max_features <= 1),
         "None, 'sqrt', 'log2' or a number in (0, 1]"),
        ("seed", _is_int(params.seed) and 0 <= params.seed < 2**63, "an int in [0, 2**63)"),
    )
    for name, ok, allowed in checks:
        if not ok:
            raise ValueError(f"The '{name}' parameter must be {allowed}. Got {getattr(params, name)!r} "
                             "instead.")
    return params


class TreeGrower:
    """One tree being grown (see the module docstring).

    Parameters
    ----------
    bins : .binning.Bins
        The training bins (for the layout and the real thresholds).
    params : GrowParams
    tree_index : int
        The tree's index in the ensemble (seeds its feature draws).
    n_outputs : int
        The width of the leaves: 1 (a number per leaf), or ``K > 1`` (vector leaves: a K-class forest).
    """

    def __init__(self, bins, params, tree_index=0, n_outputs=1):
        self.bins = bins
        self.params = check_grow_params(params)
        self.tree_index = int(tree_index)
        self.n_outputs = int(n_outputs)
        self.n_channels = n_channels(self.n_outputs)
        self.offsets = bins.offsets
        n_features = bins.n_features
        self.tree_features = choose_features(params.seed, self.tree_index, -1, n_features,
                                             n_chosen(params.colsample, n_features))
        self._nodes = {name: [] for name in ("feature", "bin", "threshold", "default_left", "left", "right",
                                             "value", "gain", "depth")}
        self._sums = []
        self._new_node(np.zeros(self.n_channels), 0)
        #: Histograms kept between passes: node -> (total_bins, 3).
        self._histograms = {}
        #: (parent, built child, derived child) awaiting the next pass.
        self._pending = []
        #: Leaves whose histogram is known and whose best split is not yet taken (best-first).
        self._candidates = []
        self.build_nodes = [0]

    # -- the tree -----------------------------------------------------------------------------------------
    def _new_node(self, sums, depth):
        for name, value in (("feature", LEAF), ("bin", -1), ("threshold", 0.0), ("default_left", False),
                            ("left", LEAF), ("right", LEAF), ("gain", 0.0), ("depth", depth)):
            self._nodes[name].append(value)
        self._nodes["value"].append(self._leaf_value(sums))
        self._sums.append(np.asarray(sums, dtype=np.float64))
        return len(self._sums) - 1

    def _leaf_value(self, sums):
        value = leaf_values(sums, self.params.l2, self.params.learning_rate)
        return float(value) if self.n_outputs == 1 else [float(v) for v in value]

    @property
    def n_nodes(self):
        return len(self._sums)

    @property
    def n_leaves(self):
        return self._nodes["feature"].count(LEAF)

    @property
    def finished(self):
        return not self.build_nodes

    @property
    def tree(self):
        """The tree as it stands (its frontier nodes are leaves): a :class:`.tree.Tree`."""
        sums = np.array(self._sums).reshape(-1, self.n_channels)
        return Tree.from_lists(**{name: self._nodes[name] for name in (
            "feature", "bin", "threshold", "default_left", "left", "right", "value", "gain")},
            hess=sums[:, HESS], weight=sums[:, WEIGHT])

    def _expandable(self, node):
        return self._nodes["depth"][node] < self.params.max_depth

    def _allowed(self, nodes):
        """Which features each node may split on, shape (len(nodes), F)."""
        allowed = np.zeros((len(nodes), self.bins.n_features), dtype=bool)
        k = n_chosen(self.params.max_features, len(self.tree_features))
        for row, node in enumerate(nodes):
            allowed[row, choose_features(self.params.seed, self.tree_index, node, self.bins.n_features, k,
                                         among=self.tree_features)] = True
        return allowed

    def _split(self, node, split):
        """Split ``node`` by one row of a :class:`.splits.Splits`; schedule its children's histograms."""
        feature, local_bin, default_left, gain, left_sums, right_sums = split
        depth = self._nodes["depth"][node] + 1
        left, right = self._new_node(left_sums, depth), self._new_node(right_sums, depth)
        for name, value in (("feature", int(feature)), ("bin", int(local_bin)),
                            ("threshold", self.bins.threshold(int(feature), int(local_bin))),
                            ("default_left", bool(default_left)), ("left", left), ("right", right),
                            ("gain", float(gain))):
            self._nodes[name][node] = value
        if depth < self.params.max_depth:
            small, large = (left, right) if left_sums[WEIGHT] <= right_sums[WEIGHT] else (right, left)
            self._pending.append((node, small, large))
            return [small]
        self._histograms.pop(node, None)
        return []

    # -- one pass -----------------------------------------------------------------------------------------
    def update(self, vector):
        """Take the summed histogram vector of :attr:`build_nodes` and grow the tree.

        Parameters
        ----------
        vector : ndarray of float64, shape (len(build_nodes) * total_bins * channels,)
            ``channels`` is 3, or ``K + 2`` for vector leaves.

        Returns
        -------
        list of int
            The new :attr:`build_nodes` (empty: the tree is finished).
        """
        if self.finished:
            raise ValueError("This tree is finished; it takes no more histograms.")
        total_bins = int(self.offsets[-1])
        expected = len(self.build_nodes) * total_bins * self.n_channels
        vector = np.asarray(vector, dtype=np.float64)
        if vector.shape != (expected,):
            raise ValueError(f"The histogram vector of nodes {self.build_nodes} must have shape "
                             f"({expected},). Got {vector.shape} instead.")
        built = vector.reshape(len(self.build_nodes), total_bins, self.n_channels)
        fresh = []
        for node, histogram in zip(self.build_nodes, built, strict=True):
            self._histograms[node] = histogram
            fresh.append(node)
        if self.build_nodes == [0] and self.n_nodes == 1:
            self._sums[0] = node_totals(built[0], self.offsets)
            self._nodes["value"][0] = self._leaf_value(self._sums[0])
        for parent, small, large in self._pending:
            parent_histogram = self._histograms.pop(parent)
            self._histograms[large] = subtract_histograms(parent_histogram, self._histograms[small])
            fresh.append(large)
        self._pending = []
        self._candidates = sorted(set(self._candidates) | set(fresh))
        self.build_nodes = self._grow()
        return self.build_nodes

    def _best(self, nodes):
        histograms = np.array([self._histograms[node] for node in nodes])
        totals = np.array([self._sums[node] for node in nodes])
        return best_splits(histograms, totals, self.offsets, self.params.rule, self._allowed(nodes))

    def _grow(self):
        candidates, self._candidates = self._candidates, []
        if not candidates:
            return []
        splits = self._best(candidates)
        usable = [i for i, node in enumerate(candidates) if splits.feature[i] != LEAF]
        for i, node in enumerate(candidates):
            if splits.feature[i] == LEAF:
                self._histograms.pop(node, None)
        rows = [tuple(field[i] for field in splits) for i in range(len(candidates))]
        if self.params.max_leaves is None:
            build = []
            for i in usable:
                build += self._split(candidates[i], rows[i])
            return build
        # Best-first: split the best leaf, go on without a pass while the new children cannot be split.
        usable.sort(key=lambda i: (-splits.gain[i], candidates[i]))
        while usable and self.n_leaves < self.params.max_leaves:
            i = usable.pop(0)
            build = self._split(candidates[i], rows[i])
            if build:
                self._candidates = [candidates[j] for j in usable]
                return build
        for i in usable:
            self._histograms.pop(candidates[i], None)
        return []

    # -- checkpoints ----------------------------------------------------------------------------------------
    def to_arrays(self):
        """The grower's state as a dict of flat numpy arrays (the bins and params are stored elsewhere)."""
        stored = sorted(self._histograms)
        total_bins = int(self.offsets[-1])
        arrays = {f"node_{name}": np.asarray(values, dtype=dtype) for name, values, dtype in (
            (name, self._nodes[name], dtype) for name, dtype in (
                ("feature", np.int64), ("bin", np.int64), ("threshold", np.float64), ("default_left", bool),
                ("left", np.int64), ("right", np.int64), ("value", np.float64), ("gain", np.float64),
                ("depth", np.int64)))}
        arrays.update({
            "node_sums": np.array(self._sums).reshape(-1, self.n_channels),
            "histogram_nodes": np.asarray(stored, dtype=np.int64),
            "histograms": (np.array([self._histograms[n] for n in stored]) if stored
                           else np.zeros((0, total_bins, self.n_channels))).ravel(),
            "pending": np.asarray(self._pending, dtype=np.int64).reshape(-1, 3),
            "candidates": np.asarray(self._candidates, dtype=np.int64),
            "build_nodes": np.asarray(self.build_nodes, dtype=np.int64),
            "tree_index": np.array([self.tree_index], dtype=np.int64),
        })
        return arrays

    @classmethod
    def from_arrays(cls, bins, params, arrays, n_outputs=1):
        """The grower whose :meth:`to_arrays` gave ``arrays``, with the same ``bins``, ``params`` and
        ``n_outputs``."""
        grower = cls(bins, params, int(arrays["tree_index"][0]), n_outputs)
        grower._nodes = {name: np.asarray(arrays[f"node_{name}"]).tolist() for name in grower._nodes}
        if grower.n_outputs > 1:
            grower._nodes["value"] = np.asarray(arrays["node_value"], dtype=np.float64).reshape(
                -1, grower.n_outputs).tolist()
        grower._sums = list(np.asarray(arrays["node_sums"], dtype=np.float64).reshape(-1, grower.n_channels))
        stored = np.asarray(arrays["histogram_nodes"], dtype=np.int64).tolist()
        histograms = np.asarray(arrays["histograms"], dtype=np.float64).reshape(
            len(stored), int(grower.offsets[-1]), grower.n_channels)
        grower._histograms = dict(zip(stored, histograms, strict=True))
        grower._pending = [tuple(row) for row in np.asarray(arrays["pending"], dtype=np.int64).tolist()]
        grower._candidates = np.asarray(arrays["candidates"], dtype=np.int64).tolist()
        grower.build_nodes = np.asarray(arrays["build_nodes"], dtype=np.int64).tolist()
        return grower


def pass_sizes(growers):
    """The length of each grower's part of a pass's concatenated histogram vector (0 when finished)."""
    return [len(g.build_nodes) * int(g.offsets[-1]) * g.n_channels for g in growers]


def update_growers(growers, vector):
    """Give each of ``growers`` (several trees sharing passes) its part of the concatenated ``vector``
    (parts in the order of ``growers``, finished growers taking none); returns whether all are finished."""
    sizes = pass_sizes(growers)
    vector = np.asarray(vector, dtype=np.float64)
    if vector.shape != (sum(sizes),):
        raise ValueError(f"The histogram vector of {len(growers)} trees must have shape ({sum(sizes)},). Got "
                         f"{vector.shape} instead.")
    start = 0
    for grower, size in zip(growers, sizes, strict=True):
        if size:
            grower.update(vector[start:start + size])
        start += size
    return all(g.finished for g in growers)
