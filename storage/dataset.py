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
"""

import functools
import hashlib
import io
import json
import logging
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mrtrain.storage import encoding as _encoding
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import absolute, get_filesystem, join, temp_sibling

logger = logging.getLogger(__name__)

FORMAT = "mrtrain-dataset"
VERSION = 1
MANIFEST_NAME = "_dataset.json"
DTYPES = ("float64", "float32")
MAX_CLASSES = 1000
#: The most columns kept for predictions (``ingest --id/--keep``).
MAX_KEPT_COLUMNS = 256
MAX_MANIFEST_BYTES = 16 * 2**20
MAX_FEATURES = 2**20
MAX_DENSE_CELLS = 2**28
MAX_SPARSE_FEATURES = 2**30
MAX_PARTITION_NNZ = 2**28
LAYOUTS = ("dense", "csr")
MAX_PARTITIONS = 10_000
MAX_INT64 = 2**63 - 1
FEATURES, LABEL, WEIGHT = "features", "label", "weight"
INDICES, VALUES = "indices", "values"
#: Parquet schema metadata key of a csr partition holding its ``n_features``.
N_FEATURES_KEY = b"mrtrain.n_features"
_MANIFEST_KEYS = (
    "format", "version", "n_features", "dtype", "label", "weight", "n_rows", "partitions", "checksum",
)
_OPTIONAL_KEYS = ("encoding", "feature_names", "keep", "layout", "missing")
_KEEP_KEYS = ("columns", "id", "partitions")
_PARTITION_KEYS = ("bytes", "file", "rows", "sha256")
_SHA256_DIGITS = frozenset("0123456789abcdef")


def partition_name(index):
    """Return the file name of partition ``index``, e.g. ``part-00003.parquet``."""
    return f"part-{index:05d}.parquet"


def canonical_json(obj):
    """Return the canonical UTF-8 JSON bytes of ``obj`` (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def default_feature_names(d):
    """Return the names given to ``d`` unnamed features: ``["f0", ..., "f{d-1}"]``."""
    return [f"f{j}" for j in range(d)]


def check_dense_cells(n_rows, n_features, where, hint=""):
    """Refuse an ``(n_rows, n_features)`` dense array over ``MAX_DENSE_CELLS`` values, before allocating it.

    Parameters
    ----------
    n_rows, n_features : int
    where : str
        The file (and line) for the message.
    hint : str, optional
        What the user can do, appended to the message.

    Raises
    ------
    DataError
    """
    if n_rows * n_features > MAX_DENSE_CELLS:
        raise DataError(f"{where}: expected at most {MAX_DENSE_CELLS} dense values (MAX_DENSE_CELLS, "
                        f"rows x features), found {n_rows} rows x {n_features} features"
                        + (f"; {hint}" if hint else ""))


def check_dtype(dtype):
    """Validate a ``dtype`` parameter: one of ``DTYPES``."""
    if not (isinstance(dtype, str) and dtype in DTYPES):
        raise ValueError(f"The 'dtype' parameter must be one of {DTYPES}. Got {dtype!r} instead.")


def max_features(layout):
    """Return the most features a dataset of ``layout`` may have and the constant's name."""
    return (MAX_SPARSE_FEATURES, "MAX_SPARSE_FEATURES") if layout == "csr" else (MAX_FEATURES, "MAX_FEATURES")


def check_n_features(n_features, layout="dense"):
    """Validate an ``n_features`` parameter: None or an int in [1, the limit of ``layout``]."""
    top, name = max_features(layout)
    if n_features is not None and not (_is_int(n_features) and 1 <= n_features <= top):
        raise ValueError(f"The 'n_features' parameter must be an int in [1, {top}] "
                         f"({name}) or None. Got {n_features!r} instead.")


def check_partitioning(partitions, partition_size_mb, n_rows=None):
    """Validate ``partitions`` and ``partition_size_mb`` (finite, > 0).

    Parameters
    ----------
    partitions : int or None
        At most ``MAX_PARTITIONS`` and, when ``n_rows`` is given, at most ``n_rows``.
    partition_size_mb : float
    n_rows : int, optional

    Raises
    ------
    ValueError
        Naming the parameter, the allowed values and what was given.
    """
    top = MAX_PARTITIONS if n_rows is None else min(n_rows, MAX_PARTITIONS)
    if partitions is not None and not (_is_int(partitions) and 1 <= partitions <= top):
        limits = "MAX_PARTITIONS" if n_rows is None else "at most the rows and MAX_PARTITIONS"
        raise ValueError(f"The 'partitions' parameter must be an int in [1, {top}] ({limits}) or None. "
                         f"Got {partitions!r} instead.")
    if not (_is_number(partition_size_mb) and partition_size_mb > 0):
        raise ValueError("The 'partition_size_mb' parameter must be a number > 0, finite. "
                         f"Got {partition_size_mb!r} instead.")


def manifest_checksum(manifest):
    """Return the sha256 hex digest of the canonical JSON of ``manifest`` minus ``checksum``."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


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


def _short_repr(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _expect(cond, where, what, found):
    if not cond:
        raise DataError(f"{where}: expected {what}, found {_short_repr(found)}")


def _is_sparse(X):
    """True for a scipy sparse matrix or array, without importing scipy for dense data."""
    module = type(X).__module__
    if not module.startswith("scipy.sparse"):
        return False
    from scipy import sparse

    return sparse.issparse(X)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    """True for an int or float (not a bool) that is a finite float64."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _is_sha256(value):
    return isinstance(value, str) and len(value) == 64 and set(value) <= _SHA256_DIGITS


def _validate_keys(obj, required, optional, where):
    missing = [k for k in required if k not in obj]
    if missing:
        raise DataError(f"{where}: expected keys {list(required)}, found them missing {missing}")
    unknown = sorted(k for k in obj if k not in required and k not in optional)
    if unknown:
        raise DataError(f"{where}: expected only the keys {sorted(required + optional)}, found also "
                        f"{_short_repr(unknown)}")


def _validate_classes(classes, where):
    _expect(classes is None or (isinstance(classes, list) and 1 <= len(classes) <= MAX_CLASSES),
            where, f"null or a list of 1 to {MAX_CLASSES} labels", classes)
    if classes is None:
        return
    for i, value in enumerate(classes):
        _expect(_is_number(value) and float(value).is_integer(), f"{where}[{i}]",
                "a finite integer-valued number", value)
        _expect(i == 0 or classes[i - 1] < value, f"{where}[{i}]",
                f"a label greater than the previous one {classes[i - 1]!r}", value)


def read_kept(uri, n_bytes, sha256, columns, rows):
    """The kept columns in file ``uri`` (a pyarrow Table), checked: its bytes and sha256 as the manifest
    records them, then its ``columns`` and ``rows``.

    Raises
    ------
    DataError
        One line naming the file, what was expected and what was found.
    """
    data = get_filesystem(uri).read_bytes(uri, max_bytes=n_bytes)
    if len(data) != n_bytes or hashlib.sha256(data).hexdigest() != sha256:
        raise DataError(f"{uri}: expected {n_bytes} bytes with sha256 {sha256[:12]} (as the manifest "
                        f"records), found {len(data)} bytes with another content")
    table = pq.read_table(io.BytesIO(data))
    if table.column_names != list(columns) or table.num_rows != rows:
        raise DataError(f"{uri}: expected the columns {list(columns)} and {rows} rows, found "
                        f"{table.column_names} and {table.num_rows} rows")
    return table


def keep_name(index):
    """The file of partition ``index``'s kept columns, e.g. ``keep-00003.parquet``."""
    return f"keep-{index:05d}.parquet"


def _validate_keep(keep, n_partitions, where):
    _expect(isinstance(keep, dict), where, '{"columns": [...], "id": str or null, "partitions": [...]}', keep)
    _validate_keys(keep, _KEEP_KEYS, (), where)
    columns = keep["columns"]
    _expect(isinstance(columns, list) and 1 <= len(columns) <= MAX_KEPT_COLUMNS
            and all(isinstance(c, str) and c for c in columns) and len(set(columns)) == len(columns),
            f"{where}.columns", f"a list of 1 to {MAX_KEPT_COLUMNS} distinct column names", columns)
    _expect(keep["id"] is None or keep["id"] == columns[0], f"{where}.id", "null or the first column",
            keep["id"])
    parts = keep["partitions"]
    _expect(isinstance(parts, list) and len(parts) == n_partitions, f"{where}.partitions",
            f"a list of {n_partitions} entries, one per partition", parts)
    for i, part in enumerate(parts):
        at = f"{where}.partitions[{i}]"
        _expect(isinstance(part, dict), at, "a JSON object", part)
        _validate_keys(part, ("bytes", "file", "sha256"), (), at)
        _expect(part["file"] == keep_name(i), f"{at}.file", repr(keep_name(i)), part["file"])
        _expect(_is_int(part["bytes"]) and 0 <= part["bytes"] <= MAX_INT64, f"{at}.bytes",
                f"an int in [0, {MAX_INT64}]", part["bytes"])
        _expect(_is_sha256(part["sha256"]), f"{at}.sha256", "64 lowercase hex digits", part["sha256"])


def _validate_class_names(names, classes, where):
    _expect(isinstance(names, list) and 1 <= len(names) <= MAX_CLASSES
            and all(isinstance(n, str) and n for n in names) and names == sorted(set(names)), where,
            f"a sorted list of 1 to {MAX_CLASSES} distinct non-empty strings", names)
    _expect(classes is not None and [float(c) for c in classes] == [float(k) for k in range(len(names))],
            where, f"the names of the class codes 0..{len(names) - 1} (label.classes)", classes)


def _validate_partitions(parts, d, layout, where):
    _expect(isinstance(parts, list) and 1 <= len(parts) <= MAX_PARTITIONS, where,
            f"a list of 1 to {MAX_PARTITIONS} partitions (MAX_PARTITIONS)",
            parts if not isinstance(parts, list) else f"{len(parts)} partitions")
    csr = layout == "csr"
    max_rows, rows_limit = ((MAX_PARTITION_NNZ, "MAX_PARTITION_NNZ") if csr
                            else (MAX_DENSE_CELLS // d, "MAX_DENSE_CELLS / n_features"))
    keys = (*_PARTITION_KEYS, "nnz") if csr else _PARTITION_KEYS
    for i, part in enumerate(parts):
        at = f"{where}[{i}]"
        _expect(isinstance(part, dict), at, "a JSON object", part)
        _validate_keys(part, keys, (), at)
        _expect(part["file"] == partition_name(i), f"{at}.file", repr(partition_name(i)), part["file"])
        _expect(_is_int(part["rows"]) and 0 <= part["rows"] <= max_rows, f"{at}.rows",
                f"an int in [0, {max_rows}] ({rows_limit})", part["rows"])
        if csr:
            top = min(MAX_PARTITION_NNZ, part["rows"] * d)
            _expect(_is_int(part["nnz"]) and 0 <= part["nnz"] <= top, f"{at}.nnz",
                    f"an int in [0, {top}] (at most rows x n_features and MAX_PARTITION_NNZ)", part["nnz"])
        _expect(_is_int(part["bytes"]) and 0 <= part["bytes"] <= MAX_INT64, f"{at}.bytes",
                f"an int in [0, {MAX_INT64}]", part["bytes"])
        _expect(_is_sha256(part["sha256"]), f"{at}.sha256", "64 lowercase hex digits", part["sha256"])


def validate_manifest(manifest, where):
    """Check a parsed manifest: its keys, its checksum, then the type and range of every field.

    Parameters
    ----------
    manifest : object
        The parsed ``_dataset.json``.
    where : str
        The manifest's URI, for messages.

    Raises
    ------
    DataError
        One line naming ``where`` and the field, what was expected and what was found.
    """
    _expect(isinstance(manifest, dict), where, "a JSON object", type(manifest).__name__)
    _validate_keys(manifest, _MANIFEST_KEYS, _OPTIONAL_KEYS, where)
    _expect(_is_sha256(manifest["checksum"]), f"{where}: checksum", "64 lowercase hex digits",
            manifest["checksum"])
    expected = manifest_checksum(manifest)
    _expect(manifest["checksum"] == expected, f"{where}: checksum", expected, manifest["checksum"])
    _expect(manifest["format"] == FORMAT, f"{where}: format", repr(FORMAT), manifest["format"])
    _expect(_is_int(manifest["version"]) and manifest["version"] == VERSION, f"{where}: version",
            VERSION, manifest["version"])
    layout = manifest.get("layout", "dense")
    _expect(isinstance(layout, str) and layout in LAYOUTS, f"{where}: layout", f"one of {LAYOUTS}", layout)
    d = manifest["n_features"]
    top, top_name = max_features(layout)
    _expect(_is_int(d) and 1 <= d <= top, f"{where}: n_features", f"an int in [1, {top}] ({top_name})", d)
    if "feature_names" in manifest:
        names = manifest["feature_names"]
        _expect(isinstance(names, list) and len(names) == d and all(isinstance(n, str) for n in names)
                and len(set(names)) == d, f"{where}: feature_names", f"a list of {d} distinct strings",
                names)
    _expect(isinstance(manifest["dtype"], str) and manifest["dtype"] in DTYPES, f"{where}: dtype",
            f"one of {DTYPES}", manifest["dtype"])
    label = manifest["label"]
    _expect(isinstance(label, dict), f"{where}: label", '{"name": str, "classes": list or null}', label)
    _validate_keys(label, ("classes", "name"), ("absent", "class_names"), f"{where}: label")
    _expect(isinstance(label["name"], str), f"{where}: label.name", "a string", label["name"])
    _validate_classes(label["classes"], f"{where}: label.classes")
    _expect(label.get("absent", False) in (True, False) and isinstance(label.get("absent", False), bool),
            f"{where}: label.absent", "a bool", label.get("absent"))
    if "class_names" in label:
        _validate_class_names(label["class_names"], label["classes"], f"{where}: label.class_names")
    _expect(manifest["weight"] is None or isinstance(manifest["weight"], str),
            f"{where}: weight", "a column name or null", manifest["weight"])
    if "keep" in manifest:
        parts = manifest["partitions"]
        _validate_keep(manifest["keep"], len(parts) if isinstance(parts, list) else 0, f"{where}: keep")
    _expect(manifest.get("missing", True) is True, f"{where}: missing", "true (or no key)",
            manifest.get("missing"))
    if "encoding" in manifest:
        _encoding.validate_encoding(manifest["encoding"], f"{where}: encoding")
        expected_d = _encoding.n_features(manifest["encoding"])
        _expect(d == expected_d, f"{where}: n_features", f"{expected_d}, the encoding's number of features",
                d)
    _validate_partitions(manifest["partitions"], d, layout, f"{where}: partitions")
    total = sum(p["rows"] for p in manifest["partitions"])
    _expect(_is_int(manifest["n_rows"]) and manifest["n_rows"] == total, f"{where}: n_rows",
            f"the partitions' total {total}", manifest["n_rows"])


def _column(table, name, where):
    if name not in table.column_names:
        raise DataError(f"{where}: missing column {name!r}; found columns {table.column_names}")
    column = table.column(name)
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _float64_column(table, name, where):
    array = _column(table, name, where)
    if array.type != pa.float64():
        raise DataError(f"{where}: column {name!r}: expected type double, found {array.type}")
    if array.null_count:
        row = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0]) + 1
        raise DataError(f"{where}: row {row}: column {name!r} is null; expected a number")
    return numpy_view(array)


def numpy_view(array):
    """A primitive Arrow array without nulls as a read-only numpy view of its values (no copy).

    What ``array.to_numpy(zero_copy_only=True)`` returns, without that conversion's import of pandas
    (where pandas is installed, the first ``to_numpy`` of a process loads it, for nothing a map task uses).

    Parameters
    ----------
    array : pyarrow.Array
        Of a fixed-width numeric type (int32, float32, float64), without nulls, possibly a slice.

    Returns
    -------
    ndarray, shape (len(array),), read-only, sharing memory with the Arrow buffer.
    """
    dtype = np.dtype(array.type.to_pandas_dtype())
    buffer = array.buffers()[1]
    if buffer is None or not len(array):
        view = np.empty(0, dtype=dtype)
    else:
        view = np.frombuffer(buffer, dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)
    view.flags.writeable = False
    return view


def features_to_numpy(array, where):
    """Return a fixed_size_list array's values as an ``(n, d)`` C-contiguous view (no copy).

    Parameters
    ----------
    array : pyarrow.FixedSizeListArray
        ``n`` lists of ``d`` float64 or float32 values, possibly a slice (non-zero offset).
    where : str
        The file name for error messages.

    Returns
    -------
    ndarray, shape (n, d), read-only, sharing memory with the Arrow buffer.
    """
    d = array.type.list_size
    if array.null_count:
        row = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0]) + 1
        raise DataError(f"{where}: row {row}: column {FEATURES!r} is null; expected {d} numbers")
    values = array.values.slice(array.offset * d, len(array) * d)
    if values.null_count:
        flat = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{where}: row {flat // d + 1}: feature {flat % d} is null; "
                        "expected a number")
    return numpy_view(values).reshape(len(array), d)


def _features_type(schema, where, n_features=None):
    """The ``features`` field's type, checked: fixed_size_list of float64/float32, ``n_features`` long."""
    if FEATURES not in schema.names:
        raise DataError(f"{where}: missing column {FEATURES!r}; found columns {schema.names}")
    ftype = schema.field(FEATURES).type
    if not (pa.types.is_fixed_size_list(ftype)
            and ftype.value_type in (pa.float64(), pa.float32())):
        raise DataError(f"{where}: column {FEATURES!r}: expected fixed_size_list<double or float>, "
                        f"found {ftype}")
    if n_features is not None and ftype.list_size != n_features:
        raise DataError(f"{where}: column {FEATURES!r}: expected {n_features} features, "
                        f"found {ftype.list_size}")
    return ftype


def check_finite(X, y, w, where, missing=False):
    """Refuse non-finite features, labels or weights, and negative weights.

    One vectorised pass per array; the offending row and column are looked up only on failure.

    Parameters
    ----------
    X : ndarray or scipy.sparse.csr_array, shape (n, d)
    y : ndarray, shape (n,)
    w : ndarray, shape (n,), or None
    where : str
        The file, for messages.
    missing : bool
        A ``--keep-missing`` dataset: NaN features (missing values) pass; infinities do not.

    Raises
    ------
    DataError
        Naming ``where``, the 1-based row, the column (and feature), the expected and found value.
    """
    expected = "a finite number or NaN (missing)" if missing else "a finite number"
    if hasattr(X, "indptr") and not _valid_features(X.data, missing).all():
        pos = int(np.flatnonzero(~_valid_features(X.data, missing))[0])
        row = int(np.searchsorted(X.indptr, pos, side="right"))
        raise DataError(f"{where}: row {row}: column {VALUES!r}, feature {int(X.indices[pos])}: expected "
                        f"{expected}, found {float(X.data[pos])!r}")
    for name, values in ((FEATURES, X), (LABEL, y), (WEIGHT, w)):
        if values is None or hasattr(values, "indptr"):
            continue
        bad = first_nonfinite(values, missing and name == FEATURES)
        if bad is None:
            continue
        field = f"column {name!r}" + (f", feature {bad[1]}" if name == FEATURES else "")
        what = expected if name == FEATURES else "a finite number"
        raise DataError(f"{where}: row {bad[0] + 1}: {field}: expected {what}, found {float(values[bad])!r}")
    if w is not None and not (w >= 0).all():
        row = int(np.flatnonzero(w < 0)[0])
        raise DataError(f"{where}: row {row + 1}: column {WEIGHT!r}: expected a weight >= 0, "
                        f"found {float(w[row])!r}")


def partition_layout(schema, where, layout=None):
    """Return a partition's layout from its schema: ``"csr"`` with ``indices``, else ``"dense"``.

    Raises
    ------
    DataError
        If ``layout`` is given and the schema holds the other one.
    """
    found = "csr" if INDICES in schema.names and FEATURES not in schema.names else "dense"
    if layout is not None and layout != found:
        expected = f"columns {[INDICES, VALUES]}" if layout == "csr" else f"column {FEATURES!r}"
        raise DataError(f"{where}: expected a {layout} partition ({expected}) as {MANIFEST_NAME} says, "
                        f"found columns {schema.names}")
    return found


def _csr_n_features(schema, where, n_features):
    """The ``n_features`` of a csr partition: from its schema metadata, checked against ``n_features``."""
    text = (schema.metadata or {}).get(N_FEATURES_KEY)
    stored = int(text) if text is not None and text.isdigit() and len(text) <= 12 else None
    if stored is None or not 1 <= stored <= MAX_SPARSE_FEATURES:
        if n_features is None:
            raise DataError(f"{where}: expected schema metadata {N_FEATURES_KEY.decode()!r} with an int in "
                            f"[1, {MAX_SPARSE_FEATURES}], found {text!r}")
        return n_features
    if n_features is not None and stored != n_features:
        raise DataError(f"{where}: expected {n_features} features, found {stored}")
    return stored


def _csr_types(schema, where):
    """Check the types of a csr partition's ``indices`` and ``values``; return the values' numpy dtype."""
    for name in (INDICES, VALUES):
        if name not in schema.names:
            raise DataError(f"{where}: missing column {name!r}; found columns {schema.names}")
    itype, vtype = schema.field(INDICES).type, schema.field(VALUES).type
    if not (pa.types.is_list(itype) and itype.value_type == pa.int32()):
        raise DataError(f"{where}: column {INDICES!r}: expected list<int32>, found {itype}")
    if not (pa.types.is_list(vtype) and vtype.value_type in (pa.float64(), pa.float32())):
        raise DataError(f"{where}: column {VALUES!r}: expected list<double or float>, found {vtype}")
    return vtype.value_type.to_pandas_dtype()


def _list_buffers(array, name, where):
    """A list array's ``(offsets, values)`` as numpy views, offsets rebased to start at 0."""
    if array.null_count:
        row = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0]) + 1
        raise DataError(f"{where}: row {row}: column {name!r} is null; expected a list")
    offsets = numpy_view(array.offsets)
    start, stop = int(offsets[0]), int(offsets[-1])
    values = array.values.slice(start, stop - start)
    if values.null_count:
        flat = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        row = int(np.searchsorted(offsets, start + flat, side="right"))
        raise DataError(f"{where}: row {row}: column {name!r}: a null element; expected a number")
    return (offsets - start if start else offsets), numpy_view(values)


def features_to_csr(table, where, n_features):
    """Return a csr partition's features as a ``csr_array`` sharing the Arrow value and index buffers.

    Parameters
    ----------
    table : pyarrow.Table
        With columns ``indices: list<int32>`` and ``values: list<float64|float32>``.
    where : str
        The file name for error messages.
    n_features : int
        The number of columns ``d``.

    Returns
    -------
    scipy.sparse.csr_array, shape (n, d)
        int32 ``indices`` and ``indptr``, sorted unique column indices in every row.

    Raises
    ------
    DataError
        Different list offsets for the two columns, nulls, or a column index out of ``[0, d)``, not
        increasing within its row, naming the 1-based row.
    """
    from scipy.sparse import csr_array  # only csr partitions need scipy

    indptr, indices = _list_buffers(_column(table, INDICES, where), INDICES, where)
    value_offsets, data = _list_buffers(_column(table, VALUES, where), VALUES, where)
    if not np.array_equal(indptr, value_offsets):
        row = int(np.flatnonzero(indptr != value_offsets)[0])
        raise DataError(f"{where}: row {row}: columns {INDICES!r} and {VALUES!r}: expected lists of the "
                        f"same lengths, found {indptr[row] - indptr[row - 1]} indices and "
                        f"{value_offsets[row] - value_offsets[row - 1]} values")
    check_csr_indices(indptr, indices, n_features, where)
    X = csr_array((data, indices, indptr), shape=(len(indptr) - 1, n_features), copy=False)
    X.has_sorted_indices = True
    return X


def check_csr_indices(indptr, indices, n_features, where):
    """Refuse column indices outside ``[0, n_features)`` or not strictly increasing within a row.

    Parameters
    ----------
    indptr : ndarray, shape (n + 1,)
    indices : ndarray, shape (nnz,)
    n_features : int
    where : str

    Raises
    ------
    DataError
        Naming the 1-based row and the index.
    """
    def row_of(position):
        return int(np.searchsorted(indptr, position, side="right"))

    if len(indices):
        out = (indices < 0) | (indices >= n_features)
        if out.any():
            pos = int(np.flatnonzero(out)[0])
            raise DataError(f"{where}: row {row_of(pos)}: column {INDICES!r}: expected a feature index in "
                            f"[0, {n_features}), found {int(indices[pos])}")
        starts = np.zeros(len(indices), dtype=bool)
        starts[indptr[:-1][indptr[:-1] < len(indices)]] = True
        bad = (np.diff(indices) <= 0) & ~starts[1:]
        if bad.any():
            pos = int(np.flatnonzero(bad)[0]) + 1
            raise DataError(f"{where}: row {row_of(pos)}: column {INDICES!r}: expected strictly increasing "
                            f"indices (previous {int(indices[pos - 1])}), found {int(indices[pos])}")


def decode_partition(table, where, n_features=None, has_weight=None, layout=None, expected_nnz=None,
                     missing=False):
    """Decode a partition table into ``(X, y, w)``; see :func:`read_partition`."""
    layout = partition_layout(table.schema, where, layout)
    if layout == "dense":
        _features_type(table.schema, where, n_features)
    else:
        _csr_types(table.schema, where)
        n_features = _csr_n_features(table.schema, where, n_features)
    if has_weight is not None and has_weight != (WEIGHT in table.column_names):
        raise DataError(
            f"{where}: missing column {WEIGHT!r}, which {MANIFEST_NAME} declares; found columns "
            f"{table.column_names}" if has_weight else
            f"{where}: unexpected column {WEIGHT!r}: {MANIFEST_NAME} declares no weight")
    if layout == "dense":
        X = features_to_numpy(_column(table, FEATURES, where), where)
    else:
        X = features_to_csr(table, where, n_features)
        if expected_nnz is not None and X.nnz != expected_nnz:
            raise DataError(f"{where}: expected {expected_nnz} stored values (nnz) as {MANIFEST_NAME} says, "
                            f"found {X.nnz}")
    y = _float64_column(table, LABEL, where)
    w = _float64_column(table, WEIGHT, where) if WEIGHT in table.column_names else None
    check_finite(X, y, w, where, missing)
    return X, y, w


def read_partition(uri, *, expected_sha256=None, n_features=None, expected_rows=None,
                   expected_bytes=None, has_weight=None, layout=None, expected_nnz=None, missing=False):
    """Read one partition file and decode it without copying the feature values.

    Only a regular file is read; its row count and dimension are checked from the Parquet metadata
    (dense: against ``MAX_DENSE_CELLS``; csr: stored values against ``MAX_PARTITION_NNZ``) before
    anything is decoded, and the decoded values must be finite (weights also >= 0). The layout is
    that of the file's columns (``features``: dense; ``indices`` and ``values``: csr).

    Parameters
    ----------
    uri : str
        The partition file (local path, ``file://`` or ``hdfs://``).
    expected_sha256 : str, optional
        The sha256 hex digest from the manifest; checked against the file's bytes.
    n_features : int, optional
        The expected ``d``; checked against the schema.
    expected_rows : int, optional
        The row count from the manifest; checked against the Parquet metadata.
    expected_bytes : int, optional
        The size from the manifest; a larger file is refused unread, any other size after reading.
    has_weight : bool, optional
        Whether the manifest declares a weight column; the partition must (not) have one.
    layout : {"dense", "csr"}, optional
        The manifest's layout; the file must have it.
    expected_nnz : int, optional
        The manifest's nnz of a csr partition; checked against the decoded values.
    missing : bool
        The manifest's ``missing``: NaN features (missing values) are allowed.

    Returns
    -------
    X : ndarray or scipy.sparse.csr_array, shape (n, d), float64 (float32 for float32 datasets)
        Dense: a C-contiguous, read-only view of the decoded Arrow buffer. csr: int32 ``indices`` and
        ``indptr``, sorted unique column indices per row; ``data`` and ``indices`` are views of the
        Arrow buffers.
    y : ndarray, shape (n,), float64
    w : ndarray, shape (n,), float64, or None when the partition has no weight column

    Raises
    ------
    DataError
        On a size, checksum or row count mismatch, an unreadable file, a wrong schema, too many
        values or a non-finite value, naming the file (and the row and column).
    OSError
        If ``uri`` is not a regular file.
    """
    data = get_filesystem(uri).read_bytes(uri, max_bytes=expected_bytes)
    if expected_bytes is not None and len(data) != expected_bytes:
        raise DataError(f"{uri}: expected {expected_bytes} bytes as {MANIFEST_NAME} says, "
                        f"found {len(data)}")
    if expected_sha256 is not None:
        found = hashlib.sha256(data).hexdigest()
        if found != expected_sha256:
            raise DataError(f"{uri}: sha256 mismatch: expected {expected_sha256}, found {found}")
    try:
        # ParquetFile.read, single-threaded, starts no thread at all. pq.read_table goes through the
        # dataset scanner, whose thread pools make ~4% of short-lived task processes abort at exit
        # with pyarrow 26 ("terminate called without an active exception"), even with use_threads=False.
        parquet = pq.ParquetFile(pa.BufferReader(data))
        rows = parquet.metadata.num_rows
        if expected_rows is not None and rows != expected_rows:
            raise DataError(f"{uri}: expected {expected_rows} rows as {MANIFEST_NAME} says, found {rows}")
        layout = partition_layout(parquet.schema_arrow, uri, layout)
        if layout == "dense":
            check_dense_cells(rows, _features_type(parquet.schema_arrow, uri, n_features).list_size, uri)
        else:
            _check_csr_metadata(parquet, uri, rows, expected_nnz)
        table = read_table(parquet)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{uri}: not a readable Parquet file: {exc}") from exc
    return decode_partition(table, uri, n_features, has_weight, layout, expected_nnz, missing)


def read_table(parquet):
    """The table of a ``pyarrow.parquet.ParquetFile``, read one column at a time on the calling thread.

    Arrow's memory pool keeps what a read frees (the decoder's page, level and growing value buffers) for
    later allocations, which a map task does not make: it is released to the system after every column, so
    a read's peak is one column's working memory on top of the columns decoded so far, and the decoded
    table is what stays.
    """
    schema = parquet.schema_arrow
    if len(set(schema.names)) != len(schema.names):  # columns not named uniquely cannot be read by name
        return parquet.read(use_threads=False)
    pool = pa.default_memory_pool()
    columns = []
    for name in schema.names:
        columns.append(parquet.read(columns=[name], use_threads=False).column(0))
        pool.release_unused()
    return pa.Table.from_arrays(columns, schema=schema)


def _check_csr_metadata(parquet, uri, rows, expected_nnz):
    """Bound a csr partition's rows and stored values from its Parquet metadata, before decoding.

    A list column stores one leaf entry per value and one per empty list, so the leaf count of
    ``values`` lies in ``[nnz, nnz + rows]``.
    """
    _csr_types(parquet.schema_arrow, uri)
    if rows > MAX_PARTITION_NNZ:
        raise DataError(f"{uri}: expected at most {MAX_PARTITION_NNZ} rows in a csr partition "
                        f"(MAX_PARTITION_NNZ), found {rows}")
    metadata = parquet.metadata
    leaves = 0
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for c in range(group.num_columns):
            if group.column(c).path_in_schema.split(".")[0] == VALUES:
                leaves += group.column(c).num_values
    if leaves - rows > MAX_PARTITION_NNZ:
        raise DataError(f"{uri}: expected at most {MAX_PARTITION_NNZ} stored values in a csr partition "
                        f"(MAX_PARTITION_NNZ), found at least {leaves - rows}")
    if expected_nnz is not None and not expected_nnz <= leaves <= expected_nnz + rows:
        raise DataError(f"{uri}: expected {expected_nnz} stored values (nnz) as {MANIFEST_NAME} says, "
                        f"found {leaves} list entries for {rows} rows")


def encode_partition(X, y, w=None):
    """Return the Parquet bytes of one partition, dense or csr after ``X``.

    Parameters
    ----------
    X : ndarray or scipy.sparse.csr_array, shape (n, d), float64 or float32
        A csr ``X`` must have sorted unique indices and at most ``MAX_PARTITION_NNZ`` values; it is
        stored as ``indices: list<int32>`` and ``values: list<...>`` and ``d`` in the schema metadata.
    y : ndarray, shape (n,), float64
    w : ndarray, shape (n,), float64, optional

    Returns
    -------
    bytes
    """
    n, d = X.shape
    metadata = None
    if hasattr(X, "indptr"):
        offsets = pa.array(np.asarray(X.indptr - X.indptr[0], dtype=np.int32))
        start, stop = int(X.indptr[0]), int(X.indptr[-1])
        columns = {
            INDICES: pa.ListArray.from_arrays(offsets, pa.array(np.asarray(X.indices[start:stop], np.int32))),
            VALUES: pa.ListArray.from_arrays(offsets, pa.array(X.data[start:stop])),
        }
        metadata = {N_FEATURES_KEY: str(d).encode()}
    else:
        flat = pa.array(np.ascontiguousarray(X).reshape(n * d))
        columns = {FEATURES: pa.FixedSizeListArray.from_arrays(flat, d)}
    columns[LABEL] = pa.array(y)
    if w is not None:
        columns[WEIGHT] = pa.array(w)
    sink = io.BytesIO()
    pq.write_table(pa.table(columns).replace_schema_metadata(metadata), sink, use_dictionary=False,
                   write_statistics=False)
    return sink.getvalue()


def _valid_features(values, missing):
    """Where ``values`` are finite, or NaN (a missing value) when ``missing``."""
    return np.isfinite(values) | np.isnan(values) if missing else np.isfinite(values)


def first_nonfinite(values, missing=False):
    """Return the index tuple of the first non-finite entry of ``values`` (NaN allowed when ``missing``),
    or None."""
    good = _valid_features(values, missing)
    if good.all():
        return None
    bad = np.argwhere(~good)
    return tuple(int(i) for i in bad[0])


def label_classes(y):
    """Return the sorted distinct labels as floats if integer-valued and <= 1000 of them, else None.

    Parameters
    ----------
    y : ndarray, shape (n,), float64
    """
    if not np.all(np.floor(y) == y):
        return None
    distinct = np.unique(y)
    if len(distinct) > MAX_CLASSES:
        return None
    return [float(v) for v in distinct]


def _validate_arrays(X, y, w, dtype, where, missing=False):
    check_dtype(dtype)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] < 1:
        raise DataError(f"{where}: X: expected a 2-d array with >= 1 column, found shape {X.shape}")
    if X.shape[1] > MAX_FEATURES:
        raise DataError(f"{where}: X: expected at most {MAX_FEATURES} columns (MAX_FEATURES), "
                        f"found {X.shape[1]}")
    if X.shape[0] == 0:
        raise DataError(f"{where}: no rows: expected at least one row, found 0")
    X = np.ascontiguousarray(X)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if y.shape != (X.shape[0],):
        raise DataError(f"{where}: y: expected shape ({X.shape[0]},), found {y.shape}")
    if w is not None:
        w = np.ascontiguousarray(w, dtype=np.float64)
        if w.shape != (X.shape[0],):
            raise DataError(f"{where}: w: expected shape ({X.shape[0]},), found {w.shape}")
    for name, values in (("features", X), ("label", y), ("weight", w)):
        if values is None:
            continue
        bad = first_nonfinite(values, missing and name == "features")
        if bad is not None:
            field = f"feature {bad[1]}" if name == "features" else name
            what = "a finite number or NaN (missing)" if missing and name == "features" else "a finite number"
            raise DataError(f"{where}: row {bad[0] + 1}: {field}: expected {what}, "
                            f"found {float(values[bad])!r}")
    if w is not None and np.any(w < 0):
        row = int(np.flatnonzero(w < 0)[0])
        raise DataError(f"{where}: row {row + 1}: weight: expected >= 0, found {float(w[row])!r}")
    with np.errstate(over="ignore"):
        stored = np.ascontiguousarray(X, dtype=dtype)
    bad = first_nonfinite(stored, missing)
    if bad is not None:
        raise DataError(f"{where}: row {bad[0] + 1}: feature {bad[1]}: expected a value that "
                        f"fits {dtype}, found {float(X[bad])!r}")
    return stored, y, w


def _validate_labels(y, w, n, where):
    y = np.ascontiguousarray(y, dtype=np.float64)
    if y.shape != (n,):
        raise DataError(f"{where}: y: expected shape ({n},), found {y.shape}")
    if w is not None:
        w = np.ascontiguousarray(w, dtype=np.float64)
        if w.shape != (n,):
            raise DataError(f"{where}: w: expected shape ({n},), found {w.shape}")
    return y, w


def _validate_sparse(X, y, w, dtype, where, missing=False):
    """Check a scipy sparse ``X`` and return it as a canonical csr_array of ``dtype``, never densified."""
    from scipy import sparse

    check_dtype(dtype)
    if X.ndim != 2 or X.shape[1] < 1:
        raise DataError(f"{where}: X: expected a 2-d sparse matrix with >= 1 column, found shape {X.shape}")
    n, d = X.shape
    if d > MAX_SPARSE_FEATURES:
        raise DataError(f"{where}: X: expected at most {MAX_SPARSE_FEATURES} columns (MAX_SPARSE_FEATURES), "
                        f"found {d}")
    if n == 0:
        raise DataError(f"{where}: no rows: expected at least one row, found 0")
    X = sparse.csr_array(X)
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    if X.dtype.kind not in "fiub":
        raise DataError(f"{where}: X: expected numeric values, found dtype {X.dtype}")
    y, w = _validate_labels(y, w, n, where)
    with np.errstate(over="ignore"):
        data = np.asarray(X.data, dtype=dtype)
    bad = np.flatnonzero(~_valid_features(data, missing))
    if len(bad):
        row = int(np.searchsorted(X.indptr, bad[0], side="right"))
        found = float(X.data[bad[0]])
        what = ((f"a finite number{' or NaN (missing)' if missing else ''}") if not np.isfinite(found)
                else f"a value that fits {dtype}")
        raise DataError(f"{where}: row {row}: feature {int(X.indices[bad[0]])}: expected {what}, "
                        f"found {found!r}")
    for name, values in (("label", y), ("weight", w)):
        if values is not None and not np.isfinite(values).all():
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise DataError(f"{where}: row {row + 1}: {name}: expected a finite number, "
                            f"found {float(values[row])!r}")
    if w is not None and np.any(w < 0):
        row = int(np.flatnonzero(w < 0)[0])
        raise DataError(f"{where}: row {row + 1}: weight: expected >= 0, found {float(w[row])!r}")
    X = sparse.csr_array((data, np.asarray(X.indices, dtype=np.int32), X.indptr), shape=(n, d), copy=False)
    return X, y, w


def csr_partition_bounds(indptr, value_bytes, fixed_row_bytes, partitions=None, partition_size_mb=64):
    """Return the ``[start, stop)`` row ranges of contiguous csr partitions of balanced byte size.

    A row costs ``fixed_row_bytes`` plus ``value_bytes`` per stored value, so rows of many values
    weigh more than empty ones; every partition gets at least one row, at most
    ``MAX_PARTITION_NNZ`` rows and, unless one row holds more, ``MAX_PARTITION_NNZ`` values.

    Parameters
    ----------
    indptr : ndarray, shape (n_rows + 1,)
        The CSR row offsets of the whole source.
    value_bytes, fixed_row_bytes : int
    partitions : int, optional
        The number of partitions, 1 <= partitions <= min(n_rows, MAX_PARTITIONS).
    partition_size_mb : float
        Target uncompressed partition size in MiB, finite and > 0.

    Returns
    -------
    list of (int, int)
    """
    n = len(indptr) - 1
    check_partitioning(partitions, partition_size_mb, n)
    nnz = int(indptr[-1])
    cumulative = np.asarray(indptr, dtype=np.int64) * value_bytes + np.arange(n + 1) * fixed_row_bytes
    total = int(cumulative[-1])
    least = max(math.ceil(nnz / MAX_PARTITION_NNZ), math.ceil(n / MAX_PARTITION_NNZ), 1)
    if partitions is not None:
        if partitions < least:
            raise ValueError(f"The 'partitions' parameter must be at least {least} for {n} rows and {nnz} "
                             f"stored values, so that a partition holds at most {MAX_PARTITION_NNZ} "
                             f"(MAX_PARTITION_NNZ). Got {partitions!r} instead.")
        count = partitions
    else:
        count = max(least, math.ceil(total / (partition_size_mb * 2**20)))
        count = min(count, n)
        if count > MAX_PARTITIONS:
            smallest = _round_up(total / MAX_PARTITIONS / 2**20)
            raise ValueError(f"The 'partition_size_mb' parameter must be at least {smallest:.6g} for "
                             f"{n} rows of {total} bytes in all, so that there are at most "
                             f"{MAX_PARTITIONS} partitions (MAX_PARTITIONS). Got {partition_size_mb!r} "
                             "instead.")
    edges = np.searchsorted(cumulative, np.linspace(0, total, count + 1)).tolist()
    edges[0], edges[-1] = 0, n
    for i in range(1, count):
        edges[i] = min(max(edges[i], edges[i - 1] + 1), n - (count - i))
    bounds = list(zip(edges[:-1], edges[1:], strict=True))
    for start, stop in bounds:
        if stop - start > 1 and (indptr[stop] - indptr[start] > MAX_PARTITION_NNZ
                                 or stop - start > MAX_PARTITION_NNZ):
            raise ValueError(f"rows {start + 1} to {stop} hold {int(indptr[stop] - indptr[start])} stored "
                             f"values: expected at most {MAX_PARTITION_NNZ} in a partition "
                             "(MAX_PARTITION_NNZ); pass more partitions")
    return bounds


def _round_up(value, digits=6):
    """``value`` > 0 rounded up to ``digits`` significant digits."""
    scale = 10.0 ** (digits - 1 - math.floor(math.log10(value)))
    return math.ceil(value * scale) / scale


def partition_bounds(n_rows, bytes_per_row, partitions=None, partition_size_mb=64, max_rows=None):
    """Return the ``[start, stop)`` row ranges of contiguous, balanced partitions.

    Parameters
    ----------
    n_rows : int
    bytes_per_row : int
        Uncompressed bytes of one row, used with ``partition_size_mb``.
    partitions : int, optional
        The number of partitions, 1 <= partitions <= min(n_rows, MAX_PARTITIONS); overrides
        ``partition_size_mb``.
    partition_size_mb : float
        Target uncompressed size of one partition in MiB, finite and > 0; it may give at most
        ``MAX_PARTITIONS`` partitions.
    max_rows : int, optional
        The most rows one partition may hold (see ``MAX_DENSE_CELLS``); a partition size is lowered
        to respect it, a number of partitions that does not is refused.

    Returns
    -------
    list of (int, int)
    """
    check_partitioning(partitions, partition_size_mb, n_rows)
    max_rows = n_rows if max_rows is None else max_rows
    if partitions is not None:
        if math.ceil(n_rows / partitions) > max_rows:
            raise ValueError(f"The 'partitions' parameter must be at least {math.ceil(n_rows / max_rows)} "
                             f"for {n_rows} rows, so that a partition holds at most {MAX_DENSE_CELLS} "
                             f"values (MAX_DENSE_CELLS). Got {partitions!r} instead.")
        count = partitions
    else:
        rows_per_part = min(max_rows, max(1, int(partition_size_mb * 2**20 // bytes_per_row)))
        count = math.ceil(n_rows / rows_per_part)
        if count > MAX_PARTITIONS:
            smallest = _round_up(math.ceil(n_rows / MAX_PARTITIONS) * bytes_per_row / 2**20)
            raise ValueError(f"The 'partition_size_mb' parameter must be at least {smallest:.6g} for "
                             f"{n_rows} rows of {bytes_per_row} bytes, so that there are at most "
                             f"{MAX_PARTITIONS} partitions (MAX_PARTITIONS). Got {partition_size_mb!r} "
                             "instead.")
    edges = np.linspace(0, n_rows, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _write_kept(fs, directory, index, table):
    sink = io.BytesIO()
    pq.write_table(table, sink)
    data = sink.getvalue()
    fs.write_bytes(join(directory, keep_name(index)), data)
    return {"file": keep_name(index), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


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
    X, y, w = (_validate_sparse if csr else _validate_arrays)(X, y, w, dtype, uri, missing)
    n, d = X.shape
    check_partitioning(partitions, partition_size_mb, n)
    if feature_names is not None:
        feature_names = [str(name) for name in feature_names]
        if len(feature_names) != d or len(set(feature_names)) != d:
            raise ValueError(f"The 'feature_names' parameter must be {d} distinct names. "
                             f"Got {_short_repr(feature_names)} instead.")
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
        _validate_class_names(class_names, recorded_classes, f"{uri}: class_names")
    elif classes is not None and not label_absent:
        _validate_classes(classes, f"{uri}: classes")
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
                kept_entries.append(_write_kept(fs, tmp, i, kept.slice(start, stop - start)))
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
