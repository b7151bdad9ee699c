"""Evaluate job: mergeable metric sums (accuracy, log-loss, confusion matrix, AUC histogram, errors).

Each mapper reads one Parquet partition and computes :func:`mrtrain.engine.metrics.metric_partials` at the
shipped
parameters (``--params`` holds one point); the reducer adds the partitions' sums in partition order; the
driver turns the total into metrics with :func:`mrtrain.engine.metrics.finalize_metrics`.
"""

from mrtrain.engine.metrics import metric_partials
from mrtrain.engine.overflow import check_finite
from mrtrain.mr_jobs.partition_job import PartitionSumJob


class MREvaluate(PartitionSumJob):
    """Sum of metric statistics over all partitions at one parameter point."""

    def partial_vector(self, X, y, w):
        return checked_finite(metric_partials(self.model, X, y, w, self.thetas[0]))


def checked_finite(sums):
    """``sums``, or a :class:`DataError` if any is not finite (the features overflowed float64)."""
    check_finite("the metric sums at the model's parameters", sums)
    return sums


if __name__ == "__main__":
    MREvaluate.run()
