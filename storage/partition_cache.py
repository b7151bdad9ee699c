"""A node-local cache of decoded partitions, keyed by the partition file's sha256 (loop-aware caching).

An iterative job reads every partition once per data pass. The first map task that reads a partition on a
node (from local disk or HDFS, checking its sha256 against the manifest and decoding the Parquet) also
writes the decoded arrays to this cache; later passes on that node memory-map them instead: no read over
the network, no hashing, no Parquet decoding, and the pages are the kernel's page cache, shared by every
task on the node. This is HaLoop's idea of caching loop-invariant data where the map tasks run.

Layout: ``<root>/mrtrain-cache-v2-<boot id>/<sha256>-<uri hash>.part``, one file per partition file: a
4096-byte JSON header (format, version, the partition file's URI and
:class:`mrtrain.storage.filesystem.FileStat` — size, modification and change time — taken before it was
read, and dtype, shape and offset of each array: ``X`` — ``(n, d)``, float64 or float32 as stored — or, for
a sparse partition, the three arrays of its CSR matrix (``X_data``, ``X_indices``, ``X_indptr``, with the
matrix's shape), then ``y`` and, for weighted partitions, ``w``), then the arrays' raw bytes at 64-byte-
aligned offsets. An entry is written to a temporary file and renamed into place, so a
reader sees a whole entry or none, and once opened it stays whole even if another task evicts it. The files
are not fsync'ed (that took longer than the pass it served, on a disk-backed temp directory); instead the
layout is scoped by the kernel's boot id, so entries whose data might not have reached the disk before a
crash are never read after the reboot, and are removed by the next eviction. Where there is no boot id (not
Linux) every file is fsync'ed.

A hit must prove that the partition file is still the one that was cached: the task stats the file (one
``stat`` locally, one WebHDFS ``GETFILESTATUS`` on HDFS) and the entry is used only if the URI, the
manifest's sha256 and the stat all match what was recorded. A file emptied, rewritten or replaced since then
is a miss, so it is read afresh and, its hash no longer matching the manifest's, refused exactly as without
the cache. The entry is the deterministic decoding of exactly the bytes that had that hash, so a hit gives
bitwise the same arrays as a read.

What is not detected: a bit flipped later in an entry on the node's own disk (as with Spark's cached
blocks). Disable the cache (``--no-partition-cache``) to hash every partition on every pass.

Where: ``$MRTRAIN_PARTITION_CACHE_DIR`` if set (the driver forwards it to the tasks), otherwise
``<system temp dir>/mrtrain-partition-cache-<uid>``. The root must be a directory (not a symlink) that
belongs to the task's user and is not writable by others (an entry planted by another user would change
results); otherwise the cache is not used, with a warning. Only names starting with ``mrtrain-cache-`` in
the root are ever written or removed. Size: at most ``$MRTRAIN_PARTITION_CACHE_MAX_BYTES`` bytes (default:
a quarter of the file system holding it), never filling the file system past 80% (YARN marks a node's disk
unhealthy at 90%). Eviction removes the least recently used entries, but never one used in the last
:data:`PROTECT_SECONDS`: when a training's partitions do not all fit, the ones cached first stay cached
rather than every pass evicting the partition the next task needs. Any failure of the cache itself (full
disk, a damaged entry, a bad setting) is logged and the task reads the partition from storage as if there
were no cache: the cache can make a pass faster, never fail it.
"""

import hashlib
import json
import logging
import mmap
import os
import re
import stat
import tempfile
import time
import uuid

import numpy as np

logger = logging.getLogger(__name__)

ROOT_ENV = "MRTRAIN_PARTITION_CACHE_DIR"
MAX_BYTES_ENV = "MRTRAIN_PARTITION_CACHE_MAX_BYTES"
FORMAT = "mrtrain-partition-cache"
VERSION = 2
LAYOUT_PREFIX = "mrtrain-cache-"
_LAYOUT_NAME = re.compile(r"^mrtrain-cache-v\d+(-[0-9a-f-]+)?$")
_BOOT_ID = "/proc/sys/kernel/random/boot_id"
HEADER_BYTES = 4096
_ALIGN = 64
SUFFIX = ".part"
#: An insert never leaves less than this share of the cache's file system free.
MIN_FREE_SHARE = 0.20
#: Entries used this recently are never evicted.
PROTECT_SECONDS = 600
#: Temporary files older than this are left over from killed tasks and are removed on eviction.
STALE_TEMP_SECONDS = 3600
_TEMP_PREFIX = ".tmp-"
_ARRAYS = ("X", "X_data", "X_indices", "X_indptr", "y", "w")


def default_root():
    """``$MRTRAIN_PARTITION_CACHE_DIR``, else ``<temp dir>/mrtrain-partition-cache-<uid>``."""
    return os.environ.get(ROOT_ENV) or os.path.join(
        tempfile.gettempdir(), f"mrtrain-partition-cache-{os.getuid()}"
    )


def boot_id():
    """The kernel's boot id (changes at every boot), or None where there is none."""
    try:
        with open(_BOOT_ID, encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _fsync_directory(path):
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _source_record(uri, file_stat):
    """The header's record of the partition file an entry was decoded from."""
    return {"uri": str(uri), "stat": [int(value) for value in file_stat]}


def _layout(arrays, source):
    """Header dict and total file size for ``{"X": ..., "y": ..., "w": ... or None}`` read from ``source``."""
    offset, entries = HEADER_BYTES, {}
    for name in _ARRAYS:
        array = arrays.get(name)
        if array is None:
            continue
        entries[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset}
        offset += -(-array.nbytes // _ALIGN) * _ALIGN
    header = {"format": FORMAT, "version": VERSION, "source": source, "rows": len(arrays["y"]),
              "arrays": entries}
    if arrays.get("X_data") is not None:
        header["sparse_shape"] = [int(n) for n in arrays["sparse_shape"]]
    return header, offset


class PartitionCache:
    """The decoded-partition cache of one node (see the module docstring).

    Parameters
    ----------
    root : str, optional
        Cache directory; :func:`default_root` by default. Created (mode 0700) if missing.
    max_bytes : int, optional
        Size limit; ``$MRTRAIN_PARTITION_CACHE_MAX_BYTES`` or a quarter of the file system by default.
    """

    def __init__(self, root=None, max_bytes=None):
        self.root = root or default_root()
        boot = boot_id()
        self.sync = boot is None
        self.entries = os.path.join(self.root, f"{LAYOUT_PREFIX}v{VERSION}" + (f"-{boot}" if boot else ""))
        self.max_bytes = max_bytes
        try:
            self.usable = self._prepare()
            if self.usable and self.max_bytes is None:
                setting = os.environ.get(MAX_BYTES_ENV)
                usage = os.statvfs(self.entries)
                self.max_bytes = int(setting) if setting else usage.f_blocks * usage.f_frsize // 4
        except (OSError, ValueError) as error:
            logger.warning("%s: partition cache not used: %s", self.root, error)
            self.usable = False

    def _prepare(self):
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        info = os.lstat(self.root)
        if not stat.S_ISDIR(info.st_mode):
            logger.warning("%s: partition cache not used: not a directory (a symlink?)", self.root)
            return False
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            logger.warning(
                "%s: partition cache not used: the directory must belong to uid %d and not be "
                "writable by group or others (found uid %d, mode %o)",
                self.root, os.getuid(), info.st_uid, stat.S_IMODE(info.st_mode),
            )
            return False
        os.makedirs(self.entries, mode=0o700, exist_ok=True)
        return True

    def _entry(self, sha256, uri):
        if not (isinstance(sha256, str) and re.fullmatch(r"[0-9a-f]{64}", sha256)):
            raise ValueError(f"A partition cache key is a sha256 hex digest. Got {sha256!r}.")
        uri_hash = hashlib.sha256(str(uri).encode("utf-8")).hexdigest()[:16]
        return os.path.join(self.entries, f"{sha256}-{uri_hash}{SUFFIX}")

    def get(self, sha256, uri, file_stat, n_features=None):
        """The cached ``(X, y, w)`` of a partition file, memory-mapped read-only, or None.

        Parameters
        ----------
        sha256 : str
            The partition's hash in the manifest.
        uri : str
            The partition file.
        file_stat : mrtrain.storage.filesystem.FileStat
            The file's stat now; an entry recorded with another stat (the file changed) is a miss.
        n_features : int, optional
            Expected width of ``X``.

        ``w`` is None for unweighted partitions. A damaged entry is removed with a warning and counts as
        a miss; so is an entry of a file that changed since it was cached.
        """
        if not self.usable:
            return None
        try:
            path = self._entry(sha256, uri)
            handle = open(path, "rb")
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            logger.warning("%s: partition cache entry not readable (%s)", sha256, error)
            return None
        try:
            with handle:
                arrays = self._map(handle, n_features, _source_record(uri, file_stat))
        except _SourceChanged as change:
            logger.info("%s: partition file changed since it was cached (%s); reading it again", uri, change)
            self._remove(path)
            return None
        except Exception as error:  # noqa: BLE001 - any damage is a miss, never a failed task
            logger.warning("%s: damaged partition cache entry removed (%s)", path, error)
            self._remove(path)
            return None
        try:
            os.utime(path)  # recency for the eviction order
        except OSError:
            pass
        return arrays

    def _map(self, handle, n_features, source):
        header = json.loads(handle.read(HEADER_BYTES).decode("ascii"))
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise ValueError(f"not a version-{VERSION} {FORMAT} file")
        if header.get("source") != source:
            raise _SourceChanged(f"cached from {header.get('source')}, now {source}")
        size = os.fstat(handle.fileno()).st_size
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        n = header["rows"]
        arrays = {}
        for name, spec in header["arrays"].items():
            if name not in _ARRAYS:
                raise ValueError(f"unknown array {name!r}")
            dtype, shape, offset = np.dtype(spec["dtype"]), tuple(spec["shape"]), spec["offset"]
            if dtype.hasobject or offset % _ALIGN or offset < HEADER_BYTES:
                raise ValueError(f"array {name!r}: bad dtype or offset")
            count = int(np.prod(shape))
            if offset + count * dtype.itemsize > size:
                raise ValueError(f"array {name!r} runs past the end of the file ({size} bytes)")
            arrays[name] = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)
        if "sparse_shape" in header:
            arrays["X"] = _csr_from_entry(arrays, header["sparse_shape"])
        X, y, w = arrays.get("X"), arrays.get("y"), arrays.get("w")
        ok = (
            X is not None and y is not None and X.ndim == 2 and X.shape[0] == n
            and X.dtype in (np.float64, np.float32) and (n_features is None or X.shape[1] == n_features)
            and y.dtype == np.float64 and y.shape == (n,)
            and (w is None or (w.dtype == np.float64 and w.shape == (n,)))
        )
        if not ok:
            raise ValueError("arrays of unexpected shapes or types: " + json.dumps(header["arrays"]))
        return X, y, w

    def _remove(self, path):
        try:
            os.remove(path)
        except OSError:
            pass

    def put(self, sha256, uri, file_stat, X, y, w=None):
        """Store a verified, decoded partition; return True if it is now cached.

        ``uri`` and ``file_stat`` name the partition file and its stat taken *before* it was read (see
        :meth:`get`), so a file changed while it was being read is never served from the cache.

        Empty partitions and partitions that do not fit are not cached. Never raises for a failure of the
        cache itself: it is logged and False returned.
        """
        if not self.usable or len(y) == 0:
            return False
        temp = os.path.join(self.entries, f"{_TEMP_PREFIX}{uuid.uuid4().hex}")
        try:
            path = self._entry(sha256, uri)
            arrays = {"y": np.ascontiguousarray(y, dtype=np.float64),
                      "w": None if w is None else np.ascontiguousarray(w, dtype=np.float64)}
            if hasattr(X, "indptr"):  # CSR: its three arrays, never densified
                arrays.update(X_data=np.ascontiguousarray(X.data), X_indices=np.ascontiguousarray(X.indices),
                              X_indptr=np.ascontiguousarray(X.indptr), sparse_shape=X.shape)
            else:
                arrays["X"] = np.ascontiguousarray(X)
            header, size = _layout(arrays, _source_record(uri, file_stat))
            if not self._make_room(size):
                return False
            encoded = json.dumps(header).encode("ascii")
            if len(encoded) >= HEADER_BYTES:
                raise ValueError(f"the entry's header needs {len(encoded)} bytes, more than {HEADER_BYTES}")
            with open(temp, "xb") as handle:
                handle.write(encoded + b" " * (HEADER_BYTES - len(encoded) - 1) + b"\n")
                for name, spec in header["arrays"].items():
                    handle.seek(spec["offset"])
                    handle.write(memoryview(arrays[name]).cast("B"))
                handle.truncate(size)
                if self.sync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temp, path)
            if self.sync:
                _fsync_directory(self.entries)
            return True
        except (OSError, ValueError) as error:
            logger.warning("%s: could not cache partition %s: %s", self.root, sha256, error)
            return False
        finally:
            self._remove(temp)

    def _make_room(self, size):
        """Evict least recently used entries until ``size`` more bytes fit; False (evicting nothing) if
        they cannot fit without evicting entries used in the last :data:`PROTECT_SECONDS`.

        Layouts of earlier boots and versions are removed first.
        """
        for layout in os.scandir(self.root):
            if _LAYOUT_NAME.match(layout.name) and layout.path != self.entries:
                _remove_tree(layout.path)
        now = time.time()
        entries = []
        for entry in os.scandir(self.entries):
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.name.startswith(_TEMP_PREFIX):
                if now - info.st_mtime > STALE_TEMP_SECONDS:
                    self._remove(entry.path)
            elif entry.name.endswith(SUFFIX):
                entries.append((info.st_mtime, entry.path, info.st_size))
        entries.sort()
        usage = os.statvfs(self.entries)
        free, total = usage.f_bavail * usage.f_frsize, usage.f_blocks * usage.f_frsize
        must_free = max(sum(nbytes for _, _, nbytes in entries) + size - self.max_bytes,
                        size - (free - MIN_FREE_SHARE * total))
        evictable = [(path, nbytes) for mtime, path, nbytes in entries if now - mtime > PROTECT_SECONDS]
        if must_free > sum(nbytes for _, nbytes in evictable):
            logger.info("%s: no room for %d more bytes in the partition cache; not cached", self.root, size)
            return False
        for path, nbytes in evictable:
            if must_free <= 0:
                break
            self._remove(path)
            logger.info("%s: evicted partition cache entry %s (%d bytes)", self.root, path, nbytes)
            must_free -= nbytes
        return True


def _csr_from_entry(arrays, shape):
    """The CSR matrix of an entry's ``X_data``, ``X_indices``, ``X_indptr`` (memory-mapped, not copied)."""
    from scipy.sparse import csr_array  # only sparse partitions need scipy

    n, d = (int(value) for value in shape)
    data, indices, indptr = arrays["X_data"], arrays["X_indices"], arrays["X_indptr"]
    if not (indptr.shape == (n + 1,) and data.shape == indices.shape == (int(indptr[-1]),)
            and indices.dtype.kind == "i" and indptr.dtype.kind == "i"):
        raise ValueError(f"sparse arrays of unexpected shapes for {n} x {d}")
    return csr_array((data, indices, indptr), shape=(n, d), copy=False)


class _SourceChanged(Exception):
    """The partition file is not the one an entry was decoded from."""


def _remove_tree(path):
    """Remove a cache layout directory of another boot or version (its entries are plain files)."""
    try:
        for entry in os.scandir(path):
            os.remove(entry.path)
        os.rmdir(path)
    except OSError as error:
        logger.info("%s: could not remove an old partition cache layout: %s", path, error)
