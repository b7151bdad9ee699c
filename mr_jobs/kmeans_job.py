"""k-means job: cluster statistics of every partition at the shipped centres, or the rows k-means|| samples.

The shipped ``--params`` file holds the centres, one parameter point each, shape (k, d). The task's
``"pass"`` setting says what a mapper computes for its partition
(:mod:`mrtrain.engine.kmeans`):

- ``"statistics"``: each row's nearest centre and :func:`~mrtrain.engine.kmeans.cluster_statistics` (rows,
  weight, inertia and weighted feature sums per centre); the reducer adds the partitions' vectors in
  partition order. A Lloyd pass, k-means||'s cost and candidate-weight passes, and ``evaluate``. With
  ``"groups": N`` the centres are N sets of ``k = rows / N`` (the starts of ``n_init``), each row is
  assigned within every set, and the vector is the N sets' statistics one after the other: one pass
  serves every start's Lloyd iteration, each set's sums bitwise those of a pass of its own.
- ``"sample"`` (map-only): the rows k-means|| keeps in step ``"step"``, drawn from the partition's own
  stream :func:`~mrtrain.engine.kmeans.partition_stream` with ``"phi"`` and ``"oversampling"``; with
  ``"pick": [partition, row]``, that one row (k-means||'s first centre). The vector is the kept rows,
  flattened; the driver concatenates them in partition order.

Labels are read but ignored.
"""

import numpy as np

from mrtrain.engine.kmeans import cluster_statistics, partition_stream, sample_rows
from mrtrain.mr_jobs.partition_job import PartitionSumJob, parse_partition_line


class MRKMeans(PartitionSumJob):
    """Cluster statistics (summed) or sampled rows (map-only) of each partition at the shipped centres."""

    def mapper_partition_sums(self, key, line):
        self.partition_id = parse_partition_line(line).partition_id
        yield from super().mapper_partition_sums(key, line)

    def partial_vector(self, X, y, w):
        X = self.model.features(X)  # float64, whatever the stored type
        if self.task["pass"] == "statistics":
            groups = self.task.get("groups", 1)
            if groups == 1:
                return cluster_statistics(X, w, self.thetas)
            return np.concatenate([cluster_statistics(X, w, centers)
                                   for centers in np.split(self.thetas, groups)])
        pick = self.task.get("pick")
        if pick is not None:
            partition, row = pick
            if partition != self.partition_id:
                return np.zeros(0)
            chosen = X[row : row + 1]
            return (chosen.toarray() if hasattr(chosen, "toarray") else np.asarray(chosen)).ravel()
        rng = partition_stream(self.task["seed"], self.task["step"], self.partition_id)
        return sample_rows(X, w, self.thetas, self.task["phi"], self.task["oversampling"], rng).ravel()


if __name__ == "__main__":
    MRKMeans.run()
