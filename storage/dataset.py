"""The dataset format: a directory of Parquet partitions plus a ``_dataset.json`` manifest.

Each partition holds the columns ``features: fixed_size_list<float64>[d]`` (or float32),
``label: float64`` and optionally ``weight: float64``; a partition decodes zero-copy into an
``(n, d)`` array. The manifest records the schema, the label classes, the rows, bytes and sha256
of every partition, and a sha256 checksum of its own canonical JSON.
"""

import hashlib
import io
import json
import logging
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage.errors import DataError
from storage.filesystem import get_filesystem, join, temp_sibling

logger = logging.getLogger(__name__)

FORMAT = "mrtrain-dataset"
VERSION = 1
MANIFEST_NAME = "_dataset.json"
DTYPES = ("float64", "float32")
MAX_CLASSES = 1000
FEATURES, LABEL, WEIGHT = "features", "label", "weight"
_MANIFEST_KEYS = (
    "format", "version", "n_features", "feature_names", "dtype", "label", "weight", "n_rows",
    "partitions", "checksum",
)


def partition_name(index):
    """Return the file name of partition ``index``, e.g. ``part-00003.parquet``."""
    return f"part-{index:05d}.parquet"


def canonical_json(obj):
    """Return the canonical UTF-8 JSON bytes of ``obj`` (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def manifest_checksum(manifest):
    """Return the sha256 hex digest of the canonical JSON of ``manifest`` minus ``checksum``."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class PartitionInfo:
    """One partition of a dataset: its index, full URI, row count, byte size and sha256."""

    index: int
    uri: str
    rows: int
    bytes: int
    sha256: str


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
    dtype : str
        ``"float64"`` or ``"float32"``, the element type of ``features``.
    label_name : str
    classes : list of float or None
        Sorted distinct labels when they are integer-valued and at most 1000; else None.
    weight_name : str or None
    has_weight : bool
    n_rows : int
    checksum : str
        The manifest's sha256 checksum; identifies the dataset's content.
    partitions : list of PartitionInfo
    """

    def __init__(self, uri, manifest):
        self.uri = uri
        self.manifest = manifest
        self.n_features = manifest["n_features"]
        self.feature_names = list(manifest["feature_names"])
        self.dtype = manifest["dtype"]
        self.label_name = manifest["label"]["name"]
        self.classes = manifest["label"]["classes"]
        self.weight_name = manifest["weight"]
        self.has_weight = manifest["weight"] is not None
        self.n_rows = manifest["n_rows"]
        self.checksum = manifest["checksum"]
        self.partitions = [
            PartitionInfo(i, join(uri, p["file"]), p["rows"], p["bytes"], p["sha256"])
            for i, p in enumerate(manifest["partitions"])
        ]

    def __repr__(self):
        return (
            f"Dataset({self.uri!r}, n_rows={self.n_rows}, n_features={self.n_features}, "
            f"partitions={len(self.partitions)})"
        )

    @classmethod
    def open(cls, uri):
        """Read and validate the manifest of the dataset directory ``uri``.

        Raises
        ------
        FileNotFoundError
            If the directory does not exist.
        DataError
            If the manifest is missing, malformed, fails its checksum, or names a partition file
            that does not exist.
        """
        uri = str(uri)
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
        try:
            manifest = json.loads(fs.read_bytes(manifest_uri))
        except ValueError as exc:
            raise DataError(f"{manifest_uri}: not valid JSON: {exc}") from exc
        validate_manifest(manifest, manifest_uri)
        for part in manifest["partitions"]:
            if part["file"] not in names:
                raise DataError(f"{join(uri, part['file'])}: partition file listed in "
                                f"{MANIFEST_NAME} is missing")
        return cls(uri, manifest)

    def read_partition(self, index):
        """Read partition ``index`` with sha256 and schema checks; see :func:`read_partition`."""
        part = self.partitions[index]
        return read_partition(part.uri, expected_sha256=part.sha256, n_features=self.n_features)

    def read_all(self):
        """Read every partition and concatenate; for small data and tests.

        Returns
        -------
        X : ndarray, shape (n_rows, d)
        y : ndarray, shape (n_rows,)
        w : ndarray, shape (n_rows,), or None
        """
        parts = [self.read_partition(i) for i in range(len(self.partitions))]
        X = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        w = np.concatenate([p[2] for p in parts]) if self.has_weight else None
        return X, y, w


def _expect(cond, where, what, found):
    if not cond:
        raise DataError(f"{where}: expected {what}, found {found!r}")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def validate_manifest(manifest, where):
    """Check the structure and checksum of a manifest dict; DataError naming ``where`` if bad."""
    _expect(isinstance(manifest, dict), where, "a JSON object", type(manifest).__name__)
    missing = [k for k in _MANIFEST_KEYS if k not in manifest]
    _expect(not missing, where, f"keys {list(_MANIFEST_KEYS)}", f"missing {missing}")
    _expect(manifest["format"] == FORMAT, f"{where}: format", repr(FORMAT), manifest["format"])
    _expect(manifest["version"] == VERSION, f"{where}: version", VERSION, manifest["version"])
    d = manifest["n_features"]
    _expect(_is_int(d) and d >= 1, f"{where}: n_features", "an int >= 1", d)
    names = manifest["feature_names"]
    _expect(isinstance(names, list) and len(names) == d and all(isinstance(n, str) for n in names),
            f"{where}: feature_names", f"a list of {d} strings", names)
    _expect(manifest["dtype"] in DTYPES, f"{where}: dtype", f"one of {DTYPES}", manifest["dtype"])
    label = manifest["label"]
    _expect(isinstance(label, dict) and isinstance(label.get("name"), str)
            and (label.get("classes") is None or isinstance(label.get("classes"), list)),
            f"{where}: label", '{"name": str, "classes": list or null}', label)
    _expect(manifest["weight"] is None or isinstance(manifest["weight"], str),
            f"{where}: weight", "a column name or null", manifest["weight"])
    parts = manifest["partitions"]
    _expect(isinstance(parts, list) and parts, f"{where}: partitions", "a non-empty list", parts)
    for i, part in enumerate(parts):
        ok = (isinstance(part, dict) and part.get("file") == partition_name(i)
              and _is_int(part.get("rows")) and part["rows"] >= 0
              and _is_int(part.get("bytes")) and isinstance(part.get("sha256"), str))
        _expect(ok, f"{where}: partitions[{i}]",
                f'{{"file": "{partition_name(i)}", "rows": int, "bytes": int, "sha256": str}}', part)
    total = sum(p["rows"] for p in parts)
    _expect(manifest["n_rows"] == total, f"{where}: n_rows", f"the partitions' total {total}",
            manifest["n_rows"])
    expected = manifest_checksum(manifest)
    _expect(manifest["checksum"] == expected, f"{where}: checksum", expected, manifest["checksum"])


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
    return array.to_numpy(zero_copy_only=True)


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
    return values.to_numpy(zero_copy_only=True).reshape(len(array), d)


def decode_partition(table, where, n_features=None):
    """Decode a partition table into ``(X, y, w)``; see :func:`read_partition`."""
    ftype = _column(table, FEATURES, where).type
    if not (pa.types.is_fixed_size_list(ftype)
            and ftype.value_type in (pa.float64(), pa.float32())):
        raise DataError(f"{where}: column {FEATURES!r}: expected fixed_size_list<double or float>, "
                        f"found {ftype}")
    if n_features is not None and ftype.list_size != n_features:
        raise DataError(f"{where}: column {FEATURES!r}: expected {n_features} features, "
                        f"found {ftype.list_size}")
    X = features_to_numpy(_column(table, FEATURES, where), where)
    y = _float64_column(table, LABEL, where)
    w = _float64_column(table, WEIGHT, where) if WEIGHT in table.column_names else None
    return X, y, w


def read_partition(uri, *, expected_sha256=None, n_features=None):
    """Read one partition file and decode it without copying the feature values.

    Parameters
    ----------
    uri : str
        The partition file (local path, ``file://`` or ``hdfs://``).
    expected_sha256 : str, optional
        The sha256 hex digest from the manifest; checked against the file's bytes.
    n_features : int, optional
        The expected ``d``; checked against the schema.

    Returns
    -------
    X : ndarray, shape (n, d), float64 (float32 for float32 datasets), C-contiguous, read-only
        A view of the decoded Arrow buffer.
    y : ndarray, shape (n,), float64
    w : ndarray, shape (n,), float64, or None when the partition has no weight column

    Raises
    ------
    DataError
        On a checksum mismatch, an unreadable file or a wrong schema, naming the file.
    """
    data = get_filesystem(uri).read_bytes(uri)
    if expected_sha256 is not None:
        found = hashlib.sha256(data).hexdigest()
        if found != expected_sha256:
            raise DataError(f"{uri}: sha256 mismatch: expected {expected_sha256}, found {found}")
    try:
        # ParquetFile.read, single-threaded, starts no thread at all. pq.read_table goes through the
        # dataset scanner, whose thread pools make ~4% of short-lived task processes abort at exit
        # with pyarrow 26 ("terminate called without an active exception"), even with use_threads=False.
        table = pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{uri}: not a readable Parquet file: {exc}") from exc
    return decode_partition(table, uri, n_features)


def encode_partition(X, y, w=None):
    """Return the Parquet bytes of one partition.

    Parameters
    ----------
    X : ndarray, shape (n, d), float64 or float32
    y : ndarray, shape (n,), float64
    w : ndarray, shape (n,), float64, optional

    Returns
    -------
    bytes
    """
    n, d = X.shape
    flat = pa.array(np.ascontiguousarray(X).reshape(n * d))
    columns = {FEATURES: pa.FixedSizeListArray.from_arrays(flat, d), LABEL: pa.array(y)}
    if w is not None:
        columns[WEIGHT] = pa.array(w)
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink, use_dictionary=False, write_statistics=False)
    return sink.getvalue()


def first_nonfinite(values):
    """Return the index tuple of the first non-finite entry of ``values``, or None."""
    bad = np.argwhere(~np.isfinite(values))
    return tuple(int(i) for i in bad[0]) if len(bad) else None


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


def _validate_arrays(X, y, w, dtype, where):
    if dtype not in DTYPES:
        raise ValueError(f"The 'dtype' parameter must be one of {DTYPES}. Got {dtype!r} instead.")
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] < 1:
        raise DataError(f"{where}: X: expected a 2-d array with >= 1 column, found shape {X.shape}")
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
        bad = first_nonfinite(values)
        if bad is not None:
            field = f"feature {bad[1]}" if name == "features" else name
            raise DataError(f"{where}: row {bad[0] + 1}: {field}: expected a finite number, "
                            f"found {float(values[bad])!r}")
    if w is not None and np.any(w < 0):
        row = int(np.flatnonzero(w < 0)[0])
        raise DataError(f"{where}: row {row + 1}: weight: expected >= 0, found {float(w[row])!r}")
    with np.errstate(over="ignore"):
        stored = np.ascontiguousarray(X, dtype=dtype)
    bad = first_nonfinite(stored)
    if bad is not None:
        raise DataError(f"{where}: row {bad[0] + 1}: feature {bad[1]}: expected a value that "
                        f"fits {dtype}, found {float(X[bad])!r}")
    return stored, y, w


def partition_bounds(n_rows, bytes_per_row, partitions=None, partition_size_mb=64):
    """Return the ``[start, stop)`` row ranges of contiguous, balanced partitions.

    Parameters
    ----------
    n_rows : int
    bytes_per_row : int
        Uncompressed bytes of one row, used with ``partition_size_mb``.
    partitions : int, optional
        The number of partitions, 1 <= partitions <= n_rows; overrides ``partition_size_mb``.
    partition_size_mb : float
        Target uncompressed size of one partition in MiB.

    Returns
    -------
    list of (int, int)
    """
    if partitions is not None:
        if not (_is_int(partitions) and 1 <= partitions <= n_rows):
            raise ValueError(f"The 'partitions' parameter must be an int in [1, {n_rows}] "
                             f"(the number of rows). Got {partitions!r} instead.")
        count = partitions
    else:
        if not (isinstance(partition_size_mb, int | float) and partition_size_mb > 0):
            raise ValueError("The 'partition_size_mb' parameter must be a number > 0. "
                             f"Got {partition_size_mb!r} instead.")
        rows_per_part = max(1, int(partition_size_mb * 2**20 // bytes_per_row))
        count = math.ceil(n_rows / rows_per_part)
    edges = np.linspace(0, n_rows, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def write_dataset(uri, X, y, w=None, *, feature_names=None, label_name="label", weight_name=None,
                  partitions=None, partition_size_mb=64, dtype="float64"):
    """Write ``(X, y, w)`` as a dataset directory at ``uri``, atomically.

    Everything is written into a temporary sibling directory that is renamed to ``uri`` at the
    end, so a failure leaves no partial output.

    Parameters
    ----------
    uri : str
        The dataset directory to create; must not exist.
    X : array_like, shape (n, d)
        Finite features, n >= 1, d >= 1.
    y : array_like, shape (n,)
        Finite labels.
    w : array_like, shape (n,), optional
        Finite sample weights >= 0.
    feature_names : list of str, length d, optional
        Default ``["f0", ..., "f{d-1}"]``.
    label_name : str
        The label's name recorded in the manifest.
    weight_name : str, optional
        The weight's name recorded in the manifest; default ``"weight"`` when ``w`` is given.
    partitions : int, optional
        Number of contiguous partitions; default from ``partition_size_mb``.
    partition_size_mb : float
        Target uncompressed partition size in MiB.
    dtype : {"float64", "float32"}
        Element type of the stored features.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        No rows, non-finite values or negative weights (naming the row and field).
    FileExistsError
        If ``uri`` exists.
    """
    uri = str(uri)
    X, y, w = _validate_arrays(X, y, w, dtype, uri)
    n, d = X.shape
    if feature_names is None:
        feature_names = [f"f{j}" for j in range(d)]
    feature_names = [str(name) for name in feature_names]
    if len(feature_names) != d or len(set(feature_names)) != d:
        raise ValueError(f"The 'feature_names' parameter must be {d} distinct names. "
                         f"Got {feature_names!r} instead.")
    if w is not None and weight_name is None:
        weight_name = WEIGHT
    fs = get_filesystem(uri)
    if fs.exists(uri):
        raise FileExistsError(f"{uri}: destination already exists; choose a new path or delete it")
    bytes_per_row = d * X.itemsize + 8 + (8 if w is not None else 0)
    bounds = partition_bounds(n, bytes_per_row, partitions, partition_size_mb)
    tmp = temp_sibling(uri)
    fs.makedirs(tmp)
    try:
        entries = []
        for i, (start, stop) in enumerate(bounds):
            data = encode_partition(X[start:stop], y[start:stop],
                                    None if w is None else w[start:stop])
            fs.write_bytes(join(tmp, partition_name(i)), data)
            entries.append({"file": partition_name(i), "rows": stop - start, "bytes": len(data),
                            "sha256": hashlib.sha256(data).hexdigest()})
        manifest = {
            "format": FORMAT, "version": VERSION, "n_features": d,
            "feature_names": feature_names, "dtype": dtype,
            "label": {"name": label_name, "classes": label_classes(y)},
            "weight": weight_name, "n_rows": n, "partitions": entries,
        }
        manifest["checksum"] = manifest_checksum(manifest)
        fs.write_bytes(join(tmp, MANIFEST_NAME), json.dumps(manifest, indent=1).encode())
        fs.rename(tmp, uri)
    except BaseException:
        if fs.exists(tmp):
            fs.delete(tmp, recursive=True)
        raise
    logger.info("wrote dataset %s: %d rows, %d features, %d partitions", uri, n, d, len(bounds))
    return Dataset(uri, manifest)
