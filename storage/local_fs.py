"""The local filesystem behind plain paths and ``file://`` URIs.

Reads look at a path before opening it and open it non-blocking, so a FIFO or a device is refused
(naming what it is) rather than read: a FIFO's open would block until a writer came, ``/dev/zero``
would never end.
"""

import errno
import logging
import os
import shutil
import stat
from urllib.parse import unquote, urlsplit

from mrtrain.storage.base_fs import FileStat, FileSystem, check_max_bytes, temp_sibling, too_large

logger = logging.getLogger(__name__)


def local_path(uri):
    """Return the local path of a plain path or ``file://`` URI."""
    uri = os.fspath(uri)
    if uri.startswith("file://"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(
                f"{uri}: file:// URIs must name a local path (file:///path); "
                f"found host {parts.netloc!r}"
            )
        return unquote(parts.path)
    if "://" in uri:
        raise ValueError(f"{uri}: not a local path or file:// URI")
    return uri


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_regular(path, mode):
    """Raise IsADirectoryError or OSError unless ``mode`` is that of a regular file."""
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "a file was expected, found a directory", path)
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "a special file")
        raise OSError(f"{path}: expected a regular file, found {kind}")


def _fsync_directory(path):
    """Make a rename or new name in directory ``path`` durable (POSIX; a no-op where unsupported)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        logger.debug("%s: directory fsync not supported", path)
    finally:
        os.close(descriptor)


def _write_synced(path, data, target):
    """Create the new file ``path`` (it must not exist) holding ``data``, flushed to disk.

    An error of the write or the flush (a full disk: ``ENOSPC``, a quota: ``EDQUOT``), which Python
    raises without a file name, is raised again naming ``target``, the file being written.
    """
    try:
        with open(path, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        if error.filename is not None or error.errno is None:
            raise
        raise type(error)(error.errno, f"{error.strerror} (writing {len(data)} bytes)", target) from None


class LocalFileSystem(FileSystem):
    """Local disk; atomic writes by ``os.replace`` of a fsync'ed temporary sibling."""

    def read_bytes(self, uri, max_bytes=None):
        check_max_bytes(max_bytes)
        path, name = local_path(uri), os.fspath(uri)
        _check_regular(name, os.stat(path).st_mode)
        # O_NONBLOCK: should a FIFO replace the file after the stat, opening it still cannot block.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            status = os.fstat(f.fileno())
            _check_regular(name, status.st_mode)
            if max_bytes is None:
                return f.read()
            if status.st_size > max_bytes:
                raise too_large(name, max_bytes, status.st_size)
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise too_large(name, max_bytes, f"more than {max_bytes} (it grew while read)")
        return data

    def write_bytes(self, uri, data):
        path = local_path(uri)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        tmp = temp_sibling(path)
        try:
            _write_synced(tmp, data, os.fspath(uri))
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        _fsync_directory(directory or ".")

    def create_exclusive(self, uri, data):
        """Write a fsync'ed temporary sibling, then hard-link it to ``uri``.

        ``link`` fails if ``uri`` exists, so the file appears exclusively and already complete: a crash
        never leaves a half-written ``uri``, at worst a temporary sibling.
        """
        path = local_path(uri)
        tmp = temp_sibling(path)
        try:
            _write_synced(tmp, data, os.fspath(uri))
            os.link(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _fsync_directory(os.path.dirname(path) or ".")

    def exists(self, uri):
        return os.path.exists(local_path(uri))

    def isdir(self, uri):
        return os.path.isdir(local_path(uri))

    def listdir(self, uri):
        return sorted(os.listdir(local_path(uri)))

    def makedirs(self, uri):
        os.makedirs(local_path(uri), exist_ok=True)

    def delete(self, uri, recursive=False):
        path = local_path(uri)
        if os.path.isdir(path) and not os.path.islink(path):
            if recursive:
                shutil.rmtree(path)
            else:
                os.rmdir(path)
        else:
            os.unlink(path)

    def rename(self, src, dst):
        src_path, dst_path = local_path(src), local_path(dst)
        if not os.path.lexists(src_path):
            raise FileNotFoundError(errno.ENOENT, "rename source does not exist", src_path)
        if os.path.lexists(dst_path):
            raise FileExistsError(errno.EEXIST, "rename destination already exists", dst_path)
        os.rename(src_path, dst_path)

    def stat(self, uri):
        path = local_path(uri)
        status = os.stat(path)
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError(errno.EISDIR, "a file was expected, found a directory", path)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "a regular file was expected, found a special file", path)
        return FileStat(status.st_size, status.st_mtime_ns, status.st_ctime_ns)

    def touch(self, uri):
        os.utime(local_path(uri))


LOCAL = LocalFileSystem()
