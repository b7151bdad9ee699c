"""Ingest: CSV, libsvm, wide Parquet or ``.npz`` sources into a dataset directory.

Every error names the source file, the 1-based line (text formats) or row, the column or field,
what was expected and what was found. Sources are read through the filesystem interface, so
they may be local or on HDFS; only regular files are read.

libsvm and sparse ``.npz`` sources are read as CSR and written as csr datasets, never densified
(libsvm indices are checked as they are parsed, against ``--n-features`` or ``MAX_SPARSE_FEATURES``).
Other sources (and libsvm with ``dense=True``) are densified in memory, so their size is checked against
the limits of :mod:`mrtrain.storage.dataset` before the dense array is allocated: at most ``MAX_FEATURES``
features and ``MAX_DENSE_CELLS`` values (rows x features); the shapes of Parquet and ``.npz`` sources are
read from their metadata first, a CSV's lines are counted.

CSV and Parquet tables may have categorical columns (``categorical``): they are hashed or one-hot
encoded after the numeric columns into a csr dataset, and missing numeric values may be imputed; the
encoding is recorded in the manifest and reused with ``like`` (see :mod:`mrtrain.storage.encoding`).
"""

import array
import csv
import io
import logging
import os
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mrtrain.storage import encoding as enc
from mrtrain.storage.dataset import (
    MAX_CLASSES,
    MAX_DENSE_CELLS,
    MAX_FEATURES,
    MAX_KEPT_COLUMNS,
    MAX_SPARSE_FEATURES,
    Dataset,
    check_dense_cells,
    check_dtype,
    check_n_features,
    check_partitioning,
    first_nonfinite,
    max_features,
    write_dataset,
)
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import absolute, get_filesystem

logger = logging.getLogger(__name__)

FORMATS = ("csv", "libsvm", "parquet", "npz")
EXTENSIONS = {".csv": "csv", ".libsvm": "libsvm", ".svm": "libsvm", ".parquet": "parquet",
              ".npz": "npz"}
NPZ_KEYS = ("X", "y", "w")
#: A sparse .npz: the arrays ``scipy.sparse.save_npz`` writes for a csr/csc matrix, plus the labels.
SPARSE_NPZ_KEYS = ("format", "shape", "data", "indices", "indptr", "label")
CSV_BLOCK_BYTES = 1 << 20
MAX_CSV_BLOCK_BYTES = 2**31 - 1
_NPZ_ERRORS = (ValueError, OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
               zlib.error)
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}


@dataclass
class Source:
    """Parsed source columns before validation.

    Attributes
    ----------
    X : ndarray, shape (n, d), float64
    y : ndarray, shape (n,), float64
    w : ndarray, shape (n,), float64, or None
    feature_names : list of str, length d, or None for default names
    label_name : str
    weight_name : str or None
    locate : callable
        Maps a 0-based row index to a location for messages, e.g. ``"line 17"``.
    categorical : dict, optional
        Categorical column name -> its values (a pyarrow array), in the table's order; X then holds
        only the numeric feature columns, named by ``feature_names``.
    missing : ndarray, shape (n, d), bool, optional
        Where X holds a missing numeric value (read only when imputing; X is NaN there).
    class_names : list of str, optional
        String labels: the sorted class names, ``y`` holding each row's index into them.
    label_absent : bool
        The source has no label column (``--like`` for ``predict``): ``y`` is zeros.
    kept : pyarrow.Table, optional
        The ``keep`` columns (an id first), passed through to predictions, not features.
    """

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray | None
    feature_names: list | None
    label_name: str
    weight_name: str | None
    locate: object
    categorical: dict | None = None
    missing: np.ndarray | None = None
    class_names: list | None = None
    label_absent: bool = False
    kept: pa.Table | None = None


def _row_locator(i):
    return f"row {i + 1}"


def infer_format(src, format=None):
    """Return the source format: ``format`` if given, else inferred from the extension."""
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"The 'format' parameter must be one of {FORMATS}. "
                             f"Got {format!r} instead.")
        return format
    ext = os.path.splitext(str(src).rstrip("/"))[1].lower()
    if ext not in EXTENSIONS:
        raise DataError(f"{src}: cannot infer the format from extension {ext!r}; expected one of "
                        f"{sorted(EXTENSIONS)} or pass format= one of {FORMATS}")
    return EXTENSIONS[ext]


def _decode_text(data, src):
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{src}: line {line}: expected UTF-8 text, found byte "
                        f"0x{data[exc.start]:02x}") from exc


def _present(columns, label, weight, optional):
    """``(label, weight)`` with an ``optional`` role (``"label"``, ``"weight"``) that ``columns`` lack set to
    None: a holdout ingested ``--like`` a labelled dataset, for ``predict``."""
    return (None if "label" in optional and label not in columns else label,
            None if "weight" in optional and weight not in columns else weight)


def _string_labels(column, src, label, locate, like_names=None):
    """``(y, class_names)`` of a label column of class names: the names sorted (as scikit-learn's
    ``LabelEncoder``) or ``like_names``, ``y`` each row's index into them as float64."""
    values, codes = _distinct(column)
    for value in ("", *sorted(set(values) - set(like_names or values))):
        if value in values:
            row = int(np.flatnonzero(codes == values.index(value))[0])
            expected = ("a class name" if value == "" else
                        f"one of the classes of the --like dataset {_short(like_names)}")
            raise DataError(f"{src}: {locate(row)}: column {label!r}: expected {expected}, found "
                            f"{'an empty value' if value == '' else repr(value)}")
    names = list(like_names) if like_names is not None else sorted(values)
    if len(names) > MAX_CLASSES:
        raise DataError(f"{src}: column {label!r}: expected at most {MAX_CLASSES} class names (MAX_CLASSES), "
                        f"found {len(names)}")
    index = {name: k for k, name in enumerate(names)}
    return np.array([index[v] for v in values], dtype=np.float64)[codes], names


def _short(values, limit=5):
    return repr(values) if len(values) <= limit else repr(values[:limit])[:-1] + ", ...]"


def _is_class_name_column(distinct, like_names):
    """A label column holds class names if the --like dataset's do, or if none of its values is a number."""
    return like_names is not None or (any(distinct) and not any(_is_number(v) for v in distinct if v))


def _split_columns(columns, label, weight, src, keep=()):
    if len(set(columns)) != len(columns):
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        raise DataError(f"{src}: duplicate column names {duplicates}")
    for role, name in (("label", label), ("weight", weight)):
        if name is not None and name not in columns:
            raise DataError(f"{src}: {role} column {name!r} not found; available columns: "
                            f"{columns}")
    for name in keep:
        if name not in columns:
            raise DataError(f"{src}: kept column {name!r} not found; available columns: {columns}")
        if name in (label, weight):
            raise DataError(f"{src}: kept column {name!r}: expected a column other than the label and the "
                            f"weight, found the {'label' if name == label else 'weight'}")
    features = [c for c in columns if c not in (label, weight) and c not in keep]
    if not features:
        raise DataError(f"{src}: no feature columns: expected at least one column besides "
                        f"label {label!r}" + (f" and weight {weight!r}" if weight else ""))
    if len(features) > MAX_FEATURES:
        raise DataError(f"{src}: expected at most {MAX_FEATURES} feature columns (MAX_FEATURES), "
                        f"found {len(features)}")
    return features


def _check_categorical(columns, features, categorical, src):
    """Return the numeric feature columns; every categorical column must be a feature column."""
    for name in categorical:
        if name in columns and name not in features:
            raise DataError(f"{src}: categorical column {name!r}: expected a feature column, found the "
                            "label, weight, id or a kept column")
        if name not in features:
            raise DataError(f"{src}: categorical column {name!r} not found among the feature columns; "
                            f"columns found: {columns}")
    return [c for c in features if c not in categorical]


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return "_" not in text


def _csv_records(text, src):
    """Yield ``(line_number, row)`` for every record, the header and blank lines included.

    A record the ``csv`` module refuses (a field over its ``field_size_limit``, typically an unclosed
    quote) is a DataError naming the line where the record starts.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "field limit" not in str(exc):
                raise DataError(f"{src}: line {start}: not valid CSV: {exc}") from exc
            hint = " (an unclosed quote?)" if '"' in text.split("\n", start)[start - 1] else ""
            raise DataError(f"{src}: line {start}: expected fields of at most {csv.field_size_limit()} "
                            f"characters, found a longer one{hint}") from exc
        yield reader.line_num, row


def _csv_rows(text, src):
    """Yield ``(line_number, row)`` for every non-blank data row after the header."""
    records = _csv_records(text, src)
    next(records, None)
    for line, row in records:
        if row:
            yield line, row


def _longest_line(data, chunk=1 << 26):
    """Return the length in bytes of the longest line of ``data``, its newline included."""
    view = np.frombuffer(data, dtype=np.uint8)
    longest = start = 0
    for offset in range(0, len(view), chunk):
        ends = np.flatnonzero(view[offset:offset + chunk] == ord("\n")) + offset
        if len(ends):
            longest = max(longest, int(ends[0]) + 1 - start, int(np.diff(ends).max(initial=0)))
            start = int(ends[-1]) + 1
    return max(longest, len(view) - start)


#: What a missing numeric value's error advises; with ``--like``, which refuses ``--impute``, the second.
IMPUTE_HINT = " (a missing value: pass --impute zero or mean)"
LIKE_HINT = (" (a missing value: the --like dataset was ingested without --impute, so every numeric value "
             "must be given; ingest the training data with --impute zero or mean to fill them)")


def _read_like(read, like):
    """``read()``, a source reader's call; with a ``--like`` dataset its missing-value error advises
    :data:`LIKE_HINT` instead of :data:`IMPUTE_HINT` (an option ``--like`` refuses)."""
    try:
        return read()
    except DataError as error:
        if like is None or IMPUTE_HINT not in str(error):
            raise
        raise DataError(str(error).replace(IMPUTE_HINT, LIKE_HINT)) from None


def _csv_first_error(text, header, src, categorical=(), optional=()):
    """Return a DataError for the first malformed row of a CSV text, or None if none is found.

    ``categorical`` (text: categorical, kept, or a label of class names) columns may hold any text;
    ``optional`` (imputed) columns may also be empty.
    """
    for line, row in _csv_rows(text, src):
        if len(row) != len(header):
            return DataError(f"{src}: line {line}: expected {len(header)} columns, "
                             f"found {len(row)}")
        for name, value in zip(header, row, strict=True):
            if name in categorical or (value == "" and name in optional):
                continue
            if not _is_number(value):
                hint = IMPUTE_HINT if value == "" else ""
                return DataError(f"{src}: line {line}: column {name!r}: expected a number, "
                                 f"found {value!r}{hint}")
    return None


def read_csv(data, src, *, label, weight, categorical=(), impute=None, optional=(), class_names=None,
             keep=()):
    """Parse CSV bytes with a header row into a :class:`Source`; columns are numeric but ``categorical``.

    The parser's block size grows with the longest line, so a wide file (a header line over the
    default 1 MiB block) is read as well as a long one. With ``impute``, an empty numeric feature
    field is a missing value (``Source.missing``) instead of an error. A label column none of whose values
    is a number (or any label column given ``class_names``, those of a ``--like`` dataset) holds class
    names (``Source.class_names``). The roles in ``optional`` (``"label"``, ``"weight"``) may be absent.
    """
    text = _decode_text(data, src)
    header = next((row for _, row in _csv_records(text, src)), None)
    if not header:
        raise DataError(f"{src}: no rows: expected a header row and at least one data row, "
                        "found an empty file")
    label, weight = _present(header, label, weight, optional)
    keep = [c for c in keep if c in header or "keep" not in optional]
    features = _split_columns(header, label, weight, src, keep)
    numeric = _check_categorical(header, features, categorical, src)
    encoded = text.encode()
    lines = max(encoded.count(b"\n"), encoded.count(b"\r")) + (not encoded.endswith((b"\n", b"\r")))
    check_dense_cells(lines - 1, len(numeric), src)
    read_options = pacsv.ReadOptions(
        block_size=min(MAX_CSV_BLOCK_BYTES, max(CSV_BLOCK_BYTES, 2 * _longest_line(encoded))))
    convert = pacsv.ConvertOptions(column_types={c: pa.string() if c in categorical or c == label or c in keep
                                                 else pa.float64() for c in header},
                                   null_values=[""] if impute else [], strings_can_be_null=False,
                                   quoted_strings_can_be_null=False)
    optional_numbers = numeric if impute else ()
    text_columns = (*categorical, *keep, label)  # read as strings: the parser's error is in another column
    try:
        table = pacsv.read_csv(pa.BufferReader(encoded), read_options=read_options,
                               convert_options=convert)
        error = next((_csv_first_error(text, header, src, text_columns, optional_numbers)
                      for c in (weight,) if c and table.column(c).null_count), None)
    except pa.ArrowInvalid as exc:
        error = _csv_first_error(text, header, src, text_columns, optional_numbers)
        if error is None:
            raise DataError(f"{src}: cannot parse CSV: {str(exc).splitlines()[0]}") from exc
        raise error from exc
    if error is not None:
        raise error

    def locate(i):
        for k, (line, _) in enumerate(_csv_rows(text, src)):
            if k == i:
                return f"line {line}"
        return f"row {i + 1}"

    names = None
    if label is None:
        y = np.zeros(len(table))
    elif _is_class_name_column(pc.unique(table.column(label)).to_pylist(), class_names):
        y, names = _string_labels(table.column(label), src, label, locate, class_names)
    else:
        try:
            y = pc.cast(pc.utf8_trim_whitespace(table.column(label)), pa.float64()).to_numpy()
        except pa.ArrowInvalid as exc:
            error = _csv_first_error(text, header, src, (*categorical, *keep), optional_numbers)
            raise (error or DataError(f"{src}: column {label!r}: expected numbers or class names, found "
                                      f"neither: {str(exc).splitlines()[0]}")) from exc
    X = np.column_stack([table.column(c).to_numpy() for c in numeric]) if len(table) and numeric else (
        np.empty((len(table), len(numeric))))
    missing = (np.column_stack([table.column(c).is_null().to_numpy(zero_copy_only=False) for c in numeric])
               if impute and len(table) and numeric else None)
    return Source(X, y, table.column(weight).to_numpy() if weight else None,
                  numeric, label, weight, locate,
                  {c: table.column(c) for c in features if c in categorical} if categorical else None,
                  missing, names, label is None, table.select(keep) if keep else None)


def _libsvm_error(src, line, what, found):
    return DataError(f"{src}: line {line}: expected {what}, found {found!r}")


def _libsvm_fast(tokens, limit):
    """Parse one line's tokens, or return None when anything is unusual (the slow path then says what)."""
    try:
        target = float(tokens[0])
        pairs = [token.split(":") for token in tokens[1:]]
        columns = [int(index) - 1 for index, _ in pairs]
        values = [float(value) for _, value in pairs]
    except ValueError:
        return None
    if columns and not (0 <= columns[0] and columns[-1] < limit
                        and all(a < b for a, b in zip(columns, columns[1:], strict=False))):
        return None
    return target, columns, values


def _libsvm_slow(tokens, src, line_number, n_features, top, top_name):
    """Parse one line's tokens token by token, raising the DataError of the first bad one."""
    if not _is_number(tokens[0]):
        raise _libsvm_error(src, line_number, "a numeric label first", tokens[0])
    columns, values, previous = [], [], 0
    for token in tokens[1:]:
        index_text, sep, value_text = token.partition(":")
        if not (sep and index_text.lstrip("+-").isdigit() and _is_number(value_text)):
            raise _libsvm_error(src, line_number, "index:value", token)
        index = int(index_text)
        if index <= 0:
            raise _libsvm_error(src, line_number, "a 1-based index >= 1", token)
        if index <= previous:
            raise _libsvm_error(src, line_number, f"strictly increasing indices (previous {previous})", token)
        if n_features is not None and index > n_features:
            raise _libsvm_error(src, line_number, f"an index <= n_features={n_features}", token)
        if index > top:
            raise _libsvm_error(src, line_number, f"an index <= {top} ({top_name})", token)
        previous = index
        columns.append(index - 1)
        values.append(float(value_text))
    return float(tokens[0]), columns, values


def read_libsvm(data, src, *, label, n_features=None, dense=False):
    """Parse libsvm bytes (``label idx:val ...``, 1-based increasing indices) into a Source.

    Text after ``#`` is a comment; blank lines are skipped. The rows are collected as CSR (never
    densified) of ``d = n_features`` or the largest index seen, at most ``MAX_SPARSE_FEATURES``.
    With ``dense``, ``d`` is at most ``MAX_FEATURES`` and the dense rows x d values at most
    ``MAX_DENSE_CELLS``, checked line by line before the dense array is allocated.
    """
    from scipy.sparse import csr_array

    layout = "dense" if dense else "csr"
    check_n_features(n_features, layout)
    top, top_name = max_features(layout)
    if dense:
        top_name += ", the most dense features"
    limit = n_features or top
    labels, lines, indptr = [], [], [0]
    indices, values = array.array("i"), array.array("d")
    widest = widest_line = 0
    for line_number, line in enumerate(_decode_text(data, src).splitlines(), 1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        parsed = None if "_" in line else _libsvm_fast(tokens, limit)
        if parsed is None:
            parsed = _libsvm_slow(tokens, src, line_number, n_features, top, top_name)
        target, columns, row_values = parsed
        row = len(labels)
        labels.append(target)
        lines.append(line_number)
        indices.extend(columns)
        values.extend(row_values)
        indptr.append(len(indices))
        if columns and columns[-1] + 1 > widest:
            widest, widest_line = columns[-1] + 1, line_number
        if dense and (row + 1) * (n_features or widest) > MAX_DENSE_CELLS:
            hint = "" if n_features else (f"the dimension comes from index {widest} on line {widest_line}; "
                                          "if that is a mistake, pass --n-features")
            check_dense_cells(row + 1, n_features or widest, f"{src}: line {line_number}", hint)
    d = n_features if n_features is not None else widest
    if labels and d == 0:
        raise DataError(f"{src}: no features: expected at least one index:value pair, found none")
    X = csr_array((np.frombuffer(values, dtype=np.float64), np.frombuffer(indices, dtype=np.int32),
                   np.asarray(indptr, dtype=np.int64)), shape=(len(labels), max(d, 1)), copy=False)
    if dense:
        X = X.toarray()
    return Source(X, np.asarray(labels, dtype=np.float64), None, None, label, None,
                  lambda i: f"line {lines[i]}")


def _numeric_column(table, name, src, allow_null=False):
    column = table.column(name)
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
            or pa.types.is_boolean(column.type)):
        raise DataError(f"{src}: column {name!r}: expected a numeric type, found {column.type}")
    if column.null_count and not allow_null:  # None: a feature, hint at --impute
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0]) + 1
        hint = IMPUTE_HINT if allow_null is None else ""
        raise DataError(f"{src}: row {row}: column {name!r}: expected a number, found null{hint}")
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False)


def _categorical_column(table, name, src):
    column = table.column(name)
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)):
        raise DataError(f"{src}: categorical column {name!r}: expected a string or integer type, "
                        f"found {column.type}")
    return column


def read_parquet(data, src, *, label, weight, categorical=(), impute=None, optional=(), class_names=None,
                 keep=()):
    """Parse a wide Parquet file (one column per feature, a label column) into a Source.

    Feature columns are numeric, but ``categorical`` ones (string or integer). With ``impute``, a
    null numeric feature is a missing value (``Source.missing``) instead of an error. The shape is
    read from the Parquet metadata and checked before any column is decoded. A string label column (or any
    given ``class_names``) holds class names; the roles in ``optional`` may be absent, as in :func:`read_csv`.
    """
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        names = parquet.schema_arrow.names
        label, weight = _present(names, label, weight, optional)
        keep = [c for c in keep if c in names or "keep" not in optional]
        features = _split_columns(names, label, weight, src, keep)
        numeric = _check_categorical(names, features, categorical, src)
        check_dense_cells(parquet.metadata.num_rows, len(numeric), src)
        table = parquet.read(use_threads=False)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{src}: not a readable Parquet file: {exc}") from exc
    names = None
    if label is not None and (class_names is not None or _is_text(table.column(label).type)):
        y, names = _string_labels(table.column(label), src, label, _row_locator, class_names)
    columns = {c: _numeric_column(table, c, src, (True if impute else None) if c in numeric else False)
               for c in table.column_names
               if c not in categorical and c not in keep and not (c == label and names)}
    if label is None:
        y = np.zeros(len(table))
    elif names is None:
        y = columns[label]
    X = np.column_stack([columns[c] for c in numeric]) if len(table) and numeric else (
        np.empty((len(table), len(numeric))))
    missing = (np.column_stack([table.column(c).is_null().to_numpy(zero_copy_only=False) for c in numeric])
               if impute and len(table) and numeric else None)
    return Source(X, y, columns[weight] if weight else None, numeric, label, weight,
                  _row_locator,
                  {c: _categorical_column(table, c, src) for c in features if c in categorical}
                  if categorical else None, missing, names, label is None,
                  table.select(keep) if keep else None)


def _is_text(kind):
    kind = kind.value_type if pa.types.is_dictionary(kind) else kind
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _npz_headers(data, src):
    """Return ``{name: (shape, dtype)}`` of the arrays of an ``.npz``, from their ``.npy`` headers only."""
    headers = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version not in _NPY_HEADER_READERS:
                    raise DataError(f"{src}: array {name!r}: expected .npy format version 1.0 or 2.0, "
                                    f"found {version[0]}.{version[1]}")
                shape, _, dtype = _NPY_HEADER_READERS[version](member)
            headers[name] = (shape, dtype)
    return headers


def read_npz(data, src, *, label, weight):
    """Load a ``.npz`` with arrays ``X`` (n, d), ``y`` (n,) and optional ``w`` (n,); no pickle.

    A sparse ``.npz`` (one with an array ``format``) holds a csr or csc matrix under the keys
    ``scipy.sparse.save_npz`` writes (``format``, ``shape``, ``data``, ``indices``, ``indptr``, optional
    ``_is_array``) plus
    ``label`` (n,) and optionally ``weight`` (n,), e.g. ``np.savez(path, **dict(np.load(saved)),
    label=y)``; it is read as CSR, never densified.

    Names, dtypes and shapes are checked from the arrays' headers before any array is decompressed.
    """
    try:
        headers = _npz_headers(data, src)
    except DataError:
        raise
    except _NPZ_ERRORS as exc:
        raise DataError(f"{src}: not a loadable .npz without pickle: {exc}") from exc
    if "format" in headers:
        return _read_sparse_npz(data, src, headers, label, weight)
    if set(headers) - set(NPZ_KEYS) or not {"X", "y"} <= set(headers):
        raise DataError(f"{src}: expected arrays X, y and optionally w, found {sorted(headers)}")
    for name, (_, dtype) in headers.items():
        if dtype.hasobject:
            raise DataError(f"{src}: not a loadable .npz without pickle: array {name!r} holds Python "
                            f"objects (dtype {dtype})")
        if dtype.kind not in "fiub":
            raise DataError(f"{src}: array {name!r}: expected a numeric dtype, found {dtype}")
    shape = headers["X"][0]
    if len(shape) != 2:
        raise DataError(f"{src}: array 'X': expected 2 dimensions (n, d), found shape {shape}")
    for name in ("y", "w"):
        if name in headers and headers[name][0] != (shape[0],):
            raise DataError(f"{src}: array {name!r}: expected shape ({shape[0]},), "
                            f"found {headers[name][0]}")
    if shape[1] > MAX_FEATURES:
        raise DataError(f"{src}: array 'X': expected at most {MAX_FEATURES} columns (MAX_FEATURES), "
                        f"found {shape[1]}")
    check_dense_cells(*shape, src)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except _NPZ_ERRORS as exc:
        raise DataError(f"{src}: not a loadable .npz without pickle: {exc}") from exc
    X, y, w = arrays["X"], arrays["y"], arrays.get("w")
    if weight is not None and w is None:
        raise DataError(f"{src}: weight {weight!r} requested but the .npz has no array 'w'")
    weight_name = (weight or "weight") if w is not None else None
    return Source(np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64),
                  None if w is None else np.asarray(w, dtype=np.float64), None, label,
                  weight_name, _row_locator)


def _read_sparse_npz(data, src, headers, label, weight):
    """A csr or csc matrix as scipy's ``save_npz`` writes it, plus ``label`` and optional ``weight``."""
    from scipy import sparse

    keys = set(headers)
    if not set(SPARSE_NPZ_KEYS) <= keys or keys - set(SPARSE_NPZ_KEYS) - {"weight", "_is_array"}:
        raise DataError(f"{src}: expected the arrays of scipy.sparse.save_npz for a csr or csc matrix "
                        f"{list(SPARSE_NPZ_KEYS[:5])}, plus 'label' and optionally 'weight', "
                        f"found {sorted(keys)}")
    for name, (_, dtype) in headers.items():
        if dtype.hasobject:
            raise DataError(f"{src}: not a loadable .npz without pickle: array {name!r} holds Python "
                            f"objects (dtype {dtype})")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except _NPZ_ERRORS as exc:
        raise DataError(f"{src}: not a loadable .npz without pickle: {exc}") from exc
    fmt = arrays["format"].item()
    fmt = fmt.decode("ascii", "replace") if isinstance(fmt, bytes) else str(fmt)
    if fmt not in ("csr", "csc"):
        raise DataError(f"{src}: array 'format': expected 'csr' or 'csc', found {fmt!r}")
    shape = arrays["shape"]
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or shape.min() < 0:
        raise DataError(f"{src}: array 'shape': expected 2 non-negative ints, found {shape.tolist()!r}")
    n, d = (int(v) for v in shape)
    if d > MAX_SPARSE_FEATURES:
        raise DataError(f"{src}: array 'shape': expected at most {MAX_SPARSE_FEATURES} columns "
                        f"(MAX_SPARSE_FEATURES), found {d}")
    for name in ("data", "indices", "indptr"):
        if arrays[name].ndim != 1 or arrays[name].dtype.kind not in ("fiub" if name == "data" else "iu"):
            raise DataError(f"{src}: array {name!r}: expected a 1-d numeric array, found shape "
                            f"{arrays[name].shape} dtype {arrays[name].dtype}")
    cls = sparse.csr_array if fmt == "csr" else sparse.csc_array
    try:
        X = cls((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n, d))
        X.check_format(full_check=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{src}: not a valid {fmt} matrix: {exc}") from exc
    X = sparse.csr_array(X)
    for name in ("label", "weight"):
        if name in arrays and (arrays[name].shape != (n,) or arrays[name].dtype.kind not in "fiub"):
            raise DataError(f"{src}: array {name!r}: expected {n} numbers (shape ({n},)), found shape "
                            f"{arrays[name].shape} dtype {arrays[name].dtype}")
    w = arrays.get("weight")
    if weight is not None and w is None:
        raise DataError(f"{src}: weight {weight!r} requested but the .npz has no array 'weight'")
    return Source(X, np.asarray(arrays["label"], dtype=np.float64),
                  None if w is None else np.asarray(w, dtype=np.float64), None, label,
                  (weight or "weight") if w is not None else None, _row_locator)


def _check_keep_missing(keep_missing, impute, like):
    if not isinstance(keep_missing, bool):
        raise ValueError(f"The 'keep_missing' parameter must be a bool. Got {keep_missing!r} instead.")
    if keep_missing and impute is not None:
        raise ValueError("The 'keep_missing' parameter keeps missing values that 'impute' would fill: give "
                         f"one of them. Got keep_missing=True with impute={impute!r} instead.")
    if keep_missing and like is not None:
        raise ValueError("The 'like' parameter takes the missing values' handling of its dataset: it cannot "
                         "be combined with 'keep_missing'.")


def _keep_missing(source, keep_missing):
    """With ``keep_missing``, write NaN where ``source`` misses a numeric value, and forget the mask."""
    if keep_missing and source.missing is not None:
        source.X[source.missing] = np.nan
        source.missing = None


def _check_values(source, src, missing=False):
    if source.X.shape[0] == 0:
        raise DataError(f"{src}: no rows: expected at least one data row, found 0")
    if source.X.shape[1] == 0:
        raise DataError(f"{src}: no features: expected at least one feature, found 0")
    checks = [(source.y[:, None], lambda _: source.label_name)]
    what = "a finite number or a missing value" if missing else "a finite number"
    if hasattr(source.X, "indptr"):
        data = source.X.data
        bad = first_nonfinite(data, missing)
        if bad is not None:
            pos = bad[0]
            row = int(np.searchsorted(source.X.indptr, pos, side="right")) - 1
            raise DataError(f"{src}: {source.locate(row)}: column 'feature {int(source.X.indices[pos])}': "
                            f"expected {what}, found {float(data[pos])!r}")
    else:
        names = source.feature_names or [f"feature {j}" for j in range(source.X.shape[1])]
        checks.insert(0, (source.X, lambda j: names[j]))
    if source.w is not None:
        checks.append((source.w[:, None], lambda _: source.weight_name))
    for k, (values, name_of) in enumerate(checks):
        features = missing and k == 0 and not hasattr(source.X, "indptr")
        bad = first_nonfinite(values, features)
        if bad is not None:
            raise DataError(f"{src}: {source.locate(bad[0])}: column {name_of(bad[1])!r}: expected "
                            f"{what if features else 'a finite number'}, found {float(values[bad])!r}")
    if source.w is not None and np.any(source.w < 0):
        row = int(np.flatnonzero(source.w < 0)[0])
        raise DataError(f"{src}: {source.locate(row)}: column {source.weight_name!r}: expected a "
                        f"weight >= 0, found {float(source.w[row])!r}")


def _impute(source, encoding, src):
    """Fill the missing numeric values of ``source.X`` in place; return the means used (or None)."""
    missing = source.missing
    if encoding["impute"] != "mean":
        if missing is not None:
            source.X[missing] = 0.0
        return None
    if encoding["means"] is not None:
        means = np.asarray(encoding["means"], dtype=np.float64)
    else:
        kept = ~missing if missing is not None else np.ones(source.X.shape, dtype=bool)
        kept &= np.isfinite(source.X)
        counts = kept.sum(axis=0)
        means = np.where(kept, source.X, 0.0).sum(axis=0) / np.maximum(counts, 1)
        for j in np.flatnonzero(counts == 0):
            logger.warning("%s: column %r has no value to average; imputing 0.0", src,
                           source.feature_names[j])
    if missing is not None:
        source.X[missing] = np.broadcast_to(means, source.X.shape)[missing]
    return [float(m) for m in means]


def _distinct(column):
    """``(values, codes)``: the distinct values of a categorical column as strings ('' for missing) and
    each row's index into them."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    column = pc.cast(column, pa.string())
    encoded = pc.dictionary_encode(column.fill_null(""))
    return encoded.dictionary.to_pylist(), encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _encode_columns(source, encoding, src):
    """Build the csr X of numeric then categorical slots; fills ``encoding["levels"]`` (and, one-hot, its
    ``"slots"`` and ``"reference"`` from the categories the rows fill) when it is new."""
    from scipy import sparse

    n, m = source.X.shape
    rows, cols = np.nonzero(source.X)
    parts_rows, parts_cols, parts_data = [rows], [cols], [source.X[rows, cols]]
    offset, total = m, 0
    build = encoding["hash_bits"] is None and encoding["levels"] is None
    levels_out, slots_out, reference_out, columns = {}, {}, {}, []
    for column in encoding["categorical"]:
        distinct, codes = _distinct(source.categorical[column])
        if encoding["hash_bits"] is not None:
            columns.append((enc.hash_slots(column, distinct, encoding["hash_bits"]), codes))
            continue
        if build:
            counts = np.bincount(codes, minlength=len(distinct))
            kept = [(v, c) for v, c in zip(distinct, counts, strict=True) if v != ""]
            levels = enc.build_levels(column, [v for v, _ in kept], [c for _, c in kept],
                                      encoding["min_count"], src)
            total += len(levels) + 2
            if total > enc.MAX_LEVELS:
                raise DataError(f"{src}: column {column!r}: expected at most {enc.MAX_LEVELS} one-hot "
                                f"levels in total (MAX_LEVELS), found {total} so far; pass --hash-bits "
                                "or a larger --min-count")
            levels_out[column] = levels
        else:
            levels = encoding["levels"][column]
        known = set(levels)
        categories = [enc.MISSING if v == "" else v if v in known else enc.OTHER for v in distinct]
        if build:
            filled = {categories[i] for i in np.unique(codes)}
            slots_out[column], reference_out[column] = enc.choose_slots(
                [*levels, enc.MISSING, enc.OTHER], filled, encoding["drop"])
            slots = slots_out[column]
        else:
            slots = enc.column_levels(encoding, column)
        position = {category: i for i, category in enumerate(slots)}
        at = np.array([position.get(c, -1) for c in categories], dtype=np.int64)
        if not build:
            reference = encoding.get("reference", {}).get(column)
            unknown = sorted({v or enc.MISSING for c, v, i in zip(categories, distinct, at, strict=True)
                              if i < 0 and c != reference})
            if unknown:
                logger.warning("%s: column %r: %d value(s) without a slot in the --like encoding (first %r) "
                               "have no entry (all the column's slots 0%s)", src, column, len(unknown),
                               unknown[0], ", as the reference level" if reference is not None else "")
        columns.append((at, codes))
    if build:
        encoding["levels"] = levels_out
        encoding["slots"], encoding["reference"] = slots_out, reference_out
    for column, (at, codes) in zip(encoding["categorical"], columns, strict=True):
        row_slots = at[codes] if len(at) else np.zeros(0, dtype=np.int64)
        keep = row_slots >= 0
        parts_rows.append(np.arange(n)[keep])
        parts_cols.append(row_slots[keep] + offset)
        parts_data.append(np.ones(int(keep.sum())))
        if encoding["hash_bits"] is None:  # hashed columns share one space of slots
            offset += len(enc.column_levels(encoding, column))
    d = enc.n_features(encoding)
    X = sparse.coo_array((np.concatenate(parts_data), (np.concatenate(parts_rows),
                                                       np.concatenate(parts_cols))), shape=(n, d))
    return sparse.csr_array(X.tocsr())


def _apply_encoding(source, src, *, categorical, hash_bits, min_count, impute, like, drop=None):
    """Impute and encode ``source`` in place with a new encoding, or ``like``'s; return the encoding."""
    if like is not None:
        encoding = dict(like)
        expected = set(encoding["numeric"]) | set(encoding["categorical"])
        found = set(source.feature_names) | set(source.categorical or {})
        if expected != found:
            raise DataError(f"{src}: expected the feature columns of the --like encoding "
                            f"{sorted(expected)}, found {sorted(found)}")
        order = [source.feature_names.index(c) for c in encoding["numeric"]]
        source.X = source.X[:, order]
        source.missing = None if source.missing is None else source.missing[:, order]
        source.feature_names = list(encoding["numeric"])
    else:
        encoding = {"numeric": list(source.feature_names), "categorical": list(source.categorical or {}),
                    "hash_bits": hash_bits, "levels": None, "min_count": min_count, "impute": impute,
                    "means": None}
        if encoding["categorical"] and hash_bits is None:
            encoding["drop"] = drop or "none"
    if source.missing is not None and source.missing.any() and encoding["impute"] is None:
        row, j = (int(i) for i in np.argwhere(source.missing)[0])
        raise DataError(f"{src}: {source.locate(row)}: column {source.feature_names[j]!r}: expected a "
                        "number, found a missing value" + LIKE_HINT)
    if encoding["impute"] is not None:
        encoding["means"] = _impute(source, encoding, src)
    source.missing = None
    if encoding["categorical"]:
        source.X = _encode_columns(source, encoding, src)
    elif encoding["hash_bits"] is None and encoding["levels"] is None:
        encoding["levels"] = {}
    source.categorical = None
    return encoding


def _check_encoding_options(fmt, categorical, hash_bits, min_count, impute, like, drop=None):
    enc.check_hash_bits(hash_bits)
    if drop is not None:
        enc.check_drop(drop)
        if not categorical or hash_bits is not None:
            raise ValueError("The 'drop' parameter applies to one-hot encoded 'categorical' columns (not "
                             f"with 'hash_bits'). Got drop={drop!r} with categorical={categorical!r}, "
                             f"hash_bits={hash_bits!r} instead.")
    enc.check_min_count(min_count)
    enc.check_impute(impute)
    if categorical is not None and (not isinstance(categorical, (list, tuple))
                                    or not all(isinstance(c, str) and c for c in categorical)
                                    or len(set(categorical)) != len(categorical)):
        raise ValueError("The 'categorical' parameter must be a list of distinct column names. "
                         f"Got {categorical!r} instead.")
    if (categorical or impute or like is not None) and fmt not in ("csv", "parquet"):
        raise ValueError("The 'categorical', 'impute' and 'like' parameters apply to csv and parquet "
                         f"sources. Got format {fmt!r} instead.")
    if like is not None and (categorical or hash_bits is not None or min_count != 1 or impute or drop):
        raise ValueError("The 'like' parameter takes the encoding of its dataset: it cannot be combined "
                         "with 'categorical', 'hash_bits', 'min_count', 'impute' or 'drop'.")
    if not categorical and like is None and (hash_bits is not None or min_count != 1):
        raise ValueError("The 'hash_bits' and 'min_count' parameters need 'categorical' columns. "
                         "Got none instead.")
    if hash_bits is not None and min_count != 1:
        raise ValueError("The 'min_count' parameter applies to one-hot encoding, not with 'hash_bits'. "
                         f"Got {min_count!r} instead.")


def _check_kept(fmt, id, keep):
    """The columns kept for predictions, the id first; ValueError for a bad ``id`` or ``keep``."""
    if id is not None and (not isinstance(id, str) or not id):
        raise ValueError(f"The 'id' parameter must be a column name. Got {id!r} instead.")
    if keep is not None and (not isinstance(keep, (list, tuple))
                             or not all(isinstance(c, str) and c for c in keep)
                             or len(set(keep)) != len(keep) or id in keep):
        raise ValueError("The 'keep' parameter must be a list of distinct column names other than 'id'. "
                         f"Got {keep!r} instead.")
    kept = ([id] if id else []) + list(keep or [])
    if kept and fmt not in ("csv", "parquet"):
        raise ValueError("The 'id' and 'keep' parameters apply to csv and parquet sources. Got format "
                         f"{fmt!r} instead.")
    if len(kept) > MAX_KEPT_COLUMNS:
        raise ValueError(f"The 'keep' parameter takes at most {MAX_KEPT_COLUMNS} columns (MAX_KEPT_COLUMNS). "
                         f"Got {len(kept)} instead.")
    return kept


def _order_like(source, like, src):
    """Put the numeric columns of ``source`` in the order of the --like dataset ``like`` (no encoding)."""
    expected, found = like.feature_names, source.feature_names or []
    if sorted(expected) != sorted(found):
        raise DataError(f"{src}: expected the feature columns of the --like dataset "
                        f"{_short(sorted(expected))}, found {_short(sorted(found))}")
    order = [found.index(c) for c in expected]
    source.X = source.X[:, order]
    source.feature_names = list(expected)


def ingest(src, dest, *, format=None, label=None, weight=None, partitions=None,
           partition_size_mb=64, n_features=None, dtype=None, dense=False, categorical=None,
           hash_bits=None, min_count=1, impute=None, drop=None, id=None, keep=None, like=None, progress=None,
           keep_missing=False):
    """Convert a source file into a dataset directory.

    Parameters
    ----------
    src : str
        Source file, local or ``hdfs://``.
    dest : str
        Dataset directory to create; must not exist.
    format : {"csv", "libsvm", "parquet", "npz"}, optional
        Default: inferred from the extension (``.csv``, ``.libsvm``/``.svm``, ``.parquet``,
        ``.npz``).
    label : str, optional
        Label column (CSV, Parquet); for libsvm and npz the name recorded in the manifest. Default
        ``"label"``, or the ``like`` dataset's. A CSV label column none of whose values is a number, or a
        Parquet string column, holds class names: stored as their index into the sorted names, which the
        manifest records (``label.class_names``).
    weight : str, optional
        Sample-weight column (CSV, Parquet); for npz the name recorded for array ``w``. Default: none, or
        the ``like`` dataset's.
    partitions : int, optional
        Number of partitions, at most ``MAX_PARTITIONS``; default from ``partition_size_mb``.
    partition_size_mb : float
        Target uncompressed partition size in MiB, finite and > 0.
    n_features : int, optional
        Number of features d: libsvm rows get it (an index beyond it is an error), other formats must
        match it. At most ``MAX_SPARSE_FEATURES`` for libsvm and npz, ``MAX_FEATURES`` for dense data.
    dtype : {"float64", "float32"}, optional
        Element type of the stored features. Default ``"float64"``, or the ``like`` dataset's.
    dense : bool
        libsvm only: write a dense dataset (today's layout, bounded by ``MAX_FEATURES`` and
        ``MAX_DENSE_CELLS``) instead of a csr one.
    categorical : list of str, optional
        csv and parquet: categorical (string or integer) columns, encoded after the numeric ones into
        a csr dataset (see :mod:`mrtrain.storage.encoding`).
    hash_bits : int in [1, 30], optional
        Hash the categorical values into ``2**hash_bits`` slots; default one-hot.
    min_count : int >= 1
        One-hot: values seen fewer times go to the column's ``<other>`` slot. Default 1.
    impute : {"zero", "mean"}, optional
        csv and parquet: fill a missing numeric feature with 0 or with the column's mean in ``src``
        (recorded in the encoding); default a missing number is an error.
    drop : {"none", "first", "if-binary"}, optional
        One-hot: the reference category left without a slot in each column (see
        :mod:`mrtrain.storage.encoding`). Default ``"none"``.
    id : str, optional
        csv and parquet: a row identifier column, no feature, passed through to predictions (first).
    keep : list of str, optional
        csv and parquet: more columns, no features, passed through to predictions (CSV columns as text).
    like : str, optional
        A dataset whose recipe is reused: its label and weight columns (unless given), its dtype, the
        order of its feature columns, its encoding (columns, hashing or levels and slots, imputation) and its
        label classes (a class name it lacks is an error). A source without the label column is ingested
        for ``predict`` (``label.absent``), without the weight column too.
    keep_missing : bool
        Keep missing numeric features as NaN (an empty csv field, a Parquet null, a NaN) instead of refusing
        them; recorded as the manifest's ``"missing": true``. Only the tree models train on such a dataset.
        Not with ``impute``; a ``like`` dataset passes its own on.
    progress : callable ``(stage, done, total, unit) -> None``, optional
        Told where the ingest is: ``("read", size, size, "B")`` and ``("parse", rows, rows, "rows")``
        once the source is read, parsed and checked, then
        ``("write", rows written, rows, "rows")`` before the first partition and after each
        (:func:`mrtrain.storage.dataset.write_dataset`).

    Returns
    -------
    Dataset
        csr (``layout == "csr"``) for libsvm without ``dense``, a sparse npz and categorical columns;
        dense otherwise.

    Raises
    ------
    DataError
        Malformed source (naming file, line or row, column, expected and found), no rows, or a
        source over the limits of its layout.
    ValueError
        A bad parameter, before the source is read.
    OSError
        If ``src`` is not a regular file.
    FileExistsError
        If ``dest`` exists.
    """
    src, dest = absolute(str(src)), absolute(str(dest))
    fmt = infer_format(src, format)
    if not isinstance(dense, bool):
        raise ValueError(f"The 'dense' parameter must be a bool. Got {dense!r} instead.")
    if dense and fmt != "libsvm":
        raise ValueError(f"The 'dense' parameter applies to libsvm sources (other formats are dense unless "
                         f"their columns are categorical). Got dense=True with format {fmt!r} instead.")
    if weight is not None and fmt == "libsvm":
        raise ValueError(f"The 'weight' parameter names a csv or parquet column or an npz array; a libsvm "
                         f"source has none. Got weight={weight!r} with format 'libsvm' instead.")
    check_n_features(n_features, "csr" if fmt in ("libsvm", "npz") and not dense else "dense")
    check_partitioning(partitions, partition_size_mb)
    if dtype is not None:
        check_dtype(dtype)
    _check_encoding_options(fmt, categorical, hash_bits, min_count, impute, like, drop)
    _check_keep_missing(keep_missing, impute, like)
    kept = _check_kept(fmt, id, keep)
    if get_filesystem(dest).exists(dest):
        raise FileExistsError(f"{dest}: destination already exists; choose a new path or "
                              "delete it")
    like_dataset = None if like is None else Dataset.open(absolute(str(like)))
    optional, class_names = (), None
    if like_dataset is not None:
        optional = tuple(role for role, given in (("label", label), ("weight", weight), ("keep", kept))
                         if not given)
        if not kept:
            id, kept = like_dataset.id_column, like_dataset.kept_columns
        label = label or like_dataset.label_name
        weight = weight or like_dataset.weight_name
        dtype = dtype or like_dataset.dtype
        class_names = like_dataset.class_names
        keep_missing = like_dataset.has_missing
    label, dtype = label or "label", dtype or "float64"
    like_encoding = None if like_dataset is None else like_dataset.encoding
    encoded = bool(categorical or impute or like_encoding)
    data = get_filesystem(src).read_bytes(src)
    if fmt == "libsvm":
        source = read_libsvm(data, src, label=label, n_features=n_features, dense=dense)
    elif encoded:
        reader = read_csv if fmt == "csv" else read_parquet
        columns = like_encoding["categorical"] if like_encoding else categorical or ()
        source = _read_like(lambda: reader(
            data, src, label=label, weight=weight, categorical=tuple(columns),
            impute=(like_encoding["impute"] if like_encoding else impute) or keep_missing, optional=optional,
            class_names=class_names, keep=tuple(kept)), like_dataset)
        _keep_missing(source, keep_missing)
        encoding = _apply_encoding(source, src, categorical=categorical, hash_bits=hash_bits,
                                   min_count=min_count, impute=impute, like=like_encoding, drop=drop)
        if n_features is not None and source.X.shape[1] != n_features:
            raise DataError(f"{src}: expected n_features={n_features} features, found {source.X.shape[1]} "
                            "after encoding")
    else:
        reader = {"csv": read_csv, "parquet": read_parquet, "npz": read_npz}[fmt]
        extra = ({} if fmt == "npz" else
                 {"optional": optional, "class_names": class_names, "keep": tuple(kept),
                  "impute": keep_missing or None})
        source = _read_like(lambda: reader(data, src, label=label, weight=weight, **extra), like_dataset)
        _keep_missing(source, keep_missing)
        if like_dataset is not None:
            _order_like(source, like_dataset, src)
        if n_features is not None and source.X.shape[1] != n_features:
            raise DataError(f"{src}: expected n_features={n_features} feature columns, found "
                            f"{source.X.shape[1]}")
    if "weight" in optional and source.weight_name is None and weight and not source.label_absent:
        raise DataError(f"{src}: weight column {weight!r} (of the --like dataset) not found: expected it "
                        "beside the label column, or no label column either (a dataset for predict)")
    _check_values(source, src, keep_missing)
    if progress is not None:  # once the source is known to be good: no progress precedes a data error
        progress("read", len(data), len(data), "B")
        progress("parse", source.X.shape[0], source.X.shape[0], "rows")
    logger.info("ingesting %s (%s, %s): %d rows, %d features", src, fmt,
                "csr" if hasattr(source.X, "indptr") else "dense", *source.X.shape)
    return write_dataset(dest, source.X, source.y, source.w,
                         feature_names=None if encoded else source.feature_names,
                         label_name=source.label_name or label, weight_name=source.weight_name,
                         partitions=partitions, partition_size_mb=partition_size_mb, dtype=dtype,
                         encoding=encoding if encoded else None,
                         classes=None if like_dataset is None else like_dataset.classes,
                         class_names=source.class_names, label_absent=source.label_absent, kept=source.kept,
                         id_column=id if source.kept is not None and id in source.kept.column_names else None,
                         progress=progress, missing=keep_missing)
