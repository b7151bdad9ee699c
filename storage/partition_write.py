"""Writing a dataset's partitions: arrays checked (finite, sizes, labels, weights), cut into partitions
(:func:`partition_bounds`, :func:`csr_partition_bounds`, within the manifest's limits) and encoded as
Parquet (:func:`encode_partition`); the kept columns' files.

:func:`mrtrain.storage.dataset.write_dataset` writes a whole dataset with these; the format is described
in :mod:`mrtrain.storage.dataset`.
"""

import hashlib
import io
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import join
from mrtrain.storage.manifest import (
    FEATURES,
    INDICES,
    LABEL,
    MAX_CLASSES,
    MAX_DENSE_CELLS,
    MAX_FEATURES,
    MAX_PARTITION_NNZ,
    MAX_PARTITIONS,
    MAX_SPARSE_FEATURES,
    N_FEATURES_KEY,
    VALUES,
    WEIGHT,
    check_dtype,
    check_partitioning,
    keep_name,
)
from mrtrain.storage.partition_read import (
    first_nonfinite,
    valid_features,
)


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


def validate_arrays(X, y, w, dtype, where, missing=False):
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


def validate_sparse(X, y, w, dtype, where, missing=False):
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
    bad = np.flatnonzero(~valid_features(data, missing))
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


def write_kept(fs, directory, index, table):
    sink = io.BytesIO()
    pq.write_table(table, sink)
    data = sink.getvalue()
    fs.write_bytes(join(directory, keep_name(index)), data)
    return {"file": keep_name(index), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
