"""k-means predict job: the nearest centre's index and the distance to it, one Parquet file per partition.

:class:`~mrtrain.mr_jobs.predict.MRPredict` with the centres shipped as the parameter points, shape (k, d),
like every k-means job; each task makes them the one parameter vector (their ravel) that
:meth:`mrtrain.engine.kmeans.KMeansModel.predict` takes. Output columns: ``label`` (as stored),
``prediction`` (the centre index) and ``distance`` (Euclidean).
"""

from mrtrain.mr_jobs.predict import MRPredict


class MRKMeansPredict(MRPredict):
    """Write every partition's nearest-centre indices and distances; output ``(partition id, rows)``."""

    def mapper_init_load_task(self):
        super().mapper_init_load_task()
        self.thetas = self.thetas.reshape(1, -1)


if __name__ == "__main__":
    MRKMeansPredict.run()
