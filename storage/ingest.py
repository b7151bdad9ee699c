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
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mrtrain.storage.dataset import (
    MAX_DENSE_CELLS,
    MAX_FEATURES,
    MAX_SPARSE_FEATURES,
    check_dense_cells,
    check_dtype,
    check_n_features,
    check_partitioning,
    first_nonfinite,
    max_features,
    write_dataset,
)
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import get_filesystem

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
    """

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray | None
    feature_names: list | None
    label_name: str
    weight_name: str | None
    locate: object


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


def _split_columns(columns, label, weight, src):
    if len(set(columns)) != len(columns):
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        raise DataError(f"{src}: duplicate column names {duplicates}")
    for role, name in (("label", label), ("weight", weight)):
        if name is not None and name not in columns:
            raise DataError(f"{src}: {role} column {name!r} not found; available columns: "
                            f"{columns}")
    features = [c for c in columns if c not in (label, weight)]
    if not features:
        raise DataError(f"{src}: no feature columns: expected at least one column besides "
                        f"label {label!r}" + (f" and weight {weight!r}" if weight else ""))
    if len(features) > MAX_FEATURES:
        raise DataError(f"{src}: expected at most {MAX_FEATURES} feature columns (MAX_FEATURES), "
                        f"found {len(features)}")
    return features


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


def _csv_first_error(text, header, src):
    """Return a DataError for the first malformed row of a CSV text, or None if none is found."""
    for line, row in _csv_rows(text, src):
        if len(row) != len(header):
            return DataError(f"{src}: line {line}: expected {len(header)} columns, "
                             f"found {len(row)}")
        for name, value in zip(header, row, strict=True):
            if not _is_number(value):
                return DataError(f"{src}: line {line}: column {name!r}: expected a number, "
                                 f"found {value!r}")
    return None


def read_csv(data, src, *, label, weight):
    """Parse CSV bytes with a header row into a :class:`Source`; all columns must be numeric.

    The parser's block size grows with the longest line, so a wide file (a header line over the
    default 1 MiB block) is read as well as a long one.
    """
    text = _decode_text(data, src)
    header = next((row for _, row in _csv_records(text, src)), None)
    if not header:
        raise DataError(f"{src}: no rows: expected a header row and at least one data row, "
                        "found an empty file")
    features = _split_columns(header, label, weight, src)
    encoded = text.encode()
    lines = max(encoded.count(b"\n"), encoded.count(b"\r")) + (not encoded.endswith((b"\n", b"\r")))
    check_dense_cells(lines - 1, len(features), src)
    read_options = pacsv.ReadOptions(
        block_size=min(MAX_CSV_BLOCK_BYTES, max(CSV_BLOCK_BYTES, 2 * _longest_line(encoded))))
    convert = pacsv.ConvertOptions(column_types={c: pa.float64() for c in header},
                                   null_values=[], strings_can_be_null=False,
                                   quoted_strings_can_be_null=False)
    try:
        table = pacsv.read_csv(pa.BufferReader(encoded), read_options=read_options,
                               convert_options=convert)
    except pa.ArrowInvalid as exc:
        error = _csv_first_error(text, header, src)
        if error is None:
            raise DataError(f"{src}: cannot parse CSV: {str(exc).splitlines()[0]}") from exc
        raise error from exc
    X = np.column_stack([table.column(c).to_numpy() for c in features]) if len(table) else (
        np.empty((0, len(features))))

    def locate(i):
        for k, (line, _) in enumerate(_csv_rows(text, src)):
            if k == i:
                return f"line {line}"
        return f"row {i + 1}"

    return Source(X, table.column(label).to_numpy(),
                  table.column(weight).to_numpy() if weight else None,
                  features, label, weight, locate)


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


def _numeric_column(table, name, src):
    column = table.column(name)
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
            or pa.types.is_boolean(column.type)):
        raise DataError(f"{src}: column {name!r}: expected a numeric type, found {column.type}")
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy())[0]) + 1
        raise DataError(f"{src}: row {row}: column {name!r}: expected a number, found null")
    return column.cast(pa.float64()).to_numpy()


def read_parquet(data, src, *, label, weight):
    """Parse a wide Parquet file (one numeric column per feature, a label column) into a Source.

    The shape is read from the Parquet metadata and checked before any column is decoded.
    """
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        features = _split_columns(parquet.schema_arrow.names, label, weight, src)
        check_dense_cells(parquet.metadata.num_rows, len(features), src)
        table = parquet.read(use_threads=False)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{src}: not a readable Parquet file: {exc}") from exc
    columns = {c: _numeric_column(table, c, src) for c in table.column_names}
    X = np.column_stack([columns[c] for c in features]) if len(table) else (
        np.empty((0, len(features))))
    return Source(X, columns[label], columns[weight] if weight else None, features, label, weight,
                  _row_locator)


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


def _check_values(source, src):
    if source.X.shape[0] == 0:
        raise DataError(f"{src}: no rows: expected at least one data row, found 0")
    if source.X.shape[1] == 0:
        raise DataError(f"{src}: no features: expected at least one feature, found 0")
    checks = [(source.y[:, None], lambda _: source.label_name)]
    if hasattr(source.X, "indptr"):
        data = source.X.data
        if not np.isfinite(data).all():
            pos = int(np.flatnonzero(~np.isfinite(data))[0])
            row = int(np.searchsorted(source.X.indptr, pos, side="right")) - 1
            raise DataError(f"{src}: {source.locate(row)}: column 'feature {int(source.X.indices[pos])}': "
                            f"expected a finite number, found {float(data[pos])!r}")
    else:
        names = source.feature_names or [f"feature {j}" for j in range(source.X.shape[1])]
        checks.insert(0, (source.X, lambda j: names[j]))
    if source.w is not None:
        checks.append((source.w[:, None], lambda _: source.weight_name))
    for values, name_of in checks:
        bad = first_nonfinite(values)
        if bad is not None:
            raise DataError(f"{src}: {source.locate(bad[0])}: column {name_of(bad[1])!r}: expected "
                            f"a finite number, found {float(values[bad])!r}")
    if source.w is not None and np.any(source.w < 0):
        row = int(np.flatnonzero(source.w < 0)[0])
        raise DataError(f"{src}: {source.locate(row)}: column {source.weight_name!r}: expected a "
                        f"weight >= 0, found {float(source.w[row])!r}")


def ingest(src, dest, *, format=None, label="label", weight=None, partitions=None,
           partition_size_mb=64, n_features=None, dtype="float64", dense=False):
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
    label : str
        Label column (CSV, Parquet); for libsvm and npz the name recorded in the manifest.
    weight : str, optional
        Sample-weight column (CSV, Parquet); for npz the name recorded for array ``w``.
    partitions : int, optional
        Number of partitions, at most ``MAX_PARTITIONS``; default from ``partition_size_mb``.
    partition_size_mb : float
        Target uncompressed partition size in MiB, finite and > 0.
    n_features : int, optional
        Number of features d: libsvm rows get it (an index beyond it is an error), other formats must
        match it. At most ``MAX_SPARSE_FEATURES`` for libsvm and npz, ``MAX_FEATURES`` for dense data.
    dtype : {"float64", "float32"}
        Element type of the stored features.
    dense : bool
        libsvm only: write a dense dataset (today's layout, bounded by ``MAX_FEATURES`` and
        ``MAX_DENSE_CELLS``) instead of a csr one.

    Returns
    -------
    Dataset
        csr (``layout == "csr"``) for libsvm without ``dense`` and for a sparse npz; dense otherwise.

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
    src, dest = str(src), str(dest)
    fmt = infer_format(src, format)
    if not isinstance(dense, bool):
        raise ValueError(f"The 'dense' parameter must be a bool. Got {dense!r} instead.")
    check_n_features(n_features, "csr" if fmt in ("libsvm", "npz") and not dense else "dense")
    check_partitioning(partitions, partition_size_mb)
    check_dtype(dtype)
    if get_filesystem(dest).exists(dest):
        raise FileExistsError(f"{dest}: destination already exists; choose a new path or "
                              "delete it")
    data = get_filesystem(src).read_bytes(src)
    if fmt == "libsvm":
        source = read_libsvm(data, src, label=label, n_features=n_features, dense=dense)
    else:
        reader = {"csv": read_csv, "parquet": read_parquet, "npz": read_npz}[fmt]
        source = reader(data, src, label=label, weight=weight)
        if n_features is not None and source.X.shape[1] != n_features:
            raise DataError(f"{src}: expected n_features={n_features} feature columns, found "
                            f"{source.X.shape[1]}")
    _check_values(source, src)
    logger.info("ingesting %s (%s, %s): %d rows, %d features", src, fmt,
                "csr" if hasattr(source.X, "indptr") else "dense", *source.X.shape)
    return write_dataset(dest, source.X, source.y, source.w, feature_names=source.feature_names,
                         label_name=source.label_name, weight_name=source.weight_name,
                         partitions=partitions, partition_size_mb=partition_size_mb, dtype=dtype)
