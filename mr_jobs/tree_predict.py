"""Predict job of a tree ensemble: :mod:`.predict`'s job (one Parquet file per partition, written by the
map task; the same columns) with the ensemble shipped as a tree pass's state (:mod:`.tree_job`)."""

import numpy as np

from mrtrain.engine.tree_pass import PassState
from mrtrain.mr_jobs.predict import MRPredict


class TreeScorer:
    """What :func:`mrtrain.mr_jobs.predict.predictions_table` asks of a model, for a tree ensemble."""

    def __init__(self, state):
        self.state = state
        self.classes = state.classes

    def predict(self, X, _theta):
        """``{"prediction", "probability" | "probabilities"}`` (classifiers) or ``{"prediction"}``."""
        _, prediction = self.state.outputs(X)
        if self.classes is None:
            return {"prediction": prediction}
        p = prediction if prediction.ndim == 2 else np.column_stack((1 - prediction, prediction))
        index = np.argmax(p, axis=1)
        labels = np.asarray(self.classes, dtype=np.float64)[index]
        if prediction.ndim == 1:
            return {"prediction": labels, "probability": prediction}
        return {"prediction": labels, "probabilities": prediction}


class MRTreePredict(MRPredict):
    """Write a tree ensemble's predictions for every partition; output ``(partition id, rows)``."""

    def mapper_init_load_task(self):
        import json

        from mrtrain.storage.partition_cache import PartitionCache

        with open(self.options.task, encoding="utf-8") as handle:
            self.task = json.load(handle)
        self.thetas = np.load(self.options.params, allow_pickle=False)
        self.model = TreeScorer(PassState.from_wire(self.task["trees"], self.thetas[0]))
        self.cache = PartitionCache() if self.task.get("partition_cache", True) else None


if __name__ == "__main__":
    MRTreePredict.run()
