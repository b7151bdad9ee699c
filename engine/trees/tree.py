"""Trees as flat arrays, routing rows to their leaves, and ensembles: margins and feature importance.

A :class:`Tree` of ``n`` nodes is ten arrays of length ``n``; node 0 is the root; node ``i`` is a leaf when
``feature[i] == -1``. An inner node sends a row left when its value ``x`` of ``feature`` satisfies
``x <= threshold`` (equivalently its local bin is ``<= bin``), right otherwise, and a missing value (NaN,
the missing bin) left when ``default_left``. Leaves hold ``value`` (already scaled by the learning rate);
every node holds the gain of its split (0 for leaves) and its Hessian and weight sums.

An :class:`Ensemble` is trees added to a base score: tree ``t`` adds its leaf values to output
``tree_output[t]`` of the margin (one output for binary, regression and Poisson objectives; one per class
for softmax, whose round ``r`` has trees ``r·K … r·K + K − 1``).

Vector leaves (a K-class random forest): ``value`` has shape (n_nodes, K), every tree's ``tree_output`` is
:data:`ALL_OUTPUTS` (−1) and adds its leaf's vector to all ``K`` outputs. An ensemble's trees are all of one
kind. Flat arrays (a checkpoint, a pass's state) hold ``value`` raveled; :func:`node_values` shapes it back
by the node count. Margins are summed tree after tree, so the
bits are the same for raw and binned rows and on every runner.
"""

from typing import NamedTuple

import numpy as np

#: ``feature`` (and ``left``/``right``) of a leaf.
LEAF = -1
#: ``tree_output`` of a tree of vector leaves: it adds to every output.
ALL_OUTPUTS = -1


def node_values(value, n_nodes):
    """``value`` of ``n_nodes`` nodes as a tree holds it: shape (n_nodes,), or (n_nodes, K) when it has
    ``K > 1`` entries per node (vector leaves, possibly raveled)."""
    value = np.asarray(value, dtype=np.float64)
    if n_nodes and value.size != n_nodes:
        return value.reshape(n_nodes, -1)
    return value.reshape(-1) if value.ndim != 2 or value.shape[1] == 1 else value


class Tree(NamedTuple):
    """One tree's flat arrays (see the module docstring); all of shape (n_nodes,).

    Attributes
    ----------
    feature, bin : int64
        Split feature and local bin (``-1`` at leaves).
    threshold : float64
        Real threshold: ``x <= threshold`` goes left (0.0 at leaves).
    default_left : bool
        Where NaN goes.
    left, right : int64
        Children (``-1`` at leaves).
    value : float64
        Leaf value (learning rate included); at inner nodes the value the node had as a leaf. Shape
        (n_nodes, K) for vector leaves.
    gain : float64
        The split's gain (0 at leaves).
    hess, weight : float64
        Σ w·h and Σ w of the node's training rows.
    """

    feature: np.ndarray
    bin: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    gain: np.ndarray
    hess: np.ndarray
    weight: np.ndarray

    @property
    def n_nodes(self):
        return len(self.feature)

    @property
    def is_leaf(self):
        return self.feature == LEAF

    @classmethod
    def from_lists(cls, **columns):
        """A tree from sequences of the fields' values (``value``: numbers, or vectors of K)."""
        n_nodes = len(columns["feature"])
        return cls(*(node_values(columns[name], n_nodes) if name == "value"
                     else np.asarray(columns[name], dtype=dtype).reshape(-1) for name, dtype in FIELD_TYPES))


#: Every field of :class:`Tree` with its dtype.
FIELD_TYPES = (("feature", np.int64), ("bin", np.int64), ("threshold", np.float64), ("default_left", bool),
               ("left", np.int64), ("right", np.int64), ("value", np.float64), ("gain", np.float64),
               ("hess", np.float64), ("weight", np.float64))


def _route(tree, n_rows, goes_left, start=None):
    """The leaf of every row; ``goes_left(rows, nodes)`` says which ``rows`` (at inner ``nodes``) go left.
    ``start``: the node every row has reached already (the root by default)."""
    node = np.zeros(n_rows, dtype=np.int64) if start is None else np.array(start, dtype=np.int64)
    active = np.flatnonzero(tree.feature[node] != LEAF) if n_rows else node
    while len(active):
        at = node[active]
        node[active] = np.where(goes_left(active, at), tree.left[at], tree.right[at])
        active = active[tree.feature[node[active]] != LEAF]
    return node


def route_binned(tree, binned, missing_bins, start=None):
    """The leaf (a node index) of every row of a binned matrix.

    Parameters
    ----------
    tree : Tree
    binned : ndarray of uint8 or uint16, shape (n, F)
    missing_bins : ndarray of int64, shape (F,)
        Each feature's missing bin (``bins.n_edges + 1``).
    start : ndarray of int, shape (n,), optional
        The node each row reached in a smaller version of ``tree`` (:func:`extends`): routing goes on from
        there, to the same leaves as from the root.

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    missing_bins = np.asarray(missing_bins, dtype=np.int64)

    def goes_left(rows, nodes):
        feature = tree.feature[nodes]
        local = binned[rows, feature].astype(np.int64)
        return np.where(local == missing_bins[feature], tree.default_left[nodes], local <= tree.bin[nodes])

    return _route(tree, len(binned), goes_left, start)


#: The fields that say where a row goes at an inner node.
ROUTING_FIELDS = ("feature", "bin", "default_left", "left", "right")


def extends(tree, earlier):
    """Whether ``tree`` is ``earlier`` grown further: every inner node of ``earlier`` is the same inner
    node of ``tree`` (its leaves may have been split since), so a row's node in ``earlier`` lies on its
    path in ``tree``."""
    n = earlier.n_nodes
    if n > tree.n_nodes:
        return False
    inner = earlier.feature != LEAF
    return all(np.array_equal(getattr(tree, name)[:n][inner], getattr(earlier, name)[inner])
               for name in ROUTING_FIELDS)


def _csr_lookup(X):
    """A function ``(rows, columns) -> X[rows, columns]`` for a CSR matrix (implicit entries 0.0)."""
    X = X.tocsr(copy=True)
    X.sum_duplicates()
    n_columns = np.int64(X.shape[1])
    keys = np.repeat(np.arange(X.shape[0], dtype=np.int64), np.diff(X.indptr)) * n_columns + X.indices
    data = np.asarray(X.data, dtype=np.float64)

    def lookup(rows, columns):
        wanted = rows.astype(np.int64) * n_columns + columns
        position = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
        found = (keys[position] == wanted) if len(keys) else np.zeros(len(wanted), dtype=bool)
        return np.where(found, data[position] if len(keys) else 0.0, 0.0)

    return lookup


def _lookup(X):
    """A function ``(rows, columns) -> X[rows, columns]`` for dense or sparse ``X``."""
    import scipy.sparse as sp

    if sp.issparse(X):
        return _csr_lookup(X)
    X = np.asarray(X, dtype=np.float64)

    def lookup(rows, columns):
        return X[rows, columns]

    return lookup


def route(tree, X, lookup=None):
    """The leaf (a node index) of every row of raw data.

    Parameters
    ----------
    tree : Tree
    X : ndarray of shape (n, F) or scipy.sparse matrix
        NaN is missing; a sparse matrix's implicit entries are 0.0.
    lookup : callable, optional
        ``X``'s prepared lookup (ensembles prepare a sparse matrix's once for all their trees).

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    lookup = _lookup(X) if lookup is None else lookup

    def goes_left(rows, nodes):
        x = lookup(rows, tree.feature[nodes])
        return np.where(np.isnan(x), tree.default_left[nodes], x <= tree.threshold[nodes])

    return _route(tree, X.shape[0], goes_left)


class Ensemble(NamedTuple):
    """Trees added to a base score (see the module docstring).

    Attributes
    ----------
    n_features : int
    base_score : ndarray of float64, shape (K,)
        The initial margin of each output.
    tree_start : ndarray of int64, shape (T + 1,)
        Tree ``t``'s nodes are ``nodes[tree_start[t]:tree_start[t + 1]]`` (child indices local to the tree).
    tree_output : ndarray of int64, shape (T,)
        The output each tree adds to.
    nodes : Tree
        All trees' nodes, concatenated.
    """

    n_features: int
    base_score: np.ndarray
    tree_start: np.ndarray
    tree_output: np.ndarray
    nodes: Tree

    @classmethod
    def from_trees(cls, trees, tree_output, base_score, n_features):
        """An ensemble of a sequence of :class:`Tree`."""
        trees = list(trees)
        starts = np.concatenate(([0], np.cumsum([t.n_nodes for t in trees], dtype=np.int64))).astype(np.int64)
        nodes = Tree(*(np.concatenate([getattr(t, name) for t in trees]).astype(dtype) if trees
                       else np.zeros(0, dtype=dtype) for name, dtype in FIELD_TYPES))
        return cls(int(n_features), np.asarray(base_score, dtype=np.float64).reshape(-1), starts,
                   np.asarray(tree_output, dtype=np.int64).reshape(len(trees)), nodes)

    @property
    def n_trees(self):
        return len(self.tree_output)

    @property
    def n_outputs(self):
        return len(self.base_score)

    def tree(self, t):
        """Tree ``t`` as a :class:`Tree`."""
        start, stop = int(self.tree_start[t]), int(self.tree_start[t + 1])
        return Tree(*(field[start:stop] for field in self.nodes))

    def _margin(self, n_rows, leaves_of, n_trees, start, margin):
        """The margin; ``leaves_of(t, tree)`` is the leaf of every row in tree ``t``."""
        if margin is None:
            if start:
                raise ValueError(f"Margins from tree {start} on need the margin of the trees before it.")
            margin = np.empty((n_rows, self.n_outputs))
            margin[:] = self.base_score
        else:
            margin = np.array(margin, dtype=np.float64).reshape(n_rows, self.n_outputs)
        for t in range(start, self.n_trees if n_trees is None else n_trees):
            tree = self.tree(t)
            if self.tree_output[t] == ALL_OUTPUTS:
                margin += tree.value[leaves_of(t, tree)]
            else:
                margin[:, self.tree_output[t]] += tree.value[leaves_of(t, tree)]
        return margin

    def predict_margin(self, X, n_trees=None, start=0, margin=None):
        """The margin of every row of raw data ``X`` (dense or sparse), shape (n, K), using the first
        ``n_trees`` trees (all by default).

        Given ``margin``, the margin of the first ``start`` trees (a map task's cache), only trees
        ``start …`` are added to a copy of it: the same bits as starting from the base score."""
        lookup = _lookup(X)
        return self._margin(X.shape[0], lambda _, tree: route(tree, X, lookup), n_trees, start, margin)

    def predict_margin_binned(self, binned, missing_bins, n_trees=None, start=0, margin=None, leaves=None):
        """:meth:`predict_margin` of binned rows (the same bits when binned by the training bins).

        ``leaves(t, tree)``, when given, routes the rows through tree ``t`` instead of
        :func:`route_binned` (an AllReduce task's remembered routes, :mod:`mrtrain.engine.tree_memory`)."""
        if leaves is None:
            def leaves(_, tree):
                return route_binned(tree, binned, missing_bins)
        return self._margin(len(binned), leaves, n_trees, start, margin)

    def feature_importance(self):
        """``(total gain, split count)`` of every feature over all trees, each of shape (F,)."""
        inner = self.nodes.feature != LEAF
        features = self.nodes.feature[inner]
        gain = np.bincount(features, weights=self.nodes.gain[inner], minlength=self.n_features)
        return gain, np.bincount(features, minlength=self.n_features).astype(np.int64)

    def to_arrays(self):
        """The ensemble as a dict of flat numpy arrays (:meth:`from_arrays` inverts it)."""
        arrays = {"n_features": np.array([self.n_features], dtype=np.int64), "base_score": self.base_score,
                  "tree_start": self.tree_start, "tree_output": self.tree_output}
        arrays.update({f"node_{name}": getattr(self.nodes, name) for name, _ in FIELD_TYPES})
        return arrays

    @classmethod
    def from_arrays(cls, arrays):
        n_nodes = np.asarray(arrays["node_feature"]).size
        return cls(int(arrays["n_features"][0]), np.asarray(arrays["base_score"], dtype=np.float64),
                   np.asarray(arrays["tree_start"], dtype=np.int64),
                   np.asarray(arrays["tree_output"], dtype=np.int64),
                   Tree(*(node_values(arrays["node_value"], n_nodes) if name == "value"
                          else np.asarray(arrays[f"node_{name}"], dtype=dtype)
                          for name, dtype in FIELD_TYPES)))
