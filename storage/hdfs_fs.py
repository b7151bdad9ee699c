"""HDFS through WebHDFS (the ``hdfs`` package's ``InsecureClient``).

The WebHDFS URL comes from ``MRTRAIN_WEBHDFS_URL`` (e.g. ``http://127.0.0.1:9870``), else from
``dfs.namenode.http-address`` in ``$HADOOP_CONF_DIR/hdfs-site.xml``; the user from
``MRTRAIN_HDFS_USER``, else ``HADOOP_USER_NAME``, else the login name. The host and port of an
``hdfs://host:port/path`` URI name the NameNode's RPC address and are not used for WebHDFS; only
the path is.

Transient connection errors are retried ``ATTEMPTS`` times with exponential backoff, then raised
as ``ConnectionError`` naming the URI. A missing path raises ``FileNotFoundError`` naming it.
Reads ask for the path's status first, so a directory or an over-long file is refused unread.

Each thread gets its own WebHDFS client (and with it its own ``requests.Session``, which is not safe to
share between threads): the checkpoint writer's thread and the lock's lease thread use HDFS while the main
thread does.

The ``hdfs`` package and ``requests`` are imported on first use, not with this module: the driver modules
import its path helpers for every run, and a run that never touches HDFS need not pay for them (about
0.2 s of every local command).
"""

import errno
import getpass
import logging
import os
import threading
import time
import xml.etree.ElementTree as ET
from functools import partial
from urllib.parse import unquote, urlsplit

from mrtrain.storage.base_fs import FileStat, FileSystem, check_max_bytes, temp_sibling, too_large

logger = logging.getLogger(__name__)

ATTEMPTS = 4
BACKOFF_SECONDS = 0.5
TIMEOUT_SECONDS = 60

_filesystems = {}
_lock = threading.Lock()


def hdfs_path(uri):
    """Return the absolute HDFS path of an ``hdfs://`` URI (``/`` if it has none)."""
    parts = urlsplit(os.fspath(uri))
    if parts.scheme.lower() != "hdfs":
        raise ValueError(f"{uri}: expected an hdfs:// URI; found scheme {parts.scheme!r}")
    return unquote(parts.path) or "/"


def hadoop_conf_dir():
    """Return ``$HADOOP_CONF_DIR``, else ``$HADOOP_HOME/etc/hadoop``, else None."""
    if os.environ.get("HADOOP_CONF_DIR"):
        return os.environ["HADOOP_CONF_DIR"]
    if os.environ.get("HADOOP_HOME"):
        return os.path.join(os.environ["HADOOP_HOME"], "etc", "hadoop")
    return None


def _http_address_from_conf(conf_dir):
    site = os.path.join(conf_dir, "hdfs-site.xml")
    if not os.path.exists(site):
        return None
    try:
        root = ET.parse(site).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{site}: not valid XML: {exc}") from exc
    for prop in root.iter("property"):
        if (prop.findtext("name") or "").strip() == "dfs.namenode.http-address":
            return (prop.findtext("value") or "").strip() or None
    return None


def webhdfs_url(uri=None):
    """Return the WebHDFS base URL, e.g. ``http://127.0.0.1:9870``.

    Parameters
    ----------
    uri : str, optional
        The ``hdfs://`` URI being accessed; its host replaces a wildcard ``0.0.0.0`` in
        ``dfs.namenode.http-address``.

    Raises
    ------
    ValueError
        If neither ``MRTRAIN_WEBHDFS_URL`` nor ``dfs.namenode.http-address`` is set.
    """
    url = os.environ.get("MRTRAIN_WEBHDFS_URL")
    if url:
        return url.rstrip("/")
    conf_dir = hadoop_conf_dir()
    address = _http_address_from_conf(conf_dir) if conf_dir else None
    if not address:
        raise ValueError(
            "no WebHDFS URL configured: set MRTRAIN_WEBHDFS_URL (e.g. http://127.0.0.1:9870) or "
            "dfs.namenode.http-address in $HADOOP_CONF_DIR/hdfs-site.xml; "
            f"HADOOP_CONF_DIR is {conf_dir!r}"
        )
    host, _, port = address.rpartition(":")
    if host in ("", "0.0.0.0"):
        host = (urlsplit(uri).hostname if uri else None) or "127.0.0.1"
    return f"http://{host}:{port}"


def hdfs_user():
    """Return the HDFS user: ``MRTRAIN_HDFS_USER``, else ``HADOOP_USER_NAME``, else login name."""
    return (
        os.environ.get("MRTRAIN_HDFS_USER")
        or os.environ.get("HADOOP_USER_NAME")
        or getpass.getuser()
    )


def hdfs_filesystem(uri=None):
    """Return the cached :class:`HdfsFileSystem` for the configured (WebHDFS URL, user)."""
    key = (webhdfs_url(uri), hdfs_user())
    with _lock:
        if key not in _filesystems:
            url, user = key
            _filesystems[key] = HdfsFileSystem(partial(_new_client, url, user), url)
        return _filesystems[key]


def _new_client(url, user):
    """A WebHDFS client of ``url`` as ``user``."""
    import hdfs

    return hdfs.InsecureClient(url, user=user, timeout=TIMEOUT_SECONDS)


def transient_errors():
    """The exceptions of a WebHDFS call worth retrying: a refused or broken connection, a timeout."""
    import requests

    return requests.exceptions.ConnectionError, requests.exceptions.Timeout


class HdfsFileSystem(FileSystem):
    """HDFS over WebHDFS.

    Parameters
    ----------
    new_client : callable ``() -> hdfs.Client``
        Makes a WebHDFS client; called once in each thread that uses the filesystem (:attr:`client`).
    url : str
        Its WebHDFS URL, for error messages.
    """

    def __init__(self, new_client, url):
        self._new_client = new_client
        self._threads = threading.local()
        self.url = url

    @property
    def client(self):
        """This thread's WebHDFS client (its own ``requests.Session``), made on first use."""
        client = getattr(self._threads, "client", None)
        if client is None:
            client = self._threads.client = self._new_client()
        return client

    def _call(self, action, uri, fn, *args, **kwargs):
        """Run ``fn`` with bounded retries on transient errors; map HDFS errors to OSErrors."""
        import hdfs

        for attempt in range(1, ATTEMPTS + 1):
            try:
                return fn(*args, **kwargs)
            except transient_errors() as exc:
                if attempt == ATTEMPTS:
                    raise ConnectionError(
                        f"{uri}: {action} failed: WebHDFS at {self.url} unreachable after "
                        f"{ATTEMPTS} attempts: {exc}"
                    ) from exc
                delay = BACKOFF_SECONDS * 2 ** (attempt - 1)
                logger.warning(
                    "%s: %s: WebHDFS at %s attempt %d/%d failed (%s); retrying in %.1fs",
                    uri, action, self.url, attempt, ATTEMPTS, type(exc).__name__, delay,
                )
                time.sleep(delay)
            except hdfs.HdfsError as exc:
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if exc.exception == "FileNotFoundException":
                    raise FileNotFoundError(errno.ENOENT, f"{action}: {message}", uri) from exc
                if exc.exception == "FileAlreadyExistsException":
                    raise FileExistsError(errno.EEXIST, f"{action}: {message}", uri) from exc
                raise OSError(f"{uri}: {action} failed: {message}") from exc

    def _status(self, uri):
        return self._call("status", uri, self.client.status, hdfs_path(uri), strict=False)

    def _read(self, path, length):
        with self.client.read(path, length=length) as reader:
            return reader.read()

    def read_bytes(self, uri, max_bytes=None):
        """Check the path's status first: only a file is read, and one over ``max_bytes`` is refused.

        With ``max_bytes`` at most ``max_bytes + 1`` bytes are requested, in case the file grew since.
        """
        check_max_bytes(max_bytes)
        size = self.stat(uri).size
        if max_bytes is not None and size > max_bytes:
            raise too_large(uri, max_bytes, size)
        data = self._call("read", uri, self._read, hdfs_path(uri),
                          None if max_bytes is None else max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:
            raise too_large(uri, max_bytes, f"more than {max_bytes} (it grew while read)")
        return data

    def write_bytes(self, uri, data):
        """Write to a temporary sibling, then rename into place.

        WebHDFS cannot rename over an existing file, so an existing ``uri`` is deleted just
        before the rename: readers may briefly see no file, but never a partial one.
        """
        tmp = temp_sibling(uri)
        self._call("write", tmp, self.client.write, hdfs_path(tmp), data=data, overwrite=True)
        try:
            status = self._status(uri)
            if status is not None:
                if status["type"] == "DIRECTORY":
                    raise IsADirectoryError(errno.EISDIR, "write_bytes target is a directory", uri)
                self._call("delete", uri, self.client.delete, hdfs_path(uri))
            self._call("rename", uri, self.client.rename, hdfs_path(tmp), hdfs_path(uri))
        except BaseException:
            self._discard(tmp)
            raise

    def create_exclusive(self, uri, data):
        """WebHDFS ``CREATE`` with ``overwrite=false``: the NameNode refuses an existing path.

        After a transient error the retry may find the file its own first attempt created; callers
        that need to tell (lock files) compare the content.
        """
        self._call("create", uri, self.client.write, hdfs_path(uri), data=data, overwrite=False)

    def _discard(self, uri):
        """Best-effort removal of a temporary file after a failed write."""
        try:
            self._call("delete", uri, self.client.delete, hdfs_path(uri))
        except OSError as exc:
            logger.warning("%s: could not remove temporary file: %s", uri, exc)

    def exists(self, uri):
        return self._status(uri) is not None

    def isdir(self, uri):
        status = self._status(uri)
        return status is not None and status["type"] == "DIRECTORY"

    def listdir(self, uri):
        status = self._status(uri)
        if status is None:
            raise FileNotFoundError(errno.ENOENT, "listdir: no such directory", uri)
        if status["type"] != "DIRECTORY":
            raise NotADirectoryError(errno.ENOTDIR, "listdir needs a directory", uri)
        return sorted(self._call("list", uri, self.client.list, hdfs_path(uri)))

    def makedirs(self, uri):
        self._call("makedirs", uri, self.client.makedirs, hdfs_path(uri))

    def delete(self, uri, recursive=False):
        path = hdfs_path(uri)
        if not self._call("delete", uri, self.client.delete, path, recursive=recursive):
            raise FileNotFoundError(errno.ENOENT, "delete: no such file or directory", uri)

    def rename(self, src, dst):
        if self._status(src) is None:
            raise FileNotFoundError(errno.ENOENT, "rename source does not exist", src)
        if self._status(dst) is not None:
            raise FileExistsError(errno.EEXIST, "rename destination already exists", dst)
        self._call("rename", src, self.client.rename, hdfs_path(src), hdfs_path(dst))

    def stat(self, uri):
        status = self._status(uri)
        if status is None:
            raise FileNotFoundError(errno.ENOENT, "stat: no such file", uri)
        if status["type"] != "FILE":
            raise IsADirectoryError(errno.EISDIR, "a file was expected, found a directory", uri)
        modified_ns = int(status["modificationTime"]) * 1_000_000
        return FileStat(int(status["length"]), modified_ns, modified_ns)

    def touch(self, uri):
        """WebHDFS ``SETTIMES`` with this host's clock (milliseconds), access time unchanged."""
        now_ms = time.time_ns() // 1_000_000
        self._call("touch", uri, self.client.set_times, hdfs_path(uri), modification_time=now_ms)
