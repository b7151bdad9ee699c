"""A dataset's manifest (``_dataset.json``): the format's names, constants and limits, and the validation of
a manifest read back.

The format itself is described in :mod:`mrtrain.storage.dataset`. :func:`validate_manifest` checks every
field for its type and range (the limits are listed there: ``MAX_MANIFEST_BYTES``, ``MAX_FEATURES``,
``MAX_DENSE_CELLS``, ``MAX_SPARSE_FEATURES``, ``MAX_PARTITION_NNZ``, ``MAX_PARTITIONS``) and its sha256
checksum (:func:`manifest_checksum`, over its canonical JSON). The checks shared with the writers (dtype,
feature count, partitioning) live here too, so the manifest's rules have one home.
"""

import hashlib
import json
import math

from mrtrain.storage import encoding as _encoding
from mrtrain.storage.errors import DataError

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
    if n_features is not None and not (is_int(n_features) and 1 <= n_features <= top):
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
    if partitions is not None and not (is_int(partitions) and 1 <= partitions <= top):
        limits = "MAX_PARTITIONS" if n_rows is None else "at most the rows and MAX_PARTITIONS"
        raise ValueError(f"The 'partitions' parameter must be an int in [1, {top}] ({limits}) or None. "
                         f"Got {partitions!r} instead.")
    if not (is_number(partition_size_mb) and partition_size_mb > 0):
        raise ValueError("The 'partition_size_mb' parameter must be a number > 0, finite. "
                         f"Got {partition_size_mb!r} instead.")


def manifest_checksum(manifest):
    """Return the sha256 hex digest of the canonical JSON of ``manifest`` minus ``checksum``."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def short_repr(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _expect(cond, where, what, found):
    if not cond:
        raise DataError(f"{where}: expected {what}, found {short_repr(found)}")


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    """True for an int or float (not a bool) that is a finite float64."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _is_sha256(value):
    return isinstance(value, str) and len(value) == 64 and set(value) <= _SHA256_DIGITS


def _validate_keys(obj, required, optional, where):
    missing = [k for k in required if k not in obj]
    if missing:
        raise DataError(f"{where}: expected keys {list(required)}, found them missing {missing}")
    unknown = sorted(k for k in obj if k not in required and k not in optional)
    if unknown:
        raise DataError(f"{where}: expected only the keys {sorted(required + optional)}, found also "
                        f"{short_repr(unknown)}")


def validate_classes(classes, where):
    _expect(classes is None or (isinstance(classes, list) and 1 <= len(classes) <= MAX_CLASSES),
            where, f"null or a list of 1 to {MAX_CLASSES} labels", classes)
    if classes is None:
        return
    for i, value in enumerate(classes):
        _expect(is_number(value) and float(value).is_integer(), f"{where}[{i}]",
                "a finite integer-valued number", value)
        _expect(i == 0 or classes[i - 1] < value, f"{where}[{i}]",
                f"a label greater than the previous one {classes[i - 1]!r}", value)


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
        _expect(is_int(part["bytes"]) and 0 <= part["bytes"] <= MAX_INT64, f"{at}.bytes",
                f"an int in [0, {MAX_INT64}]", part["bytes"])
        _expect(_is_sha256(part["sha256"]), f"{at}.sha256", "64 lowercase hex digits", part["sha256"])


def validate_class_names(names, classes, where):
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
        _expect(is_int(part["rows"]) and 0 <= part["rows"] <= max_rows, f"{at}.rows",
                f"an int in [0, {max_rows}] ({rows_limit})", part["rows"])
        if csr:
            top = min(MAX_PARTITION_NNZ, part["rows"] * d)
            _expect(is_int(part["nnz"]) and 0 <= part["nnz"] <= top, f"{at}.nnz",
                    f"an int in [0, {top}] (at most rows x n_features and MAX_PARTITION_NNZ)", part["nnz"])
        _expect(is_int(part["bytes"]) and 0 <= part["bytes"] <= MAX_INT64, f"{at}.bytes",
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
    _expect(is_int(manifest["version"]) and manifest["version"] == VERSION, f"{where}: version",
            VERSION, manifest["version"])
    layout = manifest.get("layout", "dense")
    _expect(isinstance(layout, str) and layout in LAYOUTS, f"{where}: layout", f"one of {LAYOUTS}", layout)
    d = manifest["n_features"]
    top, top_name = max_features(layout)
    _expect(is_int(d) and 1 <= d <= top, f"{where}: n_features", f"an int in [1, {top}] ({top_name})", d)
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
    validate_classes(label["classes"], f"{where}: label.classes")
    _expect(label.get("absent", False) in (True, False) and isinstance(label.get("absent", False), bool),
            f"{where}: label.absent", "a bool", label.get("absent"))
    if "class_names" in label:
        validate_class_names(label["class_names"], label["classes"], f"{where}: label.class_names")
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
    _expect(is_int(manifest["n_rows"]) and manifest["n_rows"] == total, f"{where}: n_rows",
            f"the partitions' total {total}", manifest["n_rows"])
