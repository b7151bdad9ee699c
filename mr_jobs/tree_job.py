"""Shared shape of the tree ensembles' jobs: the task carries a :class:`~mrtrain.engine.tree_pass.PassState`.

The driver (:mod:`mrtrain.tree_training`) writes the state's JSON header into the task file (``"trees"``)
and its arrays as the one parameter point of the ``--params`` file, shape (1, L): the jobs read their
partitions, check them and cache them exactly as the other partition jobs do (:mod:`.partition_job`), and
each partition's vector is :meth:`~mrtrain.engine.tree_pass.PassState.partition_vector`.
"""

import numpy as np

from mrtrain.engine.tree_pass import PassState
from mrtrain.mr_jobs.partition_job import PartitionSumJob, failures_named
from mrtrain.storage.errors import DataError


class TreeTask:
    """What a tree job's task does differently from a model's: its state, labels and vector (a mixin of
    :class:`~mrtrain.mr_jobs.partition_job.PartitionJob` subclasses)."""

    def mapper_init_load_task(self):
        import json

        from mrtrain.storage.partition_cache import PartitionCache

        with open(self.options.task, encoding="utf-8") as handle:
            self.task = json.load(handle)
        points = np.load(self.options.params, allow_pickle=False)
        if points.ndim != 2 or points.shape[0] != 1:
            raise ValueError(f"{self.options.params}: expected one packed tree state, shape (1, L), found "
                             f"shape {points.shape}")
        self.state = PassState.from_wire(self.task["trees"], points[0])
        self.cache = PartitionCache() if self.task.get("partition_cache", True) else None

    def encoded_labels(self, partition_id, uri, y_raw):
        """The labels as raw floats; a class the training data lacks is a :class:`PartitionDataError`
        naming the partition and the row."""
        with failures_named(partition_id, uri):
            try:
                self.state.labels(y_raw)
            except ValueError as error:
                rows = [i for i in range(len(y_raw)) if _refused(self.state, y_raw[i:i + 1])]
                where = f"row {rows[0] + 1}: " if rows else ""
                raise DataError(f"{uri}: {where}column 'label': {error}") from None
        return y_raw

    def partial_vector(self, X, y, w):
        return self.state.partition_vector(X, y, w, self.partition_id)


def _refused(state, y):
    try:
        state.labels(y)
    except ValueError:
        return True
    return False


class TreePassJob(TreeTask, PartitionSumJob):
    """A partition-sum job over a tree pass's state (module docstring)."""
