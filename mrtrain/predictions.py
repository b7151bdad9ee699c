"""What every fitted model (:class:`mrtrain.fitted.FittedModel`, :class:`mrtrain.tree_fitted.TreeFittedModel`)
does the same way around its own evaluate and predict jobs: checking that a dataset is like the training
data, and writing a predictions directory complete or not at all.

A predictions directory holds one ``part-NNNNN.parquet`` per input partition, written by the predict job's
tasks, and :data:`PREDICTIONS_MANIFEST`; the tasks write into a temporary sibling directory that is renamed
to the output only when every partition is done, so a failed run leaves no partial output.
"""

import json
import logging

import numpy as np

from mrtrain.launcher import task_uri
from mrtrain.storage.dataset import Dataset
from mrtrain.storage.encoding import encoding_difference
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import absolute, get_filesystem, join, temp_sibling

log = logging.getLogger(__name__)

#: Name of the small manifest written next to prediction partitions.
PREDICTIONS_MANIFEST = "_predictions.json"


def check_like_training(dataset, settings, *, n_features, class_names, class_labels, has_classes):
    """Refuse a dataset unlike the training data of a model: other features, another categorical encoding,
    other classes.

    Parameters
    ----------
    dataset : mrtrain.storage.dataset.Dataset
    settings : dict
        The training's settings (``data``, ``data_checksum`` and ``encoding`` where recorded).
    n_features : int
        The model's features.
    class_names, class_labels : list of str or None
        The model's class names (string labels) and its classes as outputs show them.
    has_classes : bool
        Whether the model is a classifier.

    Raises
    ------
    DataError
        One line naming the dataset, what was expected and what was found.
    """
    if dataset.n_features != n_features:
        raise DataError(f"{dataset.uri}: expected {n_features} features (as in training), found "
                        f"{dataset.n_features}")
    difference = _encoding_difference(dataset, settings)
    if difference is not None:
        raise DataError(f"{dataset.uri}: expected the categorical encoding of the training data (ingest it "
                        f"with --like TRAINING_DATASET): {difference}")
    if dataset.has_label and has_classes and dataset.class_names != class_names:
        raise DataError(f"{dataset.uri}: field '{dataset.label_name}': expected the classes of the training "
                        f"data {class_labels} (ingest it with --like TRAINING_DATASET), found "
                        f"{dataset.class_names or dataset.classes}")


def _encoding_difference(dataset, settings):
    """The difference between ``dataset``'s encoding and the training data's, or None.

    The training dataset (``settings["data"]``, if it is still there with the recorded checksum) names the
    difference; else the encoding digest the trainer recorded (``settings["encoding"]``), if any.
    """
    training = None
    try:
        training = Dataset.open(settings["data"])
    except (KeyError, OSError, DataError):
        pass
    if training is not None and training.checksum == settings.get("data_checksum"):
        return encoding_difference(training.encoding, dataset.encoding)
    if "encoding" in settings and settings["encoding"] != dataset.encoding_digest:
        return f"encoding digest: expected {settings['encoding']}, found {dataset.encoding_digest}"
    return None


def predict_task(dataset, output, *, class_labels, class_names):
    """What every predict job's tasks need beyond the model: where to write (``output``, a staging
    directory), each partition's first row, the class names and labels, the kept columns' files."""
    offsets = np.concatenate([[0], np.cumsum([part.rows for part in dataset.partitions])[:-1]])
    task = {"output": task_uri(output), "row_offsets": [int(v) for v in offsets],
            "class_labels": class_labels, "class_names": class_names, "has_label": dataset.has_label}
    if dataset.kept_columns:
        files = [dataset.kept_file(part.index) for part in dataset.partitions]
        task.update(kept_columns=dataset.kept_columns,
                    kept=[{**entry, "uri": task_uri(entry["uri"])} for entry in files])
    return task


def write_predictions(dataset, output, run_job, *, model, class_labels):
    """Write the predictions of ``model`` for ``dataset`` into the new directory ``output``.

    Parameters
    ----------
    dataset : mrtrain.storage.dataset.Dataset
    output : str
        A new directory (local or ``hdfs://``).
    run_job : callable
        ``run_job(staging)`` runs the predict job writing into the directory ``staging`` and returns its
        records, ``(partition index, rows written)`` each.
    model : str
        The model's name, for the manifest.
    class_labels : list of str or None
        The classes as the predictions show them, for the manifest.

    Returns
    -------
    dict
        The written ``_predictions.json`` content.

    Raises
    ------
    FileExistsError
        If ``output`` exists.
    """
    output = absolute(output)
    fs = get_filesystem(output)
    if fs.exists(output):
        raise FileExistsError(f"{output}: output already exists; choose a new path")
    staging = temp_sibling(output)
    fs.makedirs(staging)
    try:
        rows = dict(run_job(staging))
        expected = [part.index for part in dataset.partitions]
        if sorted(rows) != expected:
            raise RuntimeError(f"Predictions written for partitions {sorted(rows)}; expected {expected}.")
        manifest = {
            "format": "mrtrain-predictions", "version": 1, "source": dataset.uri,
            "source_checksum": dataset.checksum, "model": model,
            "partitions": [{"file": f"part-{index:05d}.parquet", "rows": rows[index]} for index in expected],
            "n_rows": sum(rows.values()),
            **({} if class_labels is None else {"classes": class_labels}),
        }
        fs.write_bytes(join(staging, PREDICTIONS_MANIFEST), json.dumps(manifest, indent=1).encode())
        fs.rename(staging, output)
    except BaseException:
        fs.delete(staging, recursive=True)
        raise
    log.info("wrote predictions for %d rows to %s", manifest["n_rows"], output)
    return manifest
