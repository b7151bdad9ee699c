"""Online-learning initialisation job: one epoch of AdaGrad per partition, averaged by weight.

Vowpal Wabbit's recipe for batch learners on Hadoop (Agarwal, Chapelle, Dudík, Langford, JMLR 2014, "A
Reliable Effective Terascale Linear Learning System", section 3): before the first batch pass, every mapper
runs one epoch of online learning over its own partition, and the weighted average of the per-partition
models is the batch optimizer's starting point. Here each mapper runs mini-batch AdaGrad (per-coordinate
steps ``learning_rate / sqrt(Σ g²)``) over its rows in stored order, ``batch_rows`` rows at a time, on the
same objective the optimizer minimises (the model's mean loss plus ``(l2/2)‖w‖²``; an l1 term is left to
the optimizer), starting from zero. It emits ``[W_k, W_k θ_k]`` (``W_k`` the partition's total sample
weight); the reducer adds them in partition order and the driver divides, so the starting point is the
same bits on every runner.
"""

import numpy as np

from mrtrain.mr_jobs.partition_job import PartitionSumJob

#: Added under the square root of AdaGrad's accumulated squares (a coordinate never seen moves by 0).
EPSILON = 1e-12


def online_epoch(model, X, y, w, *, l2, learning_rate, batch_rows):
    """One epoch of mini-batch AdaGrad over the rows of ``X`` in order, from zero: the final parameters."""
    theta = np.zeros(model.n_params)
    squares = np.zeros(model.n_params)
    mask = model.penalty_mask()
    for start in range(0, X.shape[0], batch_rows):
        stop = start + batch_rows
        sums = model.partial_sums(X[start:stop], y[start:stop], None if w is None else w[start:stop],
                                  theta[None, :])
        if not sums.weight > 0:
            continue
        grad = sums.grad[0] / sums.weight + l2 * mask * theta
        squares += grad * grad
        theta = theta - learning_rate * grad / np.sqrt(squares + EPSILON)
    return theta


class MROnlineInit(PartitionSumJob):
    """Sum of ``[W_k, W_k θ_k]`` over partitions, ``θ_k`` one online epoch over partition ``k``."""

    def partial_vector(self, X, y, w):
        settings = self.task["online"]
        theta = online_epoch(self.model, X, y, w, l2=settings["l2"], learning_rate=settings["learning_rate"],
                             batch_rows=settings["batch_rows"])
        weight = float(X.shape[0] if w is None else np.sum(w))
        return np.concatenate([[weight], weight * theta])


if __name__ == "__main__":
    MROnlineInit.run()
