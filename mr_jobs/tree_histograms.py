"""Histogram pass of a tree ensemble: gradient/Hessian/weight sums per (tree, node, feature, bin).

Each map task bins its partition with the training bins, routes every row through the trees being grown to
its current node, takes the gradients at the margin of the finished trees and builds the histograms of the
nodes the driver asked for (the smaller child of each split: the driver gets the other by subtraction),
concatenated tree after tree, then the validation rows' loss sums
(:meth:`mrtrain.engine.tree_pass.PassState.partition_vector`). The reducers add the partitions' vectors in
partition order, each reducer one contiguous piece (``--reducers``), as the gradient job's do. The same job
with the state's ``"base"`` phase sums the label statistics of the base score.
"""

from mrtrain.mr_jobs.tree_job import TreePassJob


class MRTreeHistograms(TreePassJob):
    """Histogram (or base statistics) sums over all partitions, added in partition order."""


if __name__ == "__main__":
    MRTreeHistograms.run()
