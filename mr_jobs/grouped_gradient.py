"""Grouped gradient job: the gradient job's sums, separately for every group of rows of a row split.

The task's ``"split"`` (:mod:`mrtrain.engine.folds`: k folds, or a hold-out part) puts every row of a
partition in one group by a stable hash of (partition id, row index). Each mapper emits, for groups
``0 .. G-1`` in order, the flattened :class:`mrtrain.engine.models.PartialSums` of that group's rows at all
``m`` parameter points (Hessians at the first ``k``: the task's ``"hessian"``), concatenated. The reducer
adds the partitions' vectors in partition order, as for :mod:`mrtrain.mr_jobs.gradient`, so the sums of
every group are bitwise the same on every runner. The driver adds the groups a model trains on and scores
it on the others (:mod:`mrtrain.engine.grid`), so k-fold cross-validation costs no extra pass. AllReduce
tasks (:mod:`mrtrain.mr_jobs.allreduce_job`) serve the same vectors with :func:`grouped_vector`.

Points are evaluated in chunks so that a chunk's margins hold at most :data:`CHUNK_ELEMENTS` numbers
(hundreds of trial points of many models share a pass).
"""

import numpy as np

from mrtrain.engine.folds import n_groups, row_groups
from mrtrain.engine.models import PartialSums
from mrtrain.mr_jobs.partition_job import PartitionSumJob

#: Most margins (rows x points x outputs) one chunk of points computes at once: 32 MiB of float64.
CHUNK_ELEMENTS = 2**22


def chunked_partial_sums(model, X, y, w, thetas, hessian):
    """``model.partial_sums`` at ``thetas``, evaluated a chunk of points at a time (same result layout)."""
    m = thetas.shape[0]
    per_point = max(1, X.shape[0] * model.n_outputs)
    size = max(1, CHUNK_ELEMENTS // per_point)
    if size >= m:
        return model.partial_sums(X, y, w, thetas, hessian=hessian)
    chunks = []
    for start in range(0, m, size):
        stop = min(m, start + size)
        chunks.append(model.partial_sums(X, y, w, thetas[start:stop],
                                         hessian=min(max(hessian - start, 0), stop - start)))
    hess = [chunk.hess for chunk in chunks if chunk.hess is not None]
    return PartialSums(
        chunks[0].weight, np.concatenate([chunk.loss for chunk in chunks]),
        np.concatenate([chunk.grad for chunk in chunks]), np.concatenate(hess) if hess else None,
    )


def group_rows(split, partition_id, X, y, w):
    """``(X, y, w)`` of every group of ``split`` in order (sparse ``X`` stays sparse)."""
    groups = row_groups(split, partition_id, X.shape[0])
    for group in range(n_groups(split)):
        rows = np.flatnonzero(groups == group)
        yield X[rows], y[rows], None if w is None else w[rows]


def grouped_vector(model, split, partition_id, X, y, w, thetas, hessian):
    """One partition's vector: the flattened sums of each group of ``split``, in group order."""
    return np.concatenate([
        chunked_partial_sums(model, Xg, yg, wg, thetas, hessian).to_vector()
        for Xg, yg, wg in group_rows(split, partition_id, X, y, w)
    ])


class MRGroupedGradient(PartitionSumJob):
    """Loss / gradient / Hessian sums per row group over all partitions at each parameter point."""

    def partial_vector(self, X, y, w):
        return grouped_vector(self.model, self.task["split"], self.partition_id, X, y, w, self.thetas,
                              self.task["hessian"])


if __name__ == "__main__":
    MRGroupedGradient.run()
