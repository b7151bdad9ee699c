"""One small filesystem interface over local paths, ``file://`` and ``hdfs://`` URIs.

``get_filesystem(uri)`` returns the filesystem that serves ``uri``; every method takes the full
URI (or local path) again, so callers can pass URIs around as plain strings. Writes are atomic:
the bytes go to a temporary sibling name that is then renamed into place. Reads take only regular
files (never a FIFO or a device, which could block or never end) and can be capped in size
(``read_bytes(uri, max_bytes=...)``), so a hostile path cannot make a reader hang or fill memory.

This module is the dispatcher: :func:`get_filesystem` imports the implementation a URI needs (the HDFS one
only for ``hdfs://``, so a local task never loads the WebHDFS client). The interface and the URI helpers
live in :mod:`mrtrain.storage.base_fs`, re-exported here.
"""

from mrtrain.storage.base_fs import (
    SCHEMES,
    FileStat,
    FileSystem,
    FileTooLargeError,
    absolute,
    basename,
    check_max_bytes,
    join,
    parent,
    split_scheme,
    temp_sibling,
    too_large,
)

__all__ = ["SCHEMES", "FileStat", "FileSystem", "FileTooLargeError", "absolute", "basename",
           "check_max_bytes", "get_filesystem", "join", "parent", "split_scheme", "temp_sibling", "too_large"]


def get_filesystem(uri):
    """Return the :class:`FileSystem` serving ``uri``.

    Parameters
    ----------
    uri : str or os.PathLike
        A local path, a ``file://`` URI or an ``hdfs://host:port/path`` URI.

    Returns
    -------
    FileSystem
    """
    scheme = split_scheme(uri)
    if scheme == "hdfs":
        from mrtrain.storage.hdfs_fs import hdfs_filesystem

        return hdfs_filesystem(uri)
    from mrtrain.storage.local_fs import LOCAL

    return LOCAL
