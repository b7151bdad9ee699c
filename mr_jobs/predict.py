"""Predict job: score every partition and write one Parquet output partition per input partition.

Map-only. Each mapper reads one partition, computes the model's predictions (and class probabilities), and
writes ``part-NNNNN.parquet`` into the shipped output directory itself (atomically, through
:mod:`storage`), so predictions never travel through the driver. The mapper emits
``(partition id, rows written)`` for the driver's manifest of the output.

Columns (:func:`predictions_table`): ``row`` (the dataset's 0-based row index, from the task's
``row_offsets``), the dataset's kept columns (``ingest --id/--keep``, read from the partition's
``keep-NNNNN.parquet``), ``label`` (unless the dataset has none), ``prediction``, then the model's
outputs: one ``probability_<class>`` column per class, or ``margin``, or k-means' ``distance``. With class
names (string labels), ``label`` and ``prediction`` hold the names.
"""

import mrtrain.mr_jobs  # noqa: F401  (first: mrtrain/__init__.py provides what mrjob needs, mrtrain._mrjob_compat)

# isort: split
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from mrjob.protocol import JSONProtocol
from mrjob.step import MRStep

from mrtrain.engine.overflow import RESCALE_ADVICE
from mrtrain.mr_jobs.partition_job import PartitionJob, failures_named, single_threaded_blas
from mrtrain.storage.dataset import read_kept
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import get_filesystem, join


def predictions_table(model, X, y_raw, theta, *, first_row=0, class_labels=None, class_names=None,
                      has_label=True, kept=None):
    """Arrow table of predictions for one block of rows.

    Parameters
    ----------
    model : mrtrain.engine.models.Model
    X : ndarray or scipy sparse matrix, shape (n, d)
    y_raw : ndarray, shape (n,)
        Labels as stored.
    theta : ndarray, shape (p,)
    first_row : int
        The dataset's row index of the block's first row.
    class_labels : list of str, optional
        Each class's column name suffix (``probability_<class>``); default the labels as ``%g``.
    class_names : list of str, optional
        String labels: ``label`` and ``prediction`` are written as these names of the class codes.
    has_label : bool
        False: no ``label`` column (a dataset ingested without one).
    kept : pyarrow.Table, optional
        The block's kept columns, written after ``row``.

    Raises
    ------
    DataError
        If a prediction is not finite (float64 overflowed), naming the first such row and column.
    """
    n = len(y_raw)
    columns = {"row": pa.array(np.arange(first_row, first_row + n, dtype=np.int64))}
    for name in kept.column_names if kept is not None else ():
        columns[name] = kept.column(name)
    names = None if class_names is None else np.asarray(class_names, dtype=object)
    if has_label:
        columns["label"] = (pa.array(y_raw, type=pa.float64()) if names is None
                            else pa.array(names[y_raw.astype(np.intp)].tolist(), type=pa.string()))
    classes = model.classes
    labels = class_labels or ([f"{c:g}" for c in classes] if classes is not None else None)
    for name, values in model.predict(X, theta).items():
        finite = np.isfinite(values) if values.ndim == 1 else np.isfinite(values).all(axis=1)
        if not finite.all():
            row = int(np.argmin(finite))
            raise DataError(f"row {row + 1}: column {name!r}: expected a finite prediction, found "
                            f"{values[row].tolist()!r} (float64 overflowed; {RESCALE_ADVICE})")
        if name == "prediction" and names is not None:
            columns[name] = pa.array(names[values.astype(np.intp)].tolist(), type=pa.string())
        elif name == "probabilities":
            for k, label in enumerate(labels):
                columns[f"probability_{label}"] = pa.array(values[:, k].astype("float64"), type=pa.float64())
        elif name == "probability":
            columns[f"probability_{labels[0]}"] = pa.array(1.0 - values.astype("float64"), type=pa.float64())
            columns[f"probability_{labels[1]}"] = pa.array(values.astype("float64"), type=pa.float64())
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
        task = self.task
        with failures_named(partition_id, uri):
            with single_threaded_blas():
                kept = None
                if task.get("kept"):
                    entry = task["kept"][partition_id]
                    kept = read_kept(entry["uri"], entry["bytes"], entry["sha256"], task["kept_columns"],
                                     len(y_raw))
                offsets = task.get("row_offsets")
                table = predictions_table(
                    self.model, X, y_raw, self.thetas[0], first_row=offsets[partition_id] if offsets else 0,
                    class_labels=task.get("class_labels"), class_names=task.get("class_names"),
                    has_label=task.get("has_label", True), kept=kept)
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            destination = join(self.task["output"], f"part-{partition_id:05d}.parquet")
            get_filesystem(destination).write_bytes(destination, buffer.getvalue())  # names it on error
        yield partition_id, table.num_rows


if __name__ == "__main__":
    MRPredict.run()
