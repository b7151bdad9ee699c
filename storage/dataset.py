"""The dataset format: a directory of Parquet partitions plus a ``_dataset.json`` manifest.

A dataset has one of two layouts, recorded in the manifest's ``"layout"`` (absent means dense, so
manifests written before sparse data still read):

- ``"dense"``: each partition holds ``features: fixed_size_list<float64>[d]`` (or float32) and
  decodes zero-copy into an ``(n, d)`` C-contiguous ndarray.
- ``"csr"``: each partition holds ``indices: list<int32>`` (0-based columns, sorted and unique in
  each row) and ``values: list<float64>`` (or float32) with the same list offsets, and decodes
  without copying the value and index buffers into a ``scipy.sparse.csr_array`` of shape
  ``(n, d)``; the manifest records each partition's ``nnz`` (stored values). Rows are never
  densified, so ``d`` may be far larger than a dense dataset's.

Both layouts have ``label: float64`` and optionally ``weight: float64``. The manifest records the
schema, the label classes (``label.classes``; for string labels also ``label.class_names``, the names of
the class codes ``0 .. K-1`` stored as labels, sorted as scikit-learn's ``LabelEncoder`` sorts them; a
dataset ingested without its label column, for ``predict`` only, has ``label.absent: true`` and zeros as
labels), the columns kept for predictions (``"keep"``: an id and other columns that are no features,
stored per partition in ``keep-NNNNN.parquet`` beside it, with their bytes and sha256), the rows, bytes
and sha256 of every partition, and a sha256 checksum of its own canonical JSON. Feature names are recorded
only when they are not the default ``f0 ... f{d-1}``, so the manifest's size does not grow with ``d``.
A dataset ingested with categorical columns (or ``--impute``) records its ``"encoding"`` instead
(:mod:`mrtrain.storage.encoding`: numeric columns, hashing or one-hot levels, imputation), from which
its feature names derive. A dataset ingested with ``--keep-missing`` records ``"missing": true``: its
features may hold NaN, a missing value (never an infinity); labels and weights are always finite.

Nothing read is trusted: every manifest field is checked for its type and range, and a partition
read is checked against the manifest (bytes, sha256, rows, columns) and for finite values. The
limits, each refused with a one-line error naming the file:

- ``MAX_MANIFEST_BYTES`` (16 MiB): the size of ``_dataset.json``.
- ``MAX_FEATURES`` (2**20): the number of features ``d`` of a dense dataset.
- ``MAX_DENSE_CELLS`` (2**28, 2 GiB of float64): rows x features of one dense array held in memory,
  a partition or a source being ingested.
- ``MAX_SPARSE_FEATURES`` (2**30): the number of features ``d`` of a csr dataset (column indices
  are int32).
- ``MAX_PARTITION_NNZ`` (2**28): the stored values of one csr partition, and its rows; it bounds a
  csr partition's memory as ``MAX_DENSE_CELLS`` bounds a dense one's.
- ``MAX_PARTITIONS`` (10,000): the number of partitions.

This module is the dataset as a whole: :class:`Dataset` (open, validate, read) and :func:`write_dataset`.
The manifest's names, limits and validation are :mod:`mrtrain.storage.manifest`; reading partitions is
:mod:`mrtrain.storage.partition_read`, writing them :mod:`mrtrain.storage.partition_write`. Their public
names are importable from here too.
"""

import functools
import hashlib
import json
import logging
from dataclasses import dataclass

import numpy as np

from mrtrain.storage import encoding as _encoding
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import absolute, get_filesystem, join, temp_sibling
from mrtrain.storage.manifest import (
    DTYPES,
    FEATURES,
    FORMAT,
    INDICES,
    LABEL,
    LAYOUTS,
    MANIFEST_NAME,
    MAX_CLASSES,
    MAX_DENSE_CELLS,
    MAX_FEATURES,
    MAX_INT64,
    MAX_KEPT_COLUMNS,
    MAX_MANIFEST_BYTES,
    MAX_PARTITION_NNZ,
    MAX_PARTITIONS,
    MAX_SPARSE_FEATURES,
    N_FEATURES_KEY,
    VALUES,
    VERSION,
    WEIGHT,
    canonical_json,
    check_dense_cells,
    check_dtype,
    check_n_features,
    check_partitioning,
    default_feature_names,
    keep_name,
    manifest_checksum,
    max_features,
    partition_name,
    short_repr,
    validate_class_names,
    validate_classes,
    validate_manifest,
)
from mrtrain.storage.partition_read import (
    check_csr_indices,
    check_finite,
    decode_partition,
    features_to_csr,
    features_to_numpy,
    first_nonfinite,
    numpy_view,
    partition_layout,
    read_kept,
    read_partition,
    read_table,
)
from mrtrain.storage.partition_write import (
    csr_partition_bounds,
    encode_partition,
    label_classes,
    partition_bounds,
    validate_arrays,
    validate_sparse,
    write_kept,
)

__all__ = [
    "DTYPES",
    "Dataset",
    "FEATURES",
    "FORMAT",
    "INDICES",
    "LABEL",
    "LAYOUTS",
    "MANIFEST_NAME",
    "MAX_CLASSES",
    "MAX_DENSE_CELLS",
    "MAX_FEATURES",
    "MAX_INT64",
    "MAX_KEPT_COLUMNS",
    "MAX_MANIFEST_BYTES",
    "MAX_PARTITIONS",
    "MAX_PARTITION_NNZ",
    "MAX_SPARSE_FEATURES",
    "N_FEATURES_KEY",
    "PartitionInfo",
    "VALUES",
    "VERSION",
    "WEIGHT",
    "canonical_json",
    "check_csr_indices",
    "check_dense_cells",
    "check_dtype",
    "check_finite",
    "check_n_features",
    "check_partitioning",
    "csr_partition_bounds",
    "decode_partition",
    "default_feature_names",
    "encode_partition",
    "features_to_csr",
    "features_to_numpy",
    "first_nonfinite",
    "keep_name",
    "label_classes",
    "manifest_checksum",
    "max_features",
    "numpy_view",
    "partition_bounds",
    "partition_layout",
    "partition_name",
    "read_kept",
    "read_partition",
    "read_table",
    "refuse_missing",
    "validate_manifest",
    "write_dataset",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionInfo:
    """One partition of a dataset: its index, full URI, row count, byte size, sha256 and, csr only, nnz."""

    index: int
    uri: str
    rows: int
    bytes: int
    sha256: str
    nnz: int | None = None


class Dataset:
    """An opened, validated dataset; build one with :meth:`Dataset.open` or ``write_dataset``.

    Attributes
    ----------
    uri : str
        The dataset directory.
    manifest : dict
        The parsed ``_dataset.json``.
    n_features : int
        Number of features ``d``.
    feature_names : list of str, length d
        The recorded names, else the default ``f0 ... f{d-1}`` (built on first use).
    dtype : str
        ``"float64"`` or ``"float32"``, the element type of the stored feature values.
    layout : str
        ``"dense"`` or ``"csr"``; partitions decode to an ndarray or a ``scipy.sparse.csr_array``.
    nnz : int
        Stored feature values: the partitions' nnz for csr, ``n_rows * n_features`` for dense.
    label_name : str
    classes : list of float or None
        Sorted distinct labels when they are integer-valued and at most 1000; else None.
    class_names : list of str or None
        String labels: the name of each class code ``classes[k] == k``; None for numeric labels.
    has_label : bool
        False for a dataset ingested without its label column (``predict`` only).
    kept_columns : list of str
        Columns passed through to predictions (``ingest --id/--keep``), the id first; empty without.
    id_column : str or None
    weight_name : str or None
    has_weight : bool
    n_rows : int
    checksum : str
        The manifest's sha256 checksum; identifies the dataset's content.
    partitions : list of PartitionInfo
    encoding : dict or None
        The categorical encoding of an ingest with ``--categorical`` or ``--impute`` (see
        :mod:`mrtrain.storage.encoding`); None otherwise.
    encoding_digest : str or None
        16 hex digits identifying ``encoding``; None without one.
    has_missing : bool
        Ingested with ``--keep-missing``: NaN in the features marks a missing value.
    """

    def __init__(self, uri, manifest):
        self.uri = uri
        self.manifest = manifest
        self.n_features = manifest["n_features"]
        self.dtype = manifest["dtype"]
        self.layout = manifest.get("layout", "dense")
        self.label_name = manifest["label"]["name"]
        classes = manifest["label"]["classes"]
        self.classes = None if classes is None else [float(c) for c in classes]
        names = manifest["label"].get("class_names")
        self.class_names = None if names is None else list(names)
        self.has_label = not manifest["label"].get("absent", False)
        keep = manifest.get("keep") or {"columns": [], "id": None, "partitions": []}
        self.kept_columns, self.id_column = list(keep["columns"]), keep["id"]
        self._kept_partitions = keep["partitions"]
        self.weight_name = manifest["weight"]
        self.has_weight = manifest["weight"] is not None
        self.n_rows = manifest["n_rows"]
        self.checksum = manifest["checksum"]
        self.encoding = manifest.get("encoding")
        self.encoding_digest = _encoding.encoding_digest(self.encoding)
        self.has_missing = manifest.get("missing", False)
        self.partitions = [
            PartitionInfo(i, join(uri, p["file"]), p["rows"], p["bytes"], p["sha256"], p.get("nnz"))
            for i, p in enumerate(manifest["partitions"])
        ]
        self.nnz = (sum(p.nnz for p in self.partitions) if self.layout == "csr"
                    else self.n_rows * self.n_features)

    @functools.cached_property
    def feature_names(self):
        names = self.manifest.get("feature_names")
        if names is None and self.encoding is not None:
            return _encoding.feature_names(self.encoding)
        return default_feature_names(self.n_features) if names is None else list(names)

    def __repr__(self):
        return (
            f"Dataset({self.uri!r}, n_rows={self.n_rows}, n_features={self.n_features}, "
            f"layout={self.layout!r}, nnz={self.nnz}, partitions={len(self.partitions)})"
        )

    @classmethod
    def open(cls, uri):
        """Read and validate the manifest of the dataset directory ``uri`` (a relative path is made
        absolute: the dataset's ``uri`` and its partitions' do not depend on the working directory).

        Raises
        ------
        FileNotFoundError
            If the directory does not exist.
        DataError
            If the manifest is missing, over ``MAX_MANIFEST_BYTES``, malformed, fails its checksum, has a
            field of the wrong type or out of range, or names a partition file that does not exist.
        OSError
            If the manifest is not a regular file (a FIFO, a device).
        """
        uri = absolute(str(uri))
        fs = get_filesystem(uri)
        if not fs.isdir(uri):
            if fs.exists(uri):
                raise DataError(f"{uri}: expected a dataset directory, found a file")
            raise FileNotFoundError(f"{uri}: dataset directory does not exist")
        names = set(fs.listdir(uri))
        if MANIFEST_NAME not in names:
            raise DataError(
                f"{uri}: not an mrtrain dataset: no {MANIFEST_NAME} "
                "(create one with `mrtrain ingest`)"
            )
        manifest_uri = join(uri, MANIFEST_NAME)
        data = fs.read_bytes(manifest_uri, max_bytes=MAX_MANIFEST_BYTES)
        try:
            manifest = json.loads(data, parse_constant=_refuse_constant)
        except RecursionError as exc:
            raise DataError(f"{manifest_uri}: not valid JSON: nested too deeply") from exc
        except ValueError as exc:
            raise DataError(f"{manifest_uri}: not valid JSON: {exc}") from exc
        try:
            validate_manifest(manifest, manifest_uri)
        except RecursionError as exc:
            raise DataError(f"{manifest_uri}: expected a manifest, found JSON nested too deeply") from exc
        for part in manifest["partitions"]:
            if part["file"] not in names:
                raise DataError(f"{join(uri, part['file'])}: partition file listed in "
                                f"{MANIFEST_NAME} is missing")
        return cls(uri, manifest)

    def read_partition(self, index):
        """Read partition ``index``, checked against the manifest; see :func:`read_partition`."""
        part = self.partitions[index]
        return read_partition(part.uri, expected_sha256=part.sha256, n_features=self.n_features,
                              expected_rows=part.rows, expected_bytes=part.bytes,
                              has_weight=self.has_weight, layout=self.layout, expected_nnz=part.nnz,
                              missing=self.has_missing)

    def read_kept(self, index):
        """The kept columns of partition ``index`` (a pyarrow Table), checked against the manifest's bytes
        and sha256 and the partition's rows.

        Raises
        ------
        DataError
            The file differs from the manifest, or holds other columns or rows.
        """
        entry = self.kept_file(index)
        return read_kept(entry["uri"], entry["bytes"], entry["sha256"], self.kept_columns,
                         self.partitions[index].rows)

    def kept_file(self, index):
        """``{"uri", "bytes", "sha256"}`` of partition ``index``'s kept columns."""
        entry = self._kept_partitions[index]
        return {"uri": join(self.uri, entry["file"]), "bytes": entry["bytes"], "sha256": entry["sha256"]}

    def read_all(self):
        """Read every partition and concatenate; for small data and tests.

        Returns
        -------
        X : ndarray or scipy.sparse.csr_array, shape (n_rows, d)
        y : ndarray, shape (n_rows,)
        w : ndarray, shape (n_rows,), or None
        """
        parts = [self.read_partition(i) for i in range(len(self.partitions))]
        if self.layout == "csr":
            from scipy import sparse

            X = sparse.csr_array(sparse.vstack([p[0] for p in parts], format="csr"))
        else:
            X = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        w = np.concatenate([p[2] for p in parts]) if self.has_weight else None
        return X, y, w


def refuse_missing(dataset, model):
    """Refuse (DataError, one line) a ``--keep-missing`` dataset for ``model``, which takes no missing value.

    Parameters
    ----------
    dataset : Dataset
    model : str
        The model's name, for the message.
    """
    if dataset.has_missing:
        raise DataError(f"{dataset.uri}: expected a dataset without missing values for model {model!r}, "
                        "found one ingested with --keep-missing (NaN features); ingest the source with "
                        "--impute zero or mean instead")


def _is_sparse(X):
    """True for a scipy sparse matrix or array, without importing scipy for dense data."""
    module = type(X).__module__
    if not module.startswith("scipy.sparse"):
        return False
    from scipy import sparse

    return sparse.issparse(X)


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def write_dataset(uri, X, y, w=None, *, feature_names=None, label_name="label", weight_name=None,
                  partitions=None, partition_size_mb=64, dtype="float64", encoding=None, classes=None,
                  class_names=None, label_absent=False, kept=None, id_column=None, progress=None,
                  missing=False):
    """Write ``(X, y, w)`` as a dataset directory at ``uri``, atomically.

    Everything is written into a temporary sibling directory that is renamed to ``uri`` at the
    end, so a failure leaves no partial output.

    A scipy sparse ``X`` (any format) writes a ``"csr"`` dataset without ever densifying it (explicit
    zeros are kept, duplicate entries summed); any other ``X`` writes a dense one.

    Parameters
    ----------
    uri : str
        The dataset directory to create; must not exist.
    X : array_like or scipy sparse matrix/array, shape (n, d)
        Finite features, n >= 1, 1 <= d <= ``MAX_FEATURES`` (sparse: ``MAX_SPARSE_FEATURES``).
    y : array_like, shape (n,)
        Finite labels.
    w : array_like, shape (n,), optional
        Finite sample weights >= 0.
    feature_names : list of str, length d, optional
        Default ``["f0", ..., "f{d-1}"]``; recorded in the manifest only when they differ from it.
    label_name : str
        The label's name recorded in the manifest.
    weight_name : str, optional
        The weight's name recorded in the manifest; default ``"weight"`` when ``w`` is given.
    partitions : int, optional
        Number of contiguous partitions, at most ``MAX_PARTITIONS``; default from
        ``partition_size_mb``.
    partition_size_mb : float
        Target uncompressed partition size in MiB; lowered where a partition would hold more than
        ``MAX_DENSE_CELLS`` values (sparse: ``MAX_PARTITION_NNZ`` values); sparse partitions are
        balanced by their bytes (values and rows), dense ones by rows.
    dtype : {"float64", "float32"}
        Element type of the stored features.
    encoding : dict, optional
        A categorical encoding (:mod:`mrtrain.storage.encoding`) recorded as the manifest's ``"encoding"``;
        its number of features must be d. The feature names then derive from it and are not recorded.
    classes : list of float, optional
        Label classes to record instead of the distinct labels of ``y`` (``--like``): used only when
        every label is one of them.
    class_names : list of str, optional
        String labels: ``y`` holds class codes ``0 .. K-1`` and these are their names (sorted, distinct);
        recorded as ``label.class_names`` with ``label.classes`` ``[0.0 .. K-1]``.
    label_absent : bool
        The source had no label column (``y`` is zeros): recorded as ``label.absent`` for ``predict``.
    kept : pyarrow.Table, optional
        n rows of columns passed through to predictions, written per partition (``keep-NNNNN.parquet``).
    id_column : str, optional
        The id column among ``kept``, its first column.
    progress : callable ``(stage, done, total, unit) -> None``, optional
        Called with ``("write", rows written, n, "rows")`` before the first partition and after each.
    missing : bool
        NaN in ``X`` is a missing value (``ingest --keep-missing``), recorded as ``"missing": true``; only
        the tree models train on such a dataset.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        No rows, over ``MAX_FEATURES`` columns, non-finite values or negative weights (naming the
        row and field), or a manifest over ``MAX_MANIFEST_BYTES``.
    ValueError
        Bad ``partitions``, ``partition_size_mb``, ``feature_names`` or ``dtype``.
    FileExistsError
        If ``uri`` exists.
    """
    uri = str(uri)
    csr = _is_sparse(X)
    if not isinstance(missing, bool):
        raise ValueError(f"The 'missing' parameter must be a bool. Got {missing!r} instead.")
    X, y, w = (validate_sparse if csr else validate_arrays)(X, y, w, dtype, uri, missing)
    n, d = X.shape
    check_partitioning(partitions, partition_size_mb, n)
    if feature_names is not None:
        feature_names = [str(name) for name in feature_names]
        if len(feature_names) != d or len(set(feature_names)) != d:
            raise ValueError(f"The 'feature_names' parameter must be {d} distinct names. "
                             f"Got {short_repr(feature_names)} instead.")
        if feature_names == default_feature_names(d):
            feature_names = None
    if encoding is not None:
        _encoding.validate_encoding(encoding, f"{uri}: encoding")
        if _encoding.n_features(encoding) != d:
            raise ValueError(f"The 'encoding' parameter must describe {d} features. "
                             f"Got {_encoding.n_features(encoding)} instead.")
        feature_names = None
    recorded_classes = None if label_absent else label_classes(y)
    if class_names is not None:
        recorded_classes = [float(k) for k in range(len(class_names))]
        validate_class_names(class_names, recorded_classes, f"{uri}: class_names")
    elif classes is not None and not label_absent:
        validate_classes(classes, f"{uri}: classes")
        if np.isin(y, classes).all():
            recorded_classes = [float(c) for c in classes]
    if w is not None and weight_name is None:
        weight_name = WEIGHT
    fs = get_filesystem(uri)
    if fs.exists(uri):
        raise FileExistsError(f"{uri}: destination already exists; choose a new path or delete it")
    fixed_row_bytes = 8 + (8 if w is not None else 0)
    if csr:
        bounds = csr_partition_bounds(X.indptr, 4 + X.dtype.itemsize, fixed_row_bytes + 8, partitions,
                                      partition_size_mb)
    else:
        bounds = partition_bounds(n, d * X.itemsize + fixed_row_bytes, partitions, partition_size_mb,
                                  max_rows=MAX_DENSE_CELLS // d)
    tmp = temp_sibling(uri)
    fs.makedirs(tmp)
    try:
        entries, kept_entries = [], []
        if progress is not None:
            progress("write", 0, n, "rows")
        for i, (start, stop) in enumerate(bounds):
            data = encode_partition(X[start:stop], y[start:stop],
                                    None if w is None else w[start:stop])
            fs.write_bytes(join(tmp, partition_name(i)), data)
            entries.append({"file": partition_name(i), "rows": stop - start, "bytes": len(data),
                            "sha256": hashlib.sha256(data).hexdigest()})
            if csr:
                entries[-1]["nnz"] = int(X.indptr[stop] - X.indptr[start])
            if kept is not None:
                kept_entries.append(write_kept(fs, tmp, i, kept.slice(start, stop - start)))
            if progress is not None:
                progress("write", stop, n, "rows")
        manifest = {
            "format": FORMAT, "version": VERSION, "n_features": d, "dtype": dtype,
            "label": {"name": label_name, "classes": recorded_classes},
            "weight": weight_name, "n_rows": n, "partitions": entries,
        }
        if class_names is not None:
            manifest["label"]["class_names"] = list(class_names)
        if label_absent:
            manifest["label"]["absent"] = True
        if kept is not None:
            manifest["keep"] = {"columns": kept.column_names, "id": id_column, "partitions": kept_entries}
        if csr:
            manifest["layout"] = "csr"
        if feature_names is not None:
            manifest["feature_names"] = feature_names
        if encoding is not None:
            manifest["encoding"] = encoding
        if missing:
            manifest["missing"] = True
        manifest["checksum"] = manifest_checksum(manifest)
        text = json.dumps(manifest, indent=1).encode()
        if len(text) > MAX_MANIFEST_BYTES:
            raise DataError(f"{join(uri, MANIFEST_NAME)}: expected at most {MAX_MANIFEST_BYTES} bytes "
                            f"(MAX_MANIFEST_BYTES), found {len(text)}: shorten the feature names")
        fs.write_bytes(join(tmp, MANIFEST_NAME), text)
        fs.rename(tmp, uri)
    except BaseException:
        if fs.exists(tmp):
            fs.delete(tmp, recursive=True)
        raise
    logger.info("wrote %s dataset %s: %d rows, %d features, %d partitions", "csr" if csr else "dense", uri, n,
                d, len(bounds))
    return Dataset(uri, manifest)
