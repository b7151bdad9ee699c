"""Gradient job: loss, gradient (and optionally Hessian) sums of a model at m parameter points.

Each mapper reads one Parquet partition and computes, in one vectorised pass, the sums
``Σ sᵢ``, ``Σ sᵢ ℓ``, ``Σ sᵢ ∇ℓ`` (and ``Σ sᵢ ∇²ℓ`` when the task asks for it) at every parameter point in
the shipped ``--params`` file (the optimizer's trial points). The reducer adds the partitions' sums in
partition order. Output: one record per shard, the flattened :class:`engine.models.PartialSums`.
"""

from mr_jobs.partition_job import PartitionSumJob


class MRGradient(PartitionSumJob):
    """Sum of loss / gradient / Hessian over all partitions at each parameter point."""

    def partial_vector(self, X, y, w):
        sums = self.model.partial_sums(X, y, w, self.thetas, hessian=self.task["hessian"])
        return sums.to_vector()


if __name__ == "__main__":
    MRGradient.run()
