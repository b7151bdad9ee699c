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
           "check_max_bytes", "get_filesystem", "join", "parent", "split_scheme", "temp_sibling", "too_large",
           "write_new_file"]


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


def write_new_file(uri, build, what):
    """Write the bytes ``build()`` returns to the new file ``uri``, complete or not at all, never replacing.

    ``build`` is called only when nothing is at ``uri``; the file is then created exclusively (HDFS: without
    overwrite, after its parent directories), so one that appeared while ``build`` ran, say another command
    writing the same path, is left as it is.

    Parameters
    ----------
    uri : str
        A local path or URI.
    build : callable
        Returns the bytes to write.
    what : str
        What ``build`` makes, for the message (``"the report"``).

    Returns
    -------
    str
        The absolute ``uri`` written.

    Raises
    ------
    FileExistsError
        One line naming ``uri``: it exists, or it appeared while ``build`` ran.
    """
    uri = absolute(uri)
    fs = get_filesystem(uri)
    if fs.exists(uri):
        raise FileExistsError(f"{uri}: destination already exists; choose a new path or delete it")
    data = build()
    fs.makedirs(parent(uri))
    try:
        fs.create_exclusive(uri, data)
    except FileExistsError:
        raise FileExistsError(f"{uri}: destination already exists (it appeared while {what} was built); "
                              "nothing was overwritten: choose a new path or delete it") from None
    return uri
