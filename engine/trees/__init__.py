"""Tree ensembles' math: binning, histograms, split finding, tree arrays, objectives and row sampling.

Pure functions and plain-array state (numpy/scipy only, no I/O), float64 throughout, every sum taken in a
fixed order (``np.bincount``/``np.cumsum`` are sequential), so the same inputs give the same bits on every
runner. The MapReduce jobs, the family, the CLI and the checkpoints (``mrtrain.trees_*``/``mr_jobs``) are
built on these.

One training, and where each piece runs
---------------------------------------
1. **Binning** (:mod:`.binning`), one pass. Map: ``summarize(X)`` → a :class:`~.binning.BinSummary` of the
   partition (exact value counts per feature, made coarser by truncating mantissa bits only when a feature
   has more than ``capacity`` distinct values, so the merged summary does not depend on how rows fall into
   partitions). Reduce (or driver): ``merge_summaries([s0, s1, ...])`` in partition order. Driver:
   ``make_bins(summary, max_bins)`` → :class:`~.binning.Bins` (per-feature ascending edges; the value
   ``x`` falls in bin ``#{edges < x}``; NaN in the feature's last bin, the missing bin). Both serialise to
   flat numpy arrays (``to_arrays``/``from_arrays``); a summary also to one float64 vector
   (``to_vector``/``from_vector``). Map tasks then call ``bins.transform(X)`` → the
   binned matrix ``(n, F)`` of local bin indices (dense or CSR ``X``; implicit zeros are 0.0).
2. **Objective** (:mod:`.objectives`): ``make_objective(name, n_classes)`` → an objective with
   ``check_labels(y)``, ``base_stats(y, w)`` (a summable vector), ``base_score(stats)`` (initial margin
   per output) and ``gradients(y, margin)`` → ``(g, h)`` of shape ``(n, n_outputs)``.
3. **Sampling** (:mod:`.sampling`): ``subsample_mask(seed, tree, partition_id, n_rows, fraction)`` and
   ``bootstrap_weights(seed, tree, partition_id, n_rows)`` (Poisson(1) by inverse CDF of a SplitMix64 row
   hash, as :mod:`mrtrain.engine.folds`); ``choose_features(seed, tree, node, n_features, k)``.
4. **Growing a tree, one pass per level** (:mod:`.histograms`, :mod:`.splits`, :mod:`.grower`).
   Driver: ``grower = TreeGrower(bins, GrowParams(...), tree_index)``; ``grower.build_nodes`` lists the
   nodes whose histograms the next pass must compute. Map: ``row_node = route_binned(grower.tree, B,
   bins.n_edges + 1)``, then ``build_histograms(B, g, h, w, row_node, grower.build_nodes, bins.offsets)``
   → one flat float64 vector ``(len(build_nodes), total_bins, 3)`` of Σw·g, Σw·h, Σw (vectors of
   partitions add elementwise in partition order; a tree of vector leaves, ``TreeGrower(..., n_outputs=K)``
   for a K-class forest, takes ``g`` of shape (n, K) and has ``K + 2`` channels). Driver:
   ``grower.update(vector)`` gets the siblings by
   subtraction (``subtract_histograms``), finds each node's best split (``best_splits``), grows the tree
   and sets the next ``build_nodes`` (empty when ``grower.finished``; ``grower.tree`` is then final).
   Depth-wise by default, best-first with ``max_leaves``. ``grower.to_arrays()`` /
   ``TreeGrower.from_arrays(bins, params, arrays)`` checkpoint it between passes. Trees that share passes
   (a forest, softmax's K trees of a round): concatenate their vectors in grower order,
   ``update_growers(growers, vector)`` (``pass_sizes`` gives each part's length).
5. **Trees and ensembles** (:mod:`.tree`): a :class:`~.tree.Tree` is flat arrays (``feature``, ``bin``,
   ``threshold``, ``default_left``, ``left``, ``right``, ``value``, ``gain``, ``hess``, ``weight``);
   ``route_binned``/``route`` send rows to leaves (binned / raw dense or CSR, NaN by ``default_left``;
   ``route_binned(..., start=)`` goes on from the nodes rows reached in a tree that ``extends`` checks).
   ``Ensemble.from_trees(trees, tree_output, base_score, n_features)``: ``predict_margin(X)``,
   ``predict_margin_binned(B, missing_bins)`` (same bits; ``start=``/``margin=`` add trees to a cached
   margin), ``feature_importance()`` → (total gain, split
   count), ``to_arrays``/``from_arrays``. :mod:`.export`: ``to_json``/``dumps``/``from_json``, the
   documented JSON format.

Conventions (XGBoost's and LightGBM's): split gain ``G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)`` (no ½),
a split is made only when gain > ``min_split_gain`` (γ) and both children have Hessian sum ≥
``min_child_weight``; leaf value ``−G/(H+λ) · learning_rate``. See :mod:`.splits`.
"""

from mrtrain.engine.trees.binning import Bins, BinSummary, make_bins, merge_summaries, summarize
from mrtrain.engine.trees.grower import GrowParams, TreeGrower, check_grow_params, pass_sizes, update_growers
from mrtrain.engine.trees.histograms import build_histograms, subtract_histograms
from mrtrain.engine.trees.objectives import OBJECTIVES, Objective, make_objective
from mrtrain.engine.trees.sampling import bootstrap_weights, choose_features, n_chosen, subsample_mask
from mrtrain.engine.trees.splits import SplitRule, best_splits, leaf_values
from mrtrain.engine.trees.tree import Ensemble, Tree, route, route_binned

__all__ = ["BinSummary", "Bins", "Ensemble", "GrowParams", "OBJECTIVES", "Objective", "SplitRule", "Tree",
           "TreeGrower", "best_splits", "bootstrap_weights", "build_histograms", "check_grow_params",
           "choose_features", "leaf_values", "make_bins", "make_objective", "merge_summaries", "n_chosen",
           "pass_sizes", "route", "route_binned", "subsample_mask", "subtract_histograms", "summarize",
           "update_growers"]
