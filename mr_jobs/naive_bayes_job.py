"""Naive Bayes job: class-wise feature statistics of every partition, for a one-pass fit.

Each mapper reads one Parquet partition and computes :func:`mrtrain.engine.naive_bayes.class_statistics`:
per class the weighted count and feature counts (multinomial, Bernoulli) or the weighted count, mean and
sum of squared deviations (Gaussian). The statistics of the Gaussian model are not sums, so the job runs
map-only (``--map-only``) and the driver merges the partitions' vectors in partition order with
:func:`mrtrain.engine.naive_bayes.merge_statistics`: bitwise the same on every runner. A negative count for
the multinomial model stops the job with one line naming the partition, the row and the feature. The
shipped parameters are not used.
"""

from mrtrain.engine.naive_bayes import class_statistics
from mrtrain.mr_jobs.partition_job import PartitionSumJob


class MRNaiveBayes(PartitionSumJob):
    """Class-wise statistics of each partition, tagged with its partition id."""

    def partial_vector(self, X, y, w):
        return class_statistics(self.model, X, y, w)


if __name__ == "__main__":
    MRNaiveBayes.run()
