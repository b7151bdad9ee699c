"""The base of the filesystems: URI helpers, :class:`FileStat`, :class:`FileSystem` and what its
implementations share (size caps, temporary sibling names).

The implementations, :mod:`mrtrain.storage.local_fs` and :mod:`mrtrain.storage.hdfs_fs`, build on this
module; :mod:`mrtrain.storage.filesystem` picks one for a URI
(:func:`~mrtrain.storage.filesystem.get_filesystem`) and re-exports these names. So the base knows no
implementation, and no implementation knows the dispatcher (as mrjob's ``fs/`` keeps them).
"""

import abc
import os
import posixpath
import uuid
from typing import NamedTuple
from urllib.parse import urlsplit

from mrtrain.storage.errors import DataError

SCHEMES = ("", "file", "hdfs")


def split_scheme(uri):
    """Return the scheme of ``uri``: ``""`` for a local path, else ``"file"`` or ``"hdfs"``.

    Raises
    ------
    ValueError
        If the scheme is not one of ``SCHEMES``.
    """
    uri = os.fspath(uri)
    if "://" not in uri:
        return ""
    scheme = urlsplit(uri).scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(
            f"{uri}: unsupported URI scheme {scheme!r}; expected a local path, file:// or hdfs://"
        )
    return scheme


def absolute(uri):
    """``uri`` made independent of the working directory: a relative local path is joined to the current
    one; absolute paths and URIs (``file://``, ``hdfs://``) are returned unchanged, as are None and a blank
    path (which their callers refuse).

    Every entry point (the CLI, :class:`mrtrain.Trainer`, the estimators, ingest, the report,
    :class:`mrtrain.FittedModel`) resolves its paths with this once, and so do the objects whose threads
    outlive a call (:class:`~mrtrain.storage.lock.DirectoryLock`'s lease, the
    :class:`~mrtrain.storage.checkpoint_writer.CheckpointWriter`): mrjob's inline runner changes the
    process's working directory while it runs a task, and a thread that used a relative path meanwhile
    would read and write inside the task's directory.

    ``.`` components and repeated slashes are dropped; ``..`` is kept as given (through a symbolic link it
    does not mean the lexical parent).
    """
    if not isinstance(uri, str | os.PathLike):
        return uri
    uri = os.fspath(uri)
    if not uri.strip() or "://" in uri or os.path.isabs(uri):
        return uri
    path = os.path.join(os.getcwd(), uri)
    return path if ".." in path.split(os.sep) else os.path.normpath(path)


def join(uri, *names):
    """Join ``names`` onto the directory ``uri`` (local path or URI) with ``/``."""
    uri = os.fspath(uri)
    if split_scheme(uri) == "":
        return os.path.join(uri, *names)
    return posixpath.join(uri, *names)


def parent(uri):
    """Return the parent directory of ``uri`` (local path or URI)."""
    uri = os.fspath(uri).rstrip("/")
    if split_scheme(uri) == "":
        return os.path.dirname(uri) or "."
    return posixpath.dirname(uri)


def basename(uri):
    """Return the last component of ``uri`` (local path or URI)."""
    return posixpath.basename(os.fspath(uri).rstrip("/"))


class FileStat(NamedTuple):
    """What a filesystem says of one regular file; any rewrite or replacement of the file changes it.

    Attributes
    ----------
    size : int
        Bytes.
    mtime_ns : int
        Last modification, in nanoseconds since the epoch (HDFS keeps milliseconds).
    change_ns : int
        Last change of the file or its metadata, which ``touch -d`` cannot set back (local ``st_ctime``);
        on HDFS, which has none, the modification time again.
    """

    size: int
    mtime_ns: int
    change_ns: int


class FileTooLargeError(DataError, OSError):
    """A file larger than the ``max_bytes`` its reader allows; both a :class:`DataError` and an OSError.

    The message is one line naming the file, the allowed and the found size.
    """


def check_max_bytes(max_bytes):
    """Validate the ``max_bytes`` argument of :meth:`FileSystem.read_bytes` (None or an int >= 0)."""
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int)
                                  or max_bytes < 0):
        raise ValueError("The 'max_bytes' parameter of read_bytes must be an int >= 0 or None. "
                         f"Got {max_bytes!r} instead.")


def too_large(uri, max_bytes, found):
    """Return the :class:`FileTooLargeError` for ``uri`` holding ``found`` bytes (an int or a phrase)."""
    return FileTooLargeError(f"{uri}: expected a file of at most {max_bytes} bytes, found {found} bytes")


def temp_sibling(uri):
    """Return a hidden, unique name next to ``uri`` for writing before an atomic rename."""
    return join(parent(uri), f".{basename(uri)}.tmp-{uuid.uuid4().hex[:12]}")


class FileSystem(abc.ABC):
    """Operations on one kind of storage; every method takes a full URI or local path."""

    @abc.abstractmethod
    def read_bytes(self, uri, max_bytes=None):
        """Return the whole content of the regular file ``uri``.

        Parameters
        ----------
        uri : str
        max_bytes : int, optional
            Refuse a file larger than this many bytes without reading it (nor reading more than
            ``max_bytes + 1`` bytes of a file that grows meanwhile).

        Raises
        ------
        FileNotFoundError
            If ``uri`` is missing.
        IsADirectoryError
            If ``uri`` is a directory.
        OSError
            If ``uri`` is not a regular file (a FIFO, a device), which is never opened for reading.
        FileTooLargeError
            If the file holds more than ``max_bytes`` bytes.
        """

    @abc.abstractmethod
    def write_bytes(self, uri, data):
        """Write ``data`` to ``uri`` atomically (temporary sibling, then rename).

        Parent directories are created; an existing file at ``uri`` is replaced.
        """

    @abc.abstractmethod
    def create_exclusive(self, uri, data):
        """Create the file ``uri`` holding ``data``; FileExistsError if anything exists at ``uri``.

        Of several concurrent callers exactly one succeeds (a lock file's guarantee). Parent directories
        must exist.
        """

    @abc.abstractmethod
    def exists(self, uri):
        """Return True if a file or directory exists at ``uri``."""

    @abc.abstractmethod
    def isdir(self, uri):
        """Return True if ``uri`` is an existing directory."""

    @abc.abstractmethod
    def listdir(self, uri):
        """Return the sorted names in directory ``uri``; FileNotFoundError if it is missing."""

    @abc.abstractmethod
    def makedirs(self, uri):
        """Create directory ``uri`` and its parents; no error if it exists."""

    @abc.abstractmethod
    def delete(self, uri, recursive=False):
        """Delete the file or directory ``uri``; a non-empty directory needs ``recursive``.

        FileNotFoundError if nothing exists at ``uri``.
        """

    @abc.abstractmethod
    def rename(self, src, dst):
        """Rename ``src`` to ``dst``; FileExistsError if ``dst`` exists.

        The rename is atomic where the filesystem offers it (local POSIX and HDFS).
        """

    @abc.abstractmethod
    def stat(self, uri):
        """Return the :class:`FileStat` of the regular file ``uri``.

        FileNotFoundError if it is missing, IsADirectoryError for a directory, OSError for anything else
        that is not a regular file (a FIFO, a device).
        """

    @abc.abstractmethod
    def touch(self, uri):
        """Set the modification time of the existing file ``uri`` to now (this host's clock).

        FileNotFoundError if it is missing. Content and identity are unchanged: a lock holder renews its
        lease this way (:mod:`mrtrain.storage.lock`).
        """

    def size(self, uri):
        """Return the size in bytes of the regular file ``uri`` (see :meth:`stat`)."""
        return self.stat(uri).size
