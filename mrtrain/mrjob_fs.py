"""mrjob's filesystem interface for ``hdfs://`` paths, over WebHDFS instead of the ``hadoop fs`` command.

mrjob's hadoop runner does its HDFS work (``mkdir``, uploading its zip, setup wrapper and job script,
listing and reading output, cleanup) through ``hadoop fs`` commands: one JVM start, about a second, each.
:func:`webhdfs_first` builds the runner's filesystem so that ``hdfs://`` paths go to
:class:`WebHdfsFilesystem` (HTTP requests through :mod:`mrtrain.storage.hdfs_fs`, with its retries) and only
what WebHDFS cannot do (other URI schemes) goes to the ``hadoop`` command; its ``hadoop version`` answer is
kept for the life of the launcher, so it runs once per training instead of once per job. The launcher
uses it for datasets on HDFS, whose WebHDFS address it already knows.
"""

import fnmatch
import posixpath
from urllib.parse import urlsplit

from mrjob.cat import decompress
from mrjob.fs.base import Filesystem
from mrjob.fs.composite import CompositeFilesystem
from mrjob.fs.local import LocalFilesystem

from mrtrain.storage.hdfs_fs import hdfs_filesystem

_GLOB_CHARS = "*?["


def _split(uri):
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}", parts.path or "/"


class WebHdfsFilesystem(Filesystem):
    """The :class:`mrjob.fs.base.Filesystem` methods mrjob's runners use, for ``hdfs://`` URIs.

    Paths may contain shell-style globs (``*``, ``?``, ``[...]``) in any component, as with
    ``hadoop fs``.
    """

    def can_handle_path(self, path):
        return path.startswith("hdfs://")

    def _fs(self, uri):
        return hdfs_filesystem(uri)

    def _matches(self, path_glob):
        """URIs matching ``path_glob`` (files or directories), sorted."""
        root, path = _split(path_glob)
        fs = self._fs(path_glob)
        if not any(char in path for char in _GLOB_CHARS):
            return [path_glob] if fs.exists(path_glob) else []
        found = ["/"]
        for component in [c for c in path.split("/") if c]:
            step = []
            for parent in found:
                child = posixpath.join(parent, component)
                if not any(char in component for char in _GLOB_CHARS):
                    step += [child] if fs.exists(root + child) else []
                elif fs.isdir(root + parent):
                    names = [name for name in fs.listdir(root + parent) if fnmatch.fnmatch(name, component)]
                    step += [posixpath.join(parent, name) for name in names]
            found = step
        return sorted(root + match for match in found)

    def _files_under(self, uri):
        fs = self._fs(uri)
        if not fs.isdir(uri):
            yield uri
            return
        for name in fs.listdir(uri):
            yield from self._files_under(posixpath.join(uri, name))

    def ls(self, path_glob):
        for match in self._matches(path_glob):
            yield from self._files_under(match)

    def du(self, path_glob):
        return sum(self._fs(uri).size(uri) for uri in self.ls(path_glob))

    def _cat_file(self, path):
        # Decompressed by file name (.gz, .bz2), as mrjob's HadoopFilesystem does.
        yield from decompress(iter([self._fs(path).read_bytes(path)]), path)

    def exists(self, path_glob):
        return bool(self._matches(path_glob))

    def mkdir(self, path):
        self._fs(path).makedirs(path)

    def put(self, src, path):
        if path.endswith("/"):
            raise ValueError("put() destination may not be a directory")
        with open(src, "rb") as handle:
            self._fs(path).write_bytes(path, handle.read())

    def rm(self, path_glob):
        for match in self._matches(path_glob):
            self._fs(match).delete(match, recursive=True)

    def touchz(self, path):
        fs = self._fs(path)
        if fs.exists(path) and fs.size(path) > 0:
            raise OSError(f"Non-empty file {path!r} already exists!")
        fs.write_bytes(path, b"")


def webhdfs_first(hadoop_fs):
    """A composite filesystem for a hadoop runner: WebHDFS for ``hdfs://``, then ``hadoop_fs``, then local.

    Parameters
    ----------
    hadoop_fs : mrjob.fs.hadoop.HadoopFilesystem
        Shared by the launcher's jobs, so that it asks ``hadoop version`` once.
    """
    composite = CompositeFilesystem()
    composite.add_fs("webhdfs", WebHdfsFilesystem())
    composite.add_fs("hadoop", hadoop_fs)
    composite.add_fs("local", LocalFilesystem())
    return composite
