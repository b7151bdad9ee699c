"""Gradient job: loss and gradient sums of a model at m parameter points, Hessian sums at the first k.

Each mapper reads one Parquet partition and computes, in one vectorised pass, the sums
``Σ sᵢ``, ``Σ sᵢ ℓ`` and ``Σ sᵢ ∇ℓ`` at every parameter point in the shipped ``--params`` file (the
optimizer's trial points), and ``Σ sᵢ ∇²ℓ`` at the first ``k`` of them, where the task's ``"hessian"``
setting is the int ``k`` (0: no Hessian; Newton asks for 1). The reducer adds the partitions' sums in
partition order. Output: one record per shard, the flattened :class:`mrtrain.engine.models.PartialSums`.
"""

from mrtrain.mr_jobs.partition_job import PartitionSumJob


class MRGradient(PartitionSumJob):
    """Sum of loss / gradient / Hessian over all partitions at each parameter point."""

    def partial_vector(self, X, y, w):
        sums = self.model.partial_sums(X, y, w, self.thetas, hessian=self.task["hessian"])
        return sums.to_vector()


if __name__ == "__main__":
    MRGradient.run()
