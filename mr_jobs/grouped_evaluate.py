"""Grouped evaluate job: the evaluate job's metric sums of each parameter point on one group of rows.

The task's ``"split"`` groups the rows (:mod:`mrtrain.engine.folds`) and ``"point_groups"`` names, for every
parameter point, the group it is scored on (a cross-validation model on its held-out fold). Each mapper
emits, point after point, :func:`mrtrain.engine.metrics.metric_partials` over that group's rows of its
partition; the reducer adds them in partition order.
"""

import numpy as np

from mrtrain.engine.metrics import metric_partials
from mrtrain.mr_jobs.evaluate import checked_finite
from mrtrain.mr_jobs.grouped_gradient import group_rows
from mrtrain.mr_jobs.partition_job import PartitionSumJob


class MRGroupedEvaluate(PartitionSumJob):
    """Metric sums of every parameter point over the rows of its group, all partitions."""

    def partial_vector(self, X, y, w):
        groups = list(group_rows(self.task["split"], self.partition_id, X, y, w))
        return checked_finite(np.concatenate([
            metric_partials(self.model, *groups[group], theta)
            for theta, group in zip(self.thetas, self.task["point_groups"], strict=True)
        ]))


if __name__ == "__main__":
    MRGroupedEvaluate.run()
