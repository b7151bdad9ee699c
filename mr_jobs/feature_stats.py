"""Feature statistics job: weighted sums of every feature and of its square, for standardization.

Each mapper reads one Parquet partition and computes :func:`mrtrain.engine.standardization.feature_sums`:
``[Σs, Σs·x, Σs·x², Σs²]`` (length ``2 + 2d``); the reducer adds the partitions' sums in partition order, so
the means and variances the driver derives (:meth:`mrtrain.engine.standardization.Standardization.from_sums`)
are bitwise the same on every runner. The shipped parameters are not used. An AllReduce job's tasks serve
the same pass (:mod:`mrtrain.mr_jobs.allreduce_job`).
"""

from mrtrain.engine.standardization import feature_sums
from mrtrain.mr_jobs.partition_job import PartitionSumJob


def feature_sums_vector(X, y, w):
    """One partition's vector: :func:`feature_sums` (the labels are not used)."""
    return feature_sums(X, w)


class MRFeatureStats(PartitionSumJob):
    """Sum of sample weights, weighted features, weighted squared features and squared sample weights over
    all partitions."""

    def partial_vector(self, X, y, w):
        return feature_sums_vector(X, y, w)


if __name__ == "__main__":
    MRFeatureStats.run()
