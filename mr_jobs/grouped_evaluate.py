"""Grouped evaluate job: the evaluate job's metric sums of each parameter point on one group of rows.

The task's ``"split"`` groups the rows (:mod:`mrtrain.engine.folds`) and ``"point_groups"`` names, for every
parameter point, the group it is scored on (a cross-validation model on its held-out fold). Each mapper
emits, point after point, :func:`mrtrain.engine.metrics.metric_partials` over that group's rows of its
partition; the reducer adds them in partition order.
"""

import numpy as np

from mrtrain.engine.metrics import metric_partials
from mrtrain.mr_jobs.grouped_gradient import group_rows
from mrtrain.mr_jobs.partition_job import PartitionSumJob
from mrtrain.storage.errors import DataError


class MRGroupedEvaluate(PartitionSumJob):
    """Metric sums of every parameter point over the rows of its group, all partitions."""

    def partial_vector(self, X, y, w):
        groups = list(group_rows(self.task["split"], self.partition_id, X, y, w))
        sums = np.concatenate([
            metric_partials(self.model, *groups[group], theta)
            for theta, group in zip(self.thetas, self.task["point_groups"], strict=True)
        ])
        if not np.isfinite(sums).all():
            raise DataError("the metric sums at the models' parameters are not finite: float64 overflowed "
                            "(features this large need rescaling)")
        return sums


if __name__ == "__main__":
    MRGroupedEvaluate.run()
