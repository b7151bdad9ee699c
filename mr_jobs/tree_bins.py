"""Bin-edges pass of a tree ensemble: every partition's mergeable value summary.

Each map task summarises its partition's feature values (:func:`mrtrain.engine.trees.binning.summarize`:
exact counts of values, made coarser only past the summary's capacity) and emits it as one vector. The job
is map-only: summaries merge, they do not add, so the driver merges the partitions' summaries in partition
order (``merge_summaries``, whose result does not depend on the order or on how rows fall into partitions)
and makes the bin edges, which every later pass and every prediction use.
"""

from mrtrain.mr_jobs.tree_job import TreePassJob


class MRTreeBins(TreePassJob):
    """Per-partition bin summaries (run with ``--map-only``; the driver merges them)."""


if __name__ == "__main__":
    MRTreeBins.run()
