"""Predict job: score every partition and write one Parquet output partition per input partition.

Map-only. Each mapper reads one partition, computes the model's predictions (and class probabilities), and
writes ``part-NNNNN.parquet`` into the shipped output directory itself (atomically, through
:mod:`storage`), so predictions never travel through the driver. The mapper emits
``(partition id, rows written)`` for the driver's manifest of the output.
"""

import mrtrain.mr_jobs  # noqa: F401  (first: mrtrain/__init__.py provides what mrjob needs, mrtrain._mrjob_compat)

# isort: split
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from mrjob.protocol import JSONProtocol
from mrjob.step import MRStep

from mrtrain.mr_jobs.partition_job import PartitionJob, failures_named, single_threaded_blas
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import get_filesystem, join


def predictions_table(model, X, y_raw, theta):
    """Arrow table of predictions for one block: ``label`` plus the model's prediction columns.

    Matrices (softmax ``probabilities``, shape (n, K)) become ``fixed_size_list<float64>[K]`` columns.

    Raises
    ------
    DataError
        If a prediction is not finite (float64 overflowed), naming the first such row and column.
    """
    columns = {"label": pa.array(y_raw, type=pa.float64())}
    for name, values in model.predict(X, theta).items():
        finite = np.isfinite(values) if values.ndim == 1 else np.isfinite(values).all(axis=1)
        if not finite.all():
            row = int(np.argmin(finite))
            raise DataError(f"row {row + 1}: column {name!r}: expected a finite prediction, found "
                            f"{values[row]!r} (float64 overflowed: features this large need rescaling)")
        if values.ndim == 2:
            flat = pa.array(values.astype("float64").ravel(), type=pa.float64())
            columns[name] = pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
        else:
            columns[name] = pa.array(values.astype("float64"), type=pa.float64())
    return pa.table(columns)


class MRPredict(PartitionJob):
    """Write predictions for every partition; output ``(partition id, rows)``."""

    OUTPUT_PROTOCOL = JSONProtocol

    def steps(self):
        return [MRStep(mapper_init=self.mapper_init_load_task, mapper=self.mapper_write_predictions)]

    def mapper_write_predictions(self, _, line):
        partition_id, uri, X, y_raw, _w = self.read_partition_line(line)
        with failures_named(partition_id, uri), single_threaded_blas():
            table = predictions_table(self.model, X, y_raw, self.thetas[0])
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        destination = join(self.task["output"], f"part-{partition_id:05d}.parquet")
        get_filesystem(destination).write_bytes(destination, buffer.getvalue())
        yield partition_id, table.num_rows


if __name__ == "__main__":
    MRPredict.run()
