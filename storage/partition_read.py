"""Reading a dataset's partitions: a Parquet partition read, checked against its manifest entry (bytes,
sha256, rows, columns, csr metadata) and for finite values, and decoded without copying its buffers into
numpy (dense) or ``scipy.sparse`` (csr) arrays; and the kept columns' files.

The format is described in :mod:`mrtrain.storage.dataset`, the manifest's names and limits in
:mod:`mrtrain.storage.manifest`.
"""

import hashlib
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import get_filesystem
from mrtrain.storage.manifest import (
    FEATURES,
    INDICES,
    LABEL,
    MANIFEST_NAME,
    MAX_PARTITION_NNZ,
    MAX_SPARSE_FEATURES,
    N_FEATURES_KEY,
    VALUES,
    WEIGHT,
    check_dense_cells,
)


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
    if hasattr(X, "indptr") and not valid_features(X.data, missing).all():
        pos = int(np.flatnonzero(~valid_features(X.data, missing))[0])
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


def valid_features(values, missing):
    """Where ``values`` are finite, or NaN (a missing value) when ``missing``."""
    return np.isfinite(values) | np.isnan(values) if missing else np.isfinite(values)


def first_nonfinite(values, missing=False):
    """Return the index tuple of the first non-finite entry of ``values`` (NaN allowed when ``missing``),
    or None."""
    good = valid_features(values, missing)
    if good.all():
        return None
    bad = np.argwhere(~good)
    return tuple(int(i) for i in bad[0])
