"""What an ``--allreduce`` task remembers of one partition between a tree training's passes.

A job-per-pass map task starts from nothing: it bins its rows, routes them through every finished tree to
get their margin, and through each growing tree from the root (:meth:`mrtrain.engine.tree_pass.PassState.
partition_vector`). An AllReduce task holds its partitions for the whole training (the issue allows it to
keep the row → node assignment), so a :class:`PartitionMemory` per partition keeps:

- the binned matrix, for as long as the pass's bins are the same bins; the encoded labels;
- the margin of the finished trees, and which trees they were: when a pass's ensemble starts with those
  trees, only the new trees are added, one after the other, exactly as
  :meth:`~mrtrain.engine.trees.tree.Ensemble.predict_margin_binned` adds every tree from the base score
  (the same float64 additions in the same order, so the same bits); and the gradients at that margin,
  the same for every pass of a tree;
- each growing tree's row → node assignment, and the tree it was routed through: when the pass's tree
  :func:`~mrtrain.engine.trees.tree.extends` it (only leaves were split since), the rows go on from their
  node instead of from the root; a finished tree's assignment gives its leaves to the margin.

Anything that does not match (other bins, an ensemble cut back by early stopping, a driver resumed from an
older checkpoint) is computed afresh, so a pass's vector never depends on what the task remembers.
"""

import numpy as np

from mrtrain.engine.trees.tree import FIELD_TYPES, extends, route_binned


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _starts_with(ensemble, earlier):
    """Whether ``ensemble``'s first trees (and base score) are bit for bit ``earlier``'s."""
    n = earlier.n_trees
    if n > ensemble.n_trees or not _same_bits(ensemble.base_score, earlier.base_score):
        return False
    if not (_same_bits(ensemble.tree_output[:n], earlier.tree_output)
            and _same_bits(ensemble.tree_start[:n + 1], earlier.tree_start)):
        return False
    stop = int(earlier.tree_start[n])
    return all(_same_bits(getattr(ensemble.nodes, name)[:stop], getattr(earlier.nodes, name))
               for name, _ in FIELD_TYPES)


class PartitionMemory:
    """One partition's remembered binned rows, margin and routes (module docstring)."""

    def __init__(self):
        self._bins = None
        self._binned = None
        self._ensemble = None
        self._margin = None
        #: tree index -> (the tree as routed, every row's node in it)
        self._routes = {}
        #: ((classes,), labels) and ((objective, outputs, labels, margin), (grad, hess))
        self._labels = None
        self._gradients = None

    def binned(self, bins, X):
        """``bins.transform(X)``, remembered while the bins stay the same (else everything is forgotten)."""
        if self._bins is None or not (_same_bits(self._bins.n_edges, bins.n_edges)
                                      and _same_bits(self._bins.edges, bins.edges)):
            self.__init__()
            self._bins, self._binned = bins, bins.transform(X)
        return self._binned

    def route(self, tree_index, tree, binned, missing_bins):
        """``route_binned(tree, binned, missing_bins)``, going on from the remembered nodes of tree
        ``tree_index`` when ``tree`` extends the tree they were routed through."""
        known = self._routes.get(tree_index)
        start = known[1] if known is not None and extends(tree, known[0]) else None
        row_node = route_binned(tree, binned, missing_bins, start=start)
        self._routes[tree_index] = (tree, row_node)
        return row_node

    def margin(self, ensemble, binned, missing_bins):
        """``ensemble.predict_margin_binned(binned, missing_bins)``, the same bits: the remembered margin
        plus the trees added since, routed from their remembered nodes."""
        known = self._ensemble is not None and _starts_with(ensemble, self._ensemble)
        start, margin = (self._ensemble.n_trees, self._margin) if known else (0, None)
        if known and start == ensemble.n_trees:
            return margin
        margin = ensemble.predict_margin_binned(
            binned, missing_bins, start=start, margin=margin,
            leaves=lambda t, tree: self.route(t, tree, binned, missing_bins))
        margin.flags.writeable = False  # remembered: nobody may change it in place
        self._ensemble, self._margin = ensemble, margin
        return margin

    def labels(self, state, y):
        """``state.labels(y)``, remembered for the same classes."""
        key = (state.classes,)
        if self._labels is None or self._labels[0] != key:
            self._labels = (key, state.labels(y))
        return self._labels[1]

    def gradients(self, objective, labels, margin):
        """``objective.gradients(labels, margin)``, remembered while the margin (and labels, objective) are
        the very arrays of the last call: a tree's passes all take the gradients at the same margin."""
        key = (objective.name, objective.n_outputs, labels, margin)
        known = self._gradients
        if known is None or not all(a is b if isinstance(a, np.ndarray) else a == b
                                    for a, b in zip(known[0], key, strict=True)):
            grad, hess = objective.gradients(labels, margin)
            for array in (grad, hess):
                array.flags.writeable = False
            self._gradients = known = (key, (grad, hess))
        return known[1]

    def forget_routes(self, keep):
        """Forget the routes of every tree but those of ``keep`` (the growing trees)."""
        keep = set(keep)
        self._routes = {t: route for t, route in self._routes.items() if t in keep}
