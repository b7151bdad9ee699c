"""Checkpoints: one self-describing Parquet file per iteration, ``ckpt-000012.parquet``.

Storage knows nothing of models: a checkpoint is an iteration number, named float64 arrays of
any shape (exact bits round-trip) and a JSON-able ``meta`` dict. The table has one row per
array with columns ``name: string``, ``shape: list<int64>``, ``values: list<float64>``; the
Parquet file's key-value metadata holds a format tag, the iteration, the meta JSON and a sha256 over
the canonical bytes of all of it. Loading never unpickles: only Parquet, JSON and raw floats.

Nothing read is trusted: a checkpoint is only a regular file of at most :data:`MAX_CHECKPOINT_BYTES`
whose meta JSON is at most :data:`MAX_META_BYTES`, whose iteration is the one its name says, and whose
array shapes match their values; anything else is a :class:`CheckpointError`. Callers that know what the
meta must hold (the trainer's schema: :func:`mrtrain.fitted.validate_checkpoint`) pass a ``validate``
function to :func:`latest_checkpoint`, so that a checkpoint failing it is skipped like a corrupt one.
"""

import hashlib
import io
import json
import logging
import math
import re
import struct
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mrtrain.storage.errors import CheckpointError
from mrtrain.storage.filesystem import basename, get_filesystem, join

logger = logging.getLogger(__name__)

FORMAT = "mrtrain-checkpoint"
VERSION = 1
#: File names of checkpoints (match with ``fullmatch``: ASCII digits only, no trailing newline).
NAME_PATTERN = re.compile(r"ckpt-([0-9]{6,18})\.parquet")
#: Temporary files of checkpoint writes (:func:`mrtrain.storage.filesystem.temp_sibling`), left by a crash.
TEMPORARY_PATTERN = re.compile(r"\.ckpt-[0-9]{6,18}\.parquet\.tmp-[0-9a-f]{12}")
#: Largest checkpoint file written and read: room for ``p`` parameters plus optimizer state. An L-BFGS
#: state at p = 2^24 (the point, the gradient and 10 pairs of history vectors) is 3 GB of float64 before
#: compression; a Newton state holds a ``p x p`` Hessian (p = 16000 is 2 GiB). A resume reads the file
#: into memory and decodes a copy.
MAX_CHECKPOINT_BYTES = 8 * 1024**3
#: Largest meta JSON read (settings, objective history and optimizer scalars are far smaller).
MAX_META_BYTES = 16 * 1024**2
#: Largest iteration number (the checksum packs it as a signed 64-bit int).
MAX_ITERATION = 10**18 - 1
#: Most dimensions of a checkpoint array (numpy's own limit is 32 or 64).
MAX_NDIM = 32
#: Errors of reading a checkpoint that say nothing about the file itself: raised, not skipped.
_NOT_THE_FILES_FAULT = (FileNotFoundError, PermissionError, ConnectionError, TimeoutError)
_KEY_FORMAT = b"mrtrain.format"
_KEY_VERSION = b"mrtrain.version"
_KEY_ITERATION = b"mrtrain.iteration"
_KEY_META = b"mrtrain.meta"
_KEY_SHA256 = b"mrtrain.sha256"
SCHEMA = pa.schema([
    ("name", pa.string()),
    ("shape", pa.list_(pa.int64())),
    ("values", pa.list_(pa.float64())),
])

__all__ = [
    "Checkpoint", "CheckpointError", "checkpoint_name", "latest_checkpoint", "list_checkpoints",
    "load_checkpoint", "remove_temporaries", "save_checkpoint",
]


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Attributes
    ----------
    iteration : int
    arrays : dict of str to ndarray (float64, any shape)
    meta : dict
    uri : str
    """

    iteration: int
    arrays: dict
    meta: dict
    uri: str


def checkpoint_name(iteration):
    """Return the file name of iteration ``iteration``, e.g. ``ckpt-000012.parquet``."""
    return f"ckpt-{iteration:06d}.parquet"


def _meta_json(meta):
    return json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()


def content_checksum(iteration, arrays, meta_json):
    """Return the sha256 hex digest of the canonical bytes of a checkpoint's content.

    Parameters
    ----------
    iteration : int
    arrays : dict of str to ndarray (float64)
        Hashed in sorted name order: name, shape, then the raw little-endian float64 bytes.
    meta_json : bytes
        The canonical meta JSON.
    """
    digest = hashlib.sha256()
    digest.update(FORMAT.encode() + struct.pack("<q", iteration))
    for name in sorted(arrays):
        value = arrays[name]
        encoded = name.encode()
        digest.update(struct.pack("<Q", len(encoded)) + encoded)
        digest.update(struct.pack(f"<Q{value.ndim}q", value.ndim, *value.shape))
        digest.update(np.ascontiguousarray(value, dtype="<f8"))  # its buffer: no copy
    digest.update(struct.pack("<Q", len(meta_json)) + meta_json)
    return digest.hexdigest()


def validate_inputs(iteration, arrays, meta, keep):
    """Check :func:`save_checkpoint`'s arguments; ``(iteration, arrays, meta_json)`` with every array a
    float64 C-ordered copy (a snapshot: the caller may change its arrays afterwards)."""
    if isinstance(iteration, bool) or not isinstance(iteration, int | np.integer) or iteration < 0:
        raise ValueError(f"The 'iteration' parameter must be an int >= 0. Got {iteration!r} instead.")
    if iteration > MAX_ITERATION:
        raise ValueError(f"The 'iteration' parameter must be an int <= {MAX_ITERATION}. Got {iteration!r} "
                         "instead.")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise ValueError(f"The 'keep' parameter must be an int >= 1 or None. Got {keep!r} instead.")
    if not isinstance(meta, dict):
        raise ValueError(f"The 'meta' parameter must be a dict. Got {type(meta).__name__} instead.")
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str):
            raise ValueError(f"Checkpoint array names must be str. Got {name!r} instead.")
        value = np.asarray(value)
        if value.dtype.kind not in "fiub":
            raise ValueError(f"Checkpoint array {name!r} must be real numeric (stored as float64). "
                             f"Got dtype {value.dtype} instead.")
        if value.ndim > MAX_NDIM:
            raise ValueError(f"Checkpoint array {name!r} must have at most {MAX_NDIM} dimensions. Got "
                             f"{value.ndim} instead.")
        out[name] = np.array(value, dtype=np.float64, order="C")
    try:
        meta_json = _meta_json(meta)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"The 'meta' parameter must be JSON-serializable: {exc}") from exc
    if len(meta_json) > MAX_META_BYTES:
        raise ValueError(f"The 'meta' parameter must be at most {MAX_META_BYTES} bytes as JSON. Got "
                         f"{len(meta_json)} bytes instead.")
    return int(iteration), out, meta_json


def encode_checkpoint(iteration, arrays, meta_json):
    """Return the Parquet bytes of a checkpoint (validated inputs; see ``save_checkpoint``)."""
    names = sorted(arrays)
    sizes = [arrays[n].size for n in names]
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError(f"A checkpoint holds at most {np.iinfo(np.int32).max} values (Parquet list "
                         f"offsets). Got {int(offsets[-1])} instead.")
    flat = np.concatenate([arrays[n].reshape(-1) for n in names]) if names else np.zeros(0)
    table = pa.table({
        "name": pa.array(names, pa.string()),
        "shape": pa.array([list(arrays[n].shape) for n in names], pa.list_(pa.int64())),
        "values": pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat)),
    })
    table = table.replace_schema_metadata({
        _KEY_FORMAT: FORMAT.encode(),
        _KEY_VERSION: str(VERSION).encode(),
        _KEY_ITERATION: str(iteration).encode(),
        _KEY_META: meta_json,
        _KEY_SHA256: content_checksum(iteration, arrays, meta_json).encode(),
    })
    sink = io.BytesIO()
    pq.write_table(table, sink, use_dictionary=False, write_statistics=False, write_page_checksum=True)
    return sink.getvalue()


def check_loadable(directory, iteration, arrays, meta_json, validate):
    """Raise :class:`CheckpointError` (``"<uri>: not written: ..."``) when ``validate`` rejects the
    checkpoint that :func:`validate_inputs`' results would read back as; None: no check.

    A writer that passes the ``validate`` its readers pass to :func:`latest_checkpoint` never writes a
    checkpoint they would skip, so a reader never falls back to an older one because of what a run wrote.
    """
    if validate is None:
        return
    uri = join(str(directory), checkpoint_name(iteration))
    try:
        validate(Checkpoint(iteration, arrays, json.loads(meta_json), uri))
    except CheckpointError as exc:
        raise CheckpointError(uri, f"not written: it would not load back ({exc.reason})") from None


def save_checkpoint(directory, iteration, arrays, meta, *, keep=None, validate=None):
    """Write ``ckpt-<iteration>.parquet`` into ``directory`` atomically.

    Parameters
    ----------
    directory : str
        Checkpoint directory (local or ``hdfs://``); created if missing.
    iteration : int
        Iteration number >= 0; an existing checkpoint of the same iteration is replaced.
    arrays : dict of str to array_like
        Real numeric arrays of any shape, stored as float64 bit-exactly.
    meta : dict
        JSON-serializable; floats round-trip exactly.
    keep : int, optional
        After a successful write, keep it and the ``keep - 1`` newest checkpoints numbered below it, and
        delete the older ones. Files numbered above it are left alone (they are not this run's).
    validate : callable, optional
        As :func:`latest_checkpoint`'s: a checkpoint it rejects is not written (:func:`check_loadable`).

    Returns
    -------
    str
        The URI of the written file.
    """
    iteration, arrays, meta_json = validate_inputs(iteration, arrays, meta, keep)
    check_loadable(directory, iteration, arrays, meta_json, validate)
    return write_validated(directory, iteration, arrays, meta_json, keep)


def write_validated(directory, iteration, arrays, meta_json, keep):
    """Encode and write what :func:`validate_inputs` returned, then drop the checkpoints that ``keep``
    leaves out; the URI written. :class:`~mrtrain.storage.checkpoint_writer.CheckpointWriter` runs this in
    its thread."""
    uri = join(str(directory), checkpoint_name(iteration))
    fs = get_filesystem(uri)
    data = encode_checkpoint(iteration, arrays, meta_json)
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise ValueError(f"{uri}: the checkpoint would be {len(data)} bytes, more than the "
                         f"{MAX_CHECKPOINT_BYTES} read back (MAX_CHECKPOINT_BYTES); not written")
    fs.write_bytes(uri, data)
    logger.debug("wrote checkpoint %s", uri)
    if keep is not None:
        older = [found for found in list_checkpoints(directory) if found[0] < iteration]
        for old_iteration, old_uri in older[: max(len(older) - (keep - 1), 0)]:
            try:
                fs.delete(old_uri)
            except OSError as exc:
                logger.warning("could not delete old checkpoint %s: %s", old_uri, exc)
                continue
            logger.debug("deleted old checkpoint %s (iteration %d)", old_uri, old_iteration)
    return uri


def _metadata_value(metadata, key, uri):
    if key not in metadata:
        raise CheckpointError(uri, f"missing metadata key {key.decode()!r}; not an mrtrain "
                                   "checkpoint")
    try:
        return metadata[key].decode()
    except UnicodeDecodeError as exc:
        raise CheckpointError(uri, f"metadata {key.decode()!r} is not UTF-8") from exc


def _decode_header(metadata, uri):
    metadata = metadata or {}
    fmt = _metadata_value(metadata, _KEY_FORMAT, uri)
    if fmt != FORMAT:
        raise CheckpointError(uri, f"wrong format tag: expected {FORMAT!r}, found {fmt!r}")
    version = _metadata_value(metadata, _KEY_VERSION, uri)
    if version != str(VERSION):
        raise CheckpointError(uri, f"unsupported version: expected {VERSION}, found {version!r}")
    iteration_text = _metadata_value(metadata, _KEY_ITERATION, uri)
    if not re.fullmatch(r"[0-9]+", iteration_text):
        raise CheckpointError(uri, f"iteration: expected an int >= 0, found {iteration_text[:40]!r}")
    if len(iteration_text) > len(str(MAX_ITERATION)):
        raise CheckpointError(uri, f"iteration: expected an int <= {MAX_ITERATION}, found "
                                   f"{iteration_text[:40]!r}")
    if len(metadata.get(_KEY_META, b"")) > MAX_META_BYTES:
        raise CheckpointError(uri, f"meta: expected at most {MAX_META_BYTES} bytes of JSON, found "
                                   f"{len(metadata[_KEY_META])}")
    meta_text = _metadata_value(metadata, _KEY_META, uri)
    try:
        meta = json.loads(meta_text)
    except RecursionError as exc:
        raise CheckpointError(uri, "meta is not valid JSON: nested too deeply") from exc
    except ValueError as exc:
        raise CheckpointError(uri, f"meta is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(uri, f"meta: expected a JSON object, found {type(meta).__name__}")
    return int(iteration_text), meta, _metadata_value(metadata, _KEY_SHA256, uri)


def _decode_arrays(table, uri):
    for field in SCHEMA:
        if field.name not in table.column_names:
            raise CheckpointError(uri, f"missing column {field.name!r}; found {table.column_names}")
        found = table.schema.field(field.name).type
        same_list = (pa.types.is_list(found) and pa.types.is_list(field.type)
                     and found.value_type == field.type.value_type)
        if found != field.type and not same_list:
            raise CheckpointError(uri, f"column {field.name!r}: expected {field.type}, "
                                       f"found {found}")
    if table.num_columns != len(SCHEMA):
        raise CheckpointError(uri, f"expected columns {SCHEMA.names}, found {table.column_names}")
    columns = {f.name: table.column(f.name).combine_chunks() for f in SCHEMA}
    for name, column in columns.items():
        nulls = column.null_count + (column.values.null_count if name != "name" else 0)
        if nulls:
            raise CheckpointError(uri, f"column {name!r} has {nulls} null values")
    names = columns["name"].to_pylist()
    if len(set(names)) != len(names):
        raise CheckpointError(uri, f"duplicate array names in {names}")
    arrays = {}
    for i, name in enumerate(names):
        shape = tuple(int(s) for s in columns["shape"][i].values.to_numpy())
        values = columns["values"][i].values.to_numpy(zero_copy_only=False)
        if len(shape) > MAX_NDIM or any(s < 0 for s in shape) or math.prod(shape) != len(values):
            raise CheckpointError(uri, f"array {name!r}: shape {list(shape)[:MAX_NDIM + 1]} does not "
                                       f"match {len(values)} values")
        try:
            arrays[name] = np.array(values, dtype=np.float64).reshape(shape)
        except ValueError as exc:
            raise CheckpointError(uri, f"array {name!r}: shape {list(shape)}: {exc}") from exc
    return arrays


def decode_checkpoint(data, uri):
    """Decode and verify checkpoint bytes; see :func:`load_checkpoint`."""
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data), page_checksum_verification=True)
        metadata = parquet.metadata.metadata
        table = parquet.read(use_threads=False)
    except (pa.ArrowException, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(uri, f"not a readable Parquet file (truncated or corrupt?): "
                                   f"{reason}") from exc
    iteration, meta, expected = _decode_header(metadata, uri)
    match = NAME_PATTERN.fullmatch(basename(uri))
    if match and int(match.group(1)) != iteration:
        raise CheckpointError(uri, f"iteration: expected {int(match.group(1))} (as in the file name), "
                                   f"found {iteration}")
    arrays = _decode_arrays(table, uri)
    found = content_checksum(iteration, arrays, _meta_json(meta))
    if found != expected:
        raise CheckpointError(uri, f"content checksum mismatch: expected {expected}, "
                                   f"found {found}")
    return Checkpoint(iteration, arrays, meta, uri)


def load_checkpoint(uri):
    """Load and verify one checkpoint file.

    Parameters
    ----------
    uri : str
        A ``ckpt-*.parquet`` file (local or ``hdfs://``).

    Returns
    -------
    Checkpoint

    Raises
    ------
    CheckpointError
        Not a regular file, larger than :data:`MAX_CHECKPOINT_BYTES`, unreadable, truncated, wrong
        format, wrong schema, an iteration other than its name's or content checksum mismatch.
    FileNotFoundError
        If the file does not exist.
    """
    uri = str(uri)
    fs = get_filesystem(uri)
    try:
        size = fs.stat(uri).size
        if size > MAX_CHECKPOINT_BYTES:
            raise CheckpointError(uri, f"expected at most {MAX_CHECKPOINT_BYTES} bytes, found {size}")
        data = fs.read_bytes(uri, max_bytes=MAX_CHECKPOINT_BYTES)
    except _NOT_THE_FILES_FAULT:
        raise
    except IsADirectoryError as exc:
        raise CheckpointError(uri, "expected a regular file, found a directory") from exc
    except OSError as exc:
        reason = str(exc).removeprefix(f"{uri}: ") if exc.errno is None else exc.strerror
        raise CheckpointError(uri, reason) from exc
    return decode_checkpoint(data, uri)


def list_checkpoints(directory):
    """Return ``[(iteration, uri), ...]`` of the checkpoint files in ``directory``, sorted.

    A missing directory has no checkpoints.
    """
    directory = str(directory)
    fs = get_filesystem(directory)
    if not fs.isdir(directory):
        return []
    found = []
    for name in fs.listdir(directory):
        match = NAME_PATTERN.fullmatch(name)
        if match:
            found.append((int(match.group(1)), join(directory, name)))
    return sorted(found)


def remove_temporaries(directory):
    """Delete the temporary files that interrupted checkpoint writes left in ``directory``.

    Only safe while no other process writes checkpoints there (hold the directory's lock). Checkpoint
    loading never looks at these files, so they are harmless until removed.

    Returns
    -------
    list of str
        The URIs removed.
    """
    directory = str(directory)
    fs = get_filesystem(directory)
    if not fs.isdir(directory):
        return []
    removed = []
    for name in fs.listdir(directory):
        if TEMPORARY_PATTERN.fullmatch(name):
            uri = join(directory, name)
            fs.delete(uri)
            removed.append(uri)
    if removed:
        logger.info("removed %d temporary file(s) of interrupted checkpoint writes: %s", len(removed),
                    ", ".join(removed))
    return removed


def latest_checkpoint(directory, validate=None, *, quiet=False):
    """Return the newest valid checkpoint in ``directory``, or None if there is none.

    An invalid newer checkpoint is skipped with one warning naming the file and the reason; the last of
    these warnings also names the checkpoint returned instead, so that a reader never falls back to an older
    checkpoint without saying which.

    Parameters
    ----------
    directory : str
    validate : callable, optional
        ``validate(checkpoint)`` raises :class:`CheckpointError` if the loaded checkpoint's meta or arrays
        are not what the caller needs; such a checkpoint is skipped like a corrupt one.
    quiet : bool
        Skip without the warnings (a caller that only peeks at the newest checkpoint, before the reader
        that warns).
    """
    skipped = []
    for _, uri in reversed(list_checkpoints(directory)):
        try:
            checkpoint = load_checkpoint(uri)
            if validate is not None:
                validate(checkpoint)
        except CheckpointError as exc:
            skipped.append(f"skipping invalid checkpoint {exc.uri}: {exc.reason}")
            continue
        except FileNotFoundError:
            skipped.append(f"skipping checkpoint {uri}: deleted while reading")
            continue
        if not quiet:
            _warn_skipped(skipped, f"; using {checkpoint.uri} (iteration {checkpoint.iteration}) instead, "
                                   "the newest valid checkpoint")
        return checkpoint
    if not quiet:
        _warn_skipped(skipped, "")
    return None


def _warn_skipped(messages, last_suffix):
    for i, message in enumerate(messages):
        logger.warning("%s%s", message, last_suffix if i == len(messages) - 1 else "")
