"""A node-local cache of decoded partitions, keyed by the partition file's sha256 (loop-aware caching).

An iterative job reads every partition once per data pass. The first map task that reads a partition on a
node (from local disk or HDFS, checking its sha256 against the manifest and decoding the Parquet) also
writes the decoded arrays to this cache as plain ``.npy`` files; later passes on that node memory-map them
instead: no read over the network, no hashing, no Parquet decoding, and the pages are the kernel's page
cache, shared by every task on the node. This is HaLoop's idea of caching loop-invariant data where the
map tasks run.

Layout: ``<root>/v1-<boot id>/<sha256>/`` holding ``X.npy`` (``(n, d)``, float64 or float32 as stored),
``y.npy`` and, for weighted datasets, ``w.npy`` (both float64). An entry is written in a temporary
directory next to it and renamed into place, so a reader sees a whole entry or none. The files are not
fsync'ed (that took longer than the pass it served, on a disk-backed temp directory); instead the layout is
scoped by the kernel's boot id, so entries whose data might not have reached the disk before a crash are
never read after the reboot, and are removed by the next eviction. Where there is no boot id (not Linux)
every file is fsync'ed. The key is the
hash of the partition's bytes, which the manifest records and every pass already knows; an entry is the
deterministic decoding of exactly those bytes, so a hit gives bitwise the same arrays as a read. A
partition file changed after training started has another sha256 and is read afresh (and, its hash not
matching the manifest's, refused).

What is not detected: a bit flipped later in an entry on the node's own disk (as with Spark's cached
blocks). Disable the cache (``--no-partition-cache``) to hash every partition on every pass.

Where: ``$MRTRAIN_PARTITION_CACHE_DIR`` if set (the driver forwards it to the tasks), otherwise
``<system temp dir>/mrtrain-partition-cache-<uid>``. The root must belong to the task's user and not be
writable by others (an entry planted by another user would change results); otherwise the cache is not
used, with a warning. Size: at most ``$MRTRAIN_PARTITION_CACHE_MAX_BYTES`` bytes (default: a quarter of
the file system holding it), evicting the least recently used entries, and never filling the file system
past 90%. Any failure of the cache itself (full disk, a damaged entry) is logged and the task reads the
partition from storage as if there were no cache: the cache can make a pass faster, never fail it.
"""

import logging
import os
import shutil
import stat
import tempfile
import time
import uuid

import numpy as np

logger = logging.getLogger(__name__)

ROOT_ENV = "MRTRAIN_PARTITION_CACHE_DIR"
MAX_BYTES_ENV = "MRTRAIN_PARTITION_CACHE_MAX_BYTES"
LAYOUT = "v1"
_BOOT_ID = "/proc/sys/kernel/random/boot_id"
#: An insert never leaves less than this share of the cache's file system free.
MIN_FREE_SHARE = 0.10
#: Temporary entries older than this are left over from killed tasks and are removed on eviction.
STALE_TEMP_SECONDS = 3600
_TEMP_PREFIX = ".tmp-"
_ARRAYS = ("X", "y", "w")


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


def _fsync_path(path, flags=os.O_RDONLY):
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _entry_bytes(path):
    try:
        return sum(entry.stat().st_size for entry in os.scandir(path) if entry.is_file())
    except OSError:
        return 0


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
        self.entries = os.path.join(self.root, f"{LAYOUT}-{boot}" if boot else LAYOUT)
        self.usable = self._prepare()
        if max_bytes is None and os.environ.get(MAX_BYTES_ENV):
            max_bytes = int(os.environ[MAX_BYTES_ENV])
        if max_bytes is None and self.usable:
            usage = shutil.disk_usage(self.entries)
            max_bytes = usage.total // 4
        self.max_bytes = max_bytes

    def _prepare(self):
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            info = os.stat(self.root)
            if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                logger.warning(
                    "%s: partition cache not used: the directory must belong to uid %d and not be "
                    "writable by group or others (found uid %d, mode %o)",
                    self.root, os.getuid(), info.st_uid, stat.S_IMODE(info.st_mode),
                )
                return False
            os.makedirs(self.entries, mode=0o700, exist_ok=True)
            return True
        except OSError as error:
            logger.warning("%s: partition cache not used: %s", self.root, error)
            return False

    def _entry(self, sha256):
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"A partition cache key is a sha256 hex digest. Got {sha256!r}.")
        return os.path.join(self.entries, sha256)

    def get(self, sha256, n_features=None):
        """The cached ``(X, y, w)`` of the partition with this sha256, memory-mapped read-only, or None.

        ``w`` is None for unweighted partitions. A damaged entry is removed with a warning and counts as
        a miss.
        """
        if not self.usable:
            return None
        path = self._entry(sha256)
        if not os.path.isdir(path):
            return None
        try:
            X = np.load(os.path.join(path, "X.npy"), mmap_mode="r", allow_pickle=False)
            y = np.load(os.path.join(path, "y.npy"), mmap_mode="r", allow_pickle=False)
            w_path = os.path.join(path, "w.npy")
            w = np.load(w_path, mmap_mode="r", allow_pickle=False) if os.path.exists(w_path) else None
            n = len(y)
            ok = (
                X.ndim == 2 and X.dtype in (np.float64, np.float32) and X.shape[0] == n
                and (n_features is None or X.shape[1] == n_features)
                and y.dtype == np.float64 and y.ndim == 1
                and (w is None or (w.dtype == np.float64 and w.shape == (n,)))
            )
            if not ok:
                raise ValueError(f"arrays of unexpected shapes or types: X {X.dtype}{X.shape}, "
                                 f"y {y.dtype}{y.shape}, w {None if w is None else (w.dtype, w.shape)}")
        except (OSError, ValueError) as error:
            logger.warning("%s: damaged partition cache entry removed (%s)", path, error)
            shutil.rmtree(path, ignore_errors=True)
            return None
        try:
            os.utime(path)  # recency for the eviction order
        except OSError:
            pass
        return X, y, w

    def put(self, sha256, X, y, w=None):
        """Store a verified, decoded partition; return True if it is now cached.

        Empty partitions and partitions larger than the size limit are not cached. Never raises for a
        failure of the cache itself: it is logged and False returned.
        """
        if not self.usable or len(y) == 0:
            return False
        arrays = {"X": X, "y": y, "w": w}
        size = sum(np.asarray(a).nbytes for a in arrays.values() if a is not None)
        if size > self.max_bytes:
            logger.info("%s: partition %s (%d bytes) exceeds the cache limit of %d bytes; not cached",
                        self.root, sha256, size, self.max_bytes)
            return False
        path = self._entry(sha256)
        if os.path.isdir(path):
            return True
        temp = os.path.join(self.entries, f"{_TEMP_PREFIX}{uuid.uuid4().hex}")
        try:
            if not self._make_room(size):
                return False
            os.mkdir(temp, mode=0o700)
            for name in _ARRAYS:
                if arrays[name] is None:
                    continue
                with open(os.path.join(temp, f"{name}.npy"), "xb") as handle:
                    np.save(handle, np.ascontiguousarray(arrays[name]), allow_pickle=False)
                    if self.sync:
                        handle.flush()
                        os.fsync(handle.fileno())
            if self.sync:
                _fsync_path(temp)
            try:
                os.rename(temp, path)
            except OSError:
                if not os.path.isdir(path):  # not just another task caching the same partition first
                    raise
            if self.sync:
                _fsync_path(self.entries)
            return True
        except OSError as error:
            logger.warning("%s: could not cache partition %s: %s", self.root, sha256, error)
            return False
        finally:
            shutil.rmtree(temp, ignore_errors=True)

    def _make_room(self, size):
        """Evict least recently used entries until ``size`` more bytes fit; False if they cannot.

        Layouts of earlier boots (and other versions) are removed first.
        """
        for layout in os.scandir(self.root):
            if layout.is_dir() and layout.path != self.entries and layout.name.startswith("v"):
                shutil.rmtree(layout.path, ignore_errors=True)
        now = time.time()
        entries = []
        for entry in os.scandir(self.entries):
            try:
                mtime = entry.stat().st_mtime
            except OSError:
                continue
            if entry.name.startswith(_TEMP_PREFIX):
                if now - mtime > STALE_TEMP_SECONDS:
                    shutil.rmtree(entry.path, ignore_errors=True)
                continue
            entries.append((mtime, entry.path, _entry_bytes(entry.path)))
        entries.sort()
        total = sum(nbytes for _, _, nbytes in entries)
        usage = shutil.disk_usage(self.entries)
        must_free = max(total + size - self.max_bytes, size - (usage.free - MIN_FREE_SHARE * usage.total))
        for _, path, nbytes in entries:
            if must_free <= 0:
                break
            shutil.rmtree(path, ignore_errors=True)
            logger.info("%s: evicted partition cache entry %s (%d bytes)", self.root, path, nbytes)
            must_free -= nbytes
        if must_free > 0:
            logger.info("%s: no room for %d more bytes in the partition cache; not cached", self.root, size)
            return False
        return True
