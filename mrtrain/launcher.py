"""Running mrtrain's MapReduce jobs from the driver, on any mrjob runner.

A :class:`JobLauncher` belongs to one dataset and one model. It owns a *staging directory* holding what the
jobs read besides the data: the partition list (the job input: one ``ID<TAB>URI<TAB>SHA256`` line per
partition) and, for Hadoop, a zip of the ``engine``, ``mr_jobs`` and ``storage`` packages and of mrjob, with
their bytecode (:func:`mrtrain.task_zip.task_zip`; shipped to the tasks with mrjob's ``py_files`` and
``--no-bootstrap-mrjob``, since cluster nodes do not have mrtrain installed), written once, and per job the
task description and the parameter points, small files mrjob ships to every task (``add_file_arg``: the
distributed cache on Hadoop) — never on the command line.

For the inline and local runners the staging directory is a local temporary directory (mode 0700, named
``mrtrain-job-<pid>-<random>``, with a marker file recording the host, the pid and its start time). mrjob's
own local temporary directory is put inside it and removed after failed jobs too, and closing the launcher
removes everything, on every exit path; what a killed run left is removed by the next launcher on the same
host once the recorded process no longer exists or its pid names a process started at another time
(:func:`remove_dead_staging`), never a live run's directory. The estimators' copies of their training data
(``mrtrain-estimator-<pid>-<random>``) are made and swept the same way. For the hadoop
runner over an ``hdfs://`` dataset it is a scratch directory on that HDFS, written through WebHDFS: mrjob
then references these files instead of uploading each with a ``hadoop fs -put`` (one JVM start each), uses
the same directory for its own files, writes the job output there, and the launcher reads the output and
cleans up through WebHDFS too. mrjob's own HDFS work (``mkdir``, uploading its zip, setup wrapper and job
script) goes over WebHDFS as well (:mod:`mrtrain.mrjob_fs`), so a job runs one ``hadoop`` command,
``hadoop jar``, plus one ``hadoop version`` per launcher, where mrjob alone ran 12 per job.

With ``reducers=0`` a partition-sum job is map-only: its output is one ``(partition id, vector)`` record per
partition, which :meth:`JobLauncher.sum_vector` adds in partition order with the reducer's own function.
That saves the reduce task (a process on the local runner, a container on YARN) and is bitwise the same.
On Hadoop a small pass over the partition list asks YARN for uber mode (:mod:`mrtrain.uber`: its map tasks
run inside the application master's JVM, without a container each), unless the user's mrjob config sets
``mapreduce.job.ubertask.enable``; the AllReduce job never does. After every job the launcher adds up the
map tasks' ``shuffle bytes`` counter (the size of the records
they emitted) into ``last_shuffle_bytes`` and logs it, and appends the job's wall time and its map tasks'
reported work to ``job_times`` (:class:`JobTime`, for :mod:`mrtrain.allreduce_hint`).

On the local runner the launcher runs every job with a :class:`~mrtrain.local_runner.WarmLocalRunner`, whose
tasks are forked by a :class:`mrtrain.local_runner.TaskServer` instead of each starting a Python
(``warm_tasks=False``: mrjob's local runner as is). Inside :func:`one_task_server` (the ``mrtrain`` command
runs every command in one) all launchers share one server, started by the first that needs it and stopped
when the block ends, however it ends: a command's training, metrics pass and inference start it once.
Outside, each launcher starts its own with its staging directory (its imports overlap the driver's work)
and stops it when it closes.

:meth:`JobLauncher.start` runs a map-only job in a background thread (a :class:`BackgroundJob`): the
AllReduce job of :mod:`mrtrain.allreduce`, whose tasks serve a whole training's passes.

Importing this module demotes mrjob's per-job "No configs specified for <runner> runner" warning to DEBUG
(:class:`_DefaultSettingsNotice`): mrtrain passes every option a job needs on its command line.
"""

import contextlib
import io
import json
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
import uuid
from typing import NamedTuple
from urllib.parse import urlsplit

import numpy as np
from mrjob.step import StepFailedException

from mrtrain.local_runner import TaskServer, TaskServerError, WarmLocalRunner
from mrtrain.mr_jobs.allreduce_job import FAULT_GROUP_ENV
from mrtrain.mr_jobs.partition_job import (
    FAULT_PARTITION_ENV,
    MAP_WORK_MS,
    SHUFFLE_BYTES,
    format_partition_line,
    sum_in_partition_order,
)
from mrtrain.mrjob_fs import webhdfs_first
from mrtrain.storage import partition_cache
from mrtrain.storage.filesystem import absolute, get_filesystem, join, split_scheme
from mrtrain.storage.hdfs_fs import hdfs_path, hdfs_user
from mrtrain.storage.local_fs import LOCAL
from mrtrain.storage.lock import pid_alive, pid_namespace, process_start
from mrtrain.task_zip import task_zip
from mrtrain.uber import ENABLE as UBER_ENABLE
from mrtrain.uber import configured as configured_uber
from mrtrain.uber import uber_pass

log = logging.getLogger(__name__)

RUNNERS = ("inline", "local", "hadoop")


class _DefaultSettingsNotice(logging.Filter):
    """Demote mrjob's "No configs specified for <runner> runner" from WARNING to DEBUG.

    mrjob logs it when no config file (``--conf-path``, ``$MRJOB_CONF``, ``~/.mrjob.conf``) holds options
    for the runner, which is how mrtrain normally runs: every option a job needs is on its command line.
    It came once per job, so once per pass, and from Python (where nothing configures logging) Python's
    last-resort handler printed every one of them; passing ``--no-conf`` does not help, since mrjob warns
    whenever no options were found. Other records of the ``mrjob.conf`` logger pass unchanged.
    """

    def filter(self, record):
        if str(record.msg).startswith("No configs specified for "):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


logging.getLogger("mrjob.conf").addFilter(_DefaultSettingsNotice())

#: Environment variables forwarded to the tasks with mrjob's ``--cmdenv``: how to reach HDFS, where and how
#: big the node-local partition cache is, and the fault switches of the retry tests.
TASK_ENVIRONMENT = (
    "MRTRAIN_WEBHDFS_URL", "MRTRAIN_HDFS_USER", "HADOOP_USER_NAME", "HADOOP_CONF_DIR",
    partition_cache.ROOT_ENV, partition_cache.MAX_BYTES_ENV, FAULT_PARTITION_ENV, FAULT_GROUP_ENV,
)

#: Local staging directories: ``<tempdir>/mrtrain-job-<pid>-<random>``.
STAGING_PREFIX = "mrtrain-job-"
#: The estimators' temporary copies of their training data: ``<tempdir>/mrtrain-estimator-<pid>-<random>``.
ESTIMATOR_PREFIX = "mrtrain-estimator-"
#: The prefixes of the local directories a process owns and its successors sweep when it died.
OWNED_PREFIXES = (STAGING_PREFIX, ESTIMATOR_PREFIX)
#: The file in such a directory, or in an HDFS staging directory, naming its owner: ``{"format", "host",
#: "pid", "pid_ns", "start"}`` (:func:`staging_marker`).
STAGING_MARKER = "_owner.json"
#: HDFS staging directories: ``/user/<user>/tmp/mrtrain/<16 hex digits>`` (:func:`hdfs_staging_dir`).
_HDFS_STAGING_NAME = re.compile(r"[0-9a-f]{16}")
_STAGING_FORMAT = "mrtrain-staging"

#: The local runner's tasks run on this machine with this Python, so they import mrtrain (installed) and
#: mrjob from where the driver does instead of from zips (a zip is unpacked and compiled by every task: no
#: bytecode cache, plus a wrapper script and a lock per task), and take the standard library's distutils,
#: which mrjob imports (from Python 3.12 on, :mod:`mrtrain._mrjob_compat`'s stand-in), instead of
#: setuptools' shim where setuptools is installed (about 0.12 s of imports per task).
_LOCAL_TASK_ARGS = ["--no-bootstrap-mrjob", "--cmdenv", "SETUPTOOLS_USE_DISTUTILS=stdlib"]

#: Hadoop tasks import mrjob from the launcher's code zip (:func:`mrtrain.task_zip.task_zip`, written once
#: per training, with bytecode) instead of a zip mrjob would make and upload for every job, and take the
#: standard library's distutils (from Python 3.12 on, :mod:`mrtrain._mrjob_compat`'s stand-in) instead of
#: setuptools' shim where the nodes have setuptools (about 0.4 s of imports per task: ``pkg_resources``).
_HADOOP_TASK_ARGS = ["--no-bootstrap-mrjob", "--cmdenv", "SETUPTOOLS_USE_DISTUTILS=stdlib"]

#: Task processes of the local and hadoop runners run their math on one BLAS thread (see
#: :func:`mrtrain.mr_jobs.partition_job.single_threaded_blas`); saying so before numpy loads also spares
#: OpenBLAS starting a thread pool in every task (~12 ms of its import).
_TASK_THREAD_ARGS = [
    arg
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    for arg in ("--cmdenv", f"{name}=1")
]


def preload_mrtrain_in_forkserver():
    """Add ``mrtrain`` to the modules multiprocessing's fork server imports when it starts.

    Where the task server does not start, the launcher falls back to mrjob's own local runner, which runs
    its tasks from a ``multiprocessing.Pool`` whose workers unpickle ``mrjob.local`` functions and so import
    mrjob. Under the ``forkserver`` start method (Python 3.14's default on Linux) the workers are forked
    from a fresh interpreter that imported only ``__main__``'s file, if any; run from ``python -c``, a
    notebook or ``python -m mrtrain`` on a Python without ``pipes``, their import of mrjob failed and the
    pool waited forever (seen on 3.13 with that start method). Preloading ``mrtrain`` installs
    :mod:`mrtrain._mrjob_compat` there first. The modules already listed stay; a fork server that is
    already running is not changed.
    """
    from multiprocessing import forkserver

    preload = list(getattr(forkserver._forkserver, "_preload_modules", ["__main__"]))
    if "mrtrain" not in preload:
        forkserver.set_forkserver_preload(preload + ["mrtrain"])


def task_uri(uri):
    """``uri`` as a task sees it: tasks run in their own working directories, so relative local paths
    become absolute (:func:`~mrtrain.storage.filesystem.absolute`); URIs are unchanged."""
    return absolute(uri)


def package_zip():
    """A zip of the ``mrtrain`` modules tasks import (``.py`` files only), as bytes: the task packages under
    their installed names, no driver module (:func:`mrtrain.task_zip.task_zip`)."""
    return task_zip()


def make_local_staging(prefix=STAGING_PREFIX):
    """A new local directory ``<tempdir>/<prefix><pid>-<random>`` (mode 0700) with its owner marker, after
    removing the ones of this prefix that dead runs left (:func:`remove_dead_staging`).

    Parameters
    ----------
    prefix : str, one of :data:`OWNED_PREFIXES`
        :data:`STAGING_PREFIX` (a launcher's staging directory) or :data:`ESTIMATOR_PREFIX` (an
        estimator's copy of its training data).
    """
    if prefix not in OWNED_PREFIXES:
        raise ValueError(f"The 'prefix' parameter must be one of {list(OWNED_PREFIXES)}. Got {prefix!r} "
                         "instead.")
    remove_dead_staging(prefix=prefix)
    path = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")
    try:
        LOCAL.write_bytes(os.path.join(path, STAGING_MARKER), json.dumps(staging_marker()).encode())
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def staging_marker():
    """The owner marker of a staging directory this process makes: this host, this pid, and what tells this
    process from a later one given the same pid (its PID namespace and start time, as the lock records)."""
    pid = os.getpid()
    return {"format": _STAGING_FORMAT, "host": socket.gethostname(), "pid": pid, "pid_ns": pid_namespace(),
            "start": process_start(pid)}


def owner_gone(marker):
    """True if ``marker`` (a staging directory's :data:`STAGING_MARKER`) names a process of this host that no
    longer runs: its pid is free, or taken by a process started at another time. Anything else (another
    host, another PID namespace, a live owner, a marker that is not one) is False: kept."""
    if not (isinstance(marker, dict) and marker.get("format") == _STAGING_FORMAT
            and marker.get("host") == socket.gethostname()):
        return False
    pid, start = marker.get("pid"), marker.get("start")
    if isinstance(pid, bool) or not isinstance(pid, int):
        return False
    if marker.get("pid_ns", pid_namespace()) != pid_namespace():  # another container's pids: unknown here
        return False
    if not pid_alive(pid):
        return True
    return isinstance(start, int) and not isinstance(start, bool) and process_start(pid) not in (None, start)


def remove_dead_staging(root=None, prefix=STAGING_PREFIX):
    """Remove the local directories in ``root`` left by runs on this host that no longer exist.

    Only directories named like ``prefix`` ``<pid>-...``, owned by this user, not symlinks, whose marker
    names this host and that pid, and whose process no longer exists (:func:`owner_gone`: its pid is free
    or names a process started at another time) are removed: a live run's directory, another host's or
    user's, or one whose marker is missing or unreadable is kept.

    Parameters
    ----------
    root : str, optional
        Default: :func:`tempfile.gettempdir`.
    prefix : str
        :data:`STAGING_PREFIX` or :data:`ESTIMATOR_PREFIX`.

    Returns
    -------
    list of str
        The directories removed.
    """
    root = root or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    pattern = re.compile(re.escape(prefix) + r"([0-9]{1,10})-[A-Za-z0-9_]{1,32}")
    for name in names:
        match = pattern.fullmatch(name)
        if not match:
            continue
        path = os.path.join(root, name)
        try:
            info = os.lstat(path)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            marker = json.loads(LOCAL.read_bytes(os.path.join(path, STAGING_MARKER), max_bytes=4096))
        except (OSError, ValueError, RecursionError):
            continue
        if not (owner_gone(marker) and marker.get("pid") == int(match.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
        log.info("removed %s, the staging directory of the dead run pid %s", path, match.group(1))
    return removed


def hdfs_staging_dir(dataset_uri):
    """A new scratch directory on the HDFS holding ``dataset_uri``: ``/user/<user>/tmp/mrtrain/<id>``."""
    return join(hdfs_staging_root(dataset_uri), uuid.uuid4().hex[:16])


def hdfs_staging_root(uri):
    """``hdfs://<authority>/user/<user>/tmp/mrtrain``, where the HDFS of ``uri`` keeps staging directories."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}/user/{hdfs_user()}/tmp/mrtrain"


def make_hdfs_staging(uri, permission=None):
    """A new HDFS staging directory (:func:`hdfs_staging_dir`) holding its owner marker, after removing those
    of dead runs (:func:`remove_dead_hdfs_staging`); ``permission`` (octal text) for the directory."""
    remove_dead_hdfs_staging(uri)
    path = hdfs_staging_dir(uri)
    fs = get_filesystem(path)
    fs._call("mkdir", path, fs.client.makedirs, hdfs_path(path), permission=permission)
    fs.write_bytes(join(path, STAGING_MARKER), json.dumps(staging_marker()).encode())
    return path


def remove_dead_hdfs_staging(uri):
    """Remove the HDFS staging directories left by runs of this host that no longer exist, as
    :func:`remove_dead_staging` removes local ones.

    Only directories of :func:`hdfs_staging_root` named like :func:`hdfs_staging_dir`'s, owned by the HDFS
    user, whose marker says their process no longer exists (:func:`owner_gone`) are removed; one of another
    host, of a live run, or without a readable marker (a run that has not written it yet, or a version
    before markers) is kept. Errors are logged, never raised: a run does not fail for another's leftovers.

    Returns
    -------
    list of str
        The directories removed.
    """
    root = hdfs_staging_root(uri)
    fs = get_filesystem(root)
    removed = []
    try:
        names = fs.listdir(root)
    except OSError:
        return removed
    for name in names:
        if not _HDFS_STAGING_NAME.fullmatch(name):
            continue
        path = join(root, name)
        try:
            status = fs._call("status", path, fs.client.status, hdfs_path(path))
            if status.get("type") != "DIRECTORY" or status.get("owner") != hdfs_user():
                continue
            marker = json.loads(fs.read_bytes(join(path, STAGING_MARKER), max_bytes=4096))
        except (OSError, ValueError, RecursionError):
            continue
        if not owner_gone(marker):
            continue
        try:
            fs.delete(path, recursive=True)
        except FileNotFoundError:
            continue  # another run removed it first
        except OSError as error:
            log.warning("could not remove %s, the staging directory of the dead run pid %s: %s", path,
                        marker.get("pid"), error)
            continue
        removed.append(path)
        log.info("removed %s, the staging directory of the dead run pid %s", path, marker.get("pid"))
    return removed


def shuffle_bytes(counters):
    """The bytes a job's map tasks emitted, from its counters (one dict per step, as mrjob gives them).

    The sum of the ``mrtrain`` / :data:`~mrtrain.mr_jobs.partition_job.SHUFFLE_BYTES` counter over the
    steps: the size of every record the partition-sum map tasks wrote, line and newline, counted by the
    tasks themselves. 0 for a job whose map tasks emit no such records.

    Parameters
    ----------
    counters : list of dict
        ``{group: {counter: int}}`` per step.

    Returns
    -------
    int
    """
    return sum(int(step.get("mrtrain", {}).get(SHUFFLE_BYTES, 0)) for step in counters)


def map_work_seconds(counters):
    """The seconds a job's partition-sum map tasks spent reading and computing, added over the tasks (the
    ``mrtrain`` / :data:`~mrtrain.mr_jobs.partition_job.MAP_WORK_MS` counter); 0 for other jobs."""
    return sum(int(step.get("mrtrain", {}).get(MAP_WORK_MS, 0)) for step in counters) / 1000


def effective_reducers(reducers, vector_length, job):
    """The reducers a partition-sum job runs with: ``reducers``, at most one per summed element.

    Every reducer adds one contiguous piece of the summed vector, so more reducers than elements only
    add empty reduce tasks (one process or container each per pass); ``reducers`` is capped at
    ``vector_length`` with a warning.

    Parameters
    ----------
    reducers : int >= 0
        The reducers asked for (0: map-only jobs).
    vector_length : int >= 1
        Length of the smallest vector the job sums.
    job : str
        What the job computes, for the warning (e.g. ``"gradient"``).

    Returns
    -------
    int
    """
    if not (isinstance(reducers, int) and reducers >= 0):
        raise ValueError(f"The 'reducers' parameter must be an int >= 0. Got {reducers!r} instead.")
    if reducers <= vector_length:
        return reducers
    log.warning(
        "--reducers %d: the %s job sums a vector of %d elements; using %d reducers (one element each at "
        "least)", reducers, job, vector_length, vector_length,
    )
    return vector_length


class _SharedTaskServer:
    """The task server of the open :func:`one_task_server` block (module state: launchers are made by the
    driver's main thread; a lock guards the rare other caller)."""

    lock = threading.Lock()
    depth = 0
    server = None
    directory = None
    gave_up = False
    #: Servers started by :func:`one_task_server` blocks in this process (what the tests count).
    started = 0

    @classmethod
    def get(cls):
        """The block's server, started on first use; None outside a block or once it failed to start."""
        with cls.lock:
            if cls.depth == 0 or cls.gave_up:
                return None
            if cls.server is None:
                cls.directory = make_local_staging()
                try:
                    cls.server = TaskServer(cls.directory)
                except BaseException:
                    shutil.rmtree(cls.directory, ignore_errors=True)
                    cls.directory = None
                    raise
                cls.started += 1
            return cls.server

    @classmethod
    def failed(cls):
        """The block's server did not start: the block's later launchers start a Python per task too."""
        with cls.lock:
            if cls.depth:
                cls.gave_up = True

    @classmethod
    def enter(cls):
        with cls.lock:
            cls.depth += 1

    @classmethod
    def exit(cls):
        with cls.lock:
            cls.depth -= 1
            if cls.depth:
                return
            server, directory = cls.server, cls.directory
            cls.server = cls.directory = None
            cls.gave_up = False
        try:
            if server is not None:
                server.close()
        finally:
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def one_task_server():
    """A block whose local-runner launchers share one :class:`~mrtrain.local_runner.TaskServer`.

    The first launcher of the local runner (with ``warm_tasks``) made inside it starts the server, in a
    private staging directory of its own (:func:`make_local_staging`, swept like a launcher's if the
    process dies), and every later one uses it; leaving the block stops the server and removes that
    directory, whether it ends normally, by an exception or by Ctrl-C (``KeyboardInterrupt``). A killed
    driver's server ends by itself (its pipe closes). The server and its tasks do not depend on the
    working directory: it runs in its own directory, and each task in the one its job gives it. Blocks
    nest: the outermost one owns the server.
    """
    _SharedTaskServer.enter()
    try:
        yield
    finally:
        _SharedTaskServer.exit()


class JobLauncher:
    """Runs partition jobs over one dataset with one mrjob runner.

    Parameters
    ----------
    dataset : mrtrain.storage.dataset.Dataset
    model_spec : dict
        ``{"kind", "n_features", "classes", "fit_intercept"}``: what tasks need to rebuild the model.
    runner : str
        One of :data:`RUNNERS`.
    conf_path : str, optional
        mrjob config file; by default mrjob's own lookup (``$MRJOB_CONF``, ``~/.mrjob.conf``) applies.
    reducers : int >= 0
        Number of reduce tasks of a partition-sum job, each adding one contiguous piece of the summed
        vector. 0: a map-only job whose mappers' vectors the driver adds (one process or container less
        per pass). Every choice adds in partition order: the total is bitwise the same.
    partition_cache : bool
        Whether map tasks use their node's :class:`mrtrain.storage.partition_cache.PartitionCache`.
    warm_tasks : bool
        Local runner only: fork its tasks from one warm :class:`mrtrain.local_runner.TaskServer` started
        with the launcher (:class:`mrtrain.local_runner.WarmLocalRunner`) instead of starting a Python per
        task. The same jobs, the same bits.
    """

    def __init__(self, dataset, model_spec, *, runner="inline", conf_path=None, reducers=1,
                 partition_cache=True, warm_tasks=True):
        if runner not in RUNNERS:
            raise ValueError(
                f"The 'runner' parameter must be one of {list(RUNNERS)}. Got {runner!r} instead."
            )
        if not (isinstance(reducers, int) and reducers >= 0):
            raise ValueError(f"The 'reducers' parameter must be an int >= 0. Got {reducers!r} instead.")
        self.dataset = dataset
        self.model_spec = model_spec
        self.runner = runner
        self.conf_path = conf_path
        self.reducers = reducers
        self.partition_cache = bool(partition_cache)
        self.on_hdfs = runner == "hadoop" and split_scheme(dataset.uri) == "hdfs"
        self.local_staging = make_local_staging()
        try:
            self.staging = make_hdfs_staging(dataset.uri) if self.on_hdfs else self.local_staging
        except BaseException:
            shutil.rmtree(self.local_staging, ignore_errors=True)
            raise
        self.fs = get_filesystem(self.staging)
        self.task_server = None
        self._owns_task_server = False
        try:
            if runner == "local" and warm_tasks:
                self.task_server = _SharedTaskServer.get()
                if self.task_server is None:
                    self.task_server = TaskServer(self.local_staging)
                    self._owns_task_server = True
            self.partition_list = join(self.staging, "partitions.txt")
            lines = [format_partition_line(p.index, task_uri(p.uri), p.sha256, p.rows, p.bytes) + "\n"
                     for p in dataset.partitions]
            self.fs.write_bytes(self.partition_list, "".join(lines).encode("utf-8"))
            self.code_zip = None
            if runner == "hadoop":
                self.code_zip = join(self.staging, "mrtrain-code.zip")
                self.fs.write_bytes(self.code_zip, task_zip(with_mrjob=True, bytecode=True))
        except BaseException:
            self.close()
            raise
        self.jobs_run = 0
        self.last_counters = []
        self.last_shuffle_bytes = 0
        self.job_times = []
        self.hadoop_fs = None
        self.user_uber = None

    @property
    def shards(self):
        """Pieces the summed vector is cut into: one per reducer, one for a map-only job."""
        return max(self.reducers, 1)

    def close(self):
        """Stop the task server; remove the staging directories (the local one also when removing the HDFS
        one fails)."""
        try:
            if self.task_server is not None and self._owns_task_server:
                self.task_server.close()
            if self.on_hdfs:
                self.fs.delete(self.staging, recursive=True)
        except FileNotFoundError:
            pass
        finally:
            shutil.rmtree(self.local_staging, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _uber_args(self, reducers, input_path, uber):
        """``--jobconf`` for YARN's uber mode (:mod:`mrtrain.uber`): ``uber`` False turns it off; None asks
        for it for a small pass over the partition list, unless the user's mrjob config sets it."""
        if self.runner != "hadoop":
            return []
        if uber is False:
            return ["--jobconf", f"{UBER_ENABLE}=false"]
        if self.user_uber is None:
            self.user_uber = str(configured_uber(self.conf_path)).lower()
        if (input_path is None and self.user_uber == "none"
                and uber_pass(len(self.dataset.partitions), sum(p.bytes for p in self.dataset.partitions),
                              reducers)):
            return ["--jobconf", f"{UBER_ENABLE}=true"]
        return []

    def _args(self, task, thetas, job_dir, reducers=None, input_path=None, uber=None):
        reducers = self.reducers if reducers is None else reducers
        task_path = join(job_dir, "task.json")
        spec = {"model": self.model_spec, "shards": self.shards, "partition_cache": self.partition_cache,
                "has_weight": self.dataset.has_weight, "missing": self.dataset.has_missing,
                **task}
        self.fs.write_bytes(task_path, json.dumps(spec).encode("utf-8"))
        params_path = join(job_dir, "params.npy")
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(thetas, dtype=np.float64), allow_pickle=False)
        self.fs.write_bytes(params_path, buffer.getvalue())
        # mrjob's own temporary files go inside the staging directory and are removed after a failed job
        # too (mrjob keeps them by default); the HDFS side is the launcher's to clean.
        cleanup = "LOCAL_TMP" if self.on_hdfs else "ALL"
        args = ["-r", self.runner, "--task", task_path, "--params", params_path,
                "--local-tmp-dir", self.local_staging, "--cleanup-on-failure", cleanup]
        if self.conf_path:
            args += ["--conf-path", self.conf_path]
        if self.runner == "local":
            args += _LOCAL_TASK_ARGS + _TASK_THREAD_ARGS
            preload_mrtrain_in_forkserver()
        elif self.runner == "hadoop":
            args += ["--py-files", self.code_zip] + _HADOOP_TASK_ARGS + _TASK_THREAD_ARGS
        if self.on_hdfs:
            args += [
                "--hadoop-tmp-dir", join(self.staging, "mrjob"), "--output-dir", join(job_dir, "output"),
                "--no-check-input-paths", "--cleanup", cleanup,
            ]
        for name in TASK_ENVIRONMENT:
            if os.environ.get(name):
                args += ["--cmdenv", f"{name}={os.environ[name]}"]
        args += self._uber_args(reducers, input_path, uber)
        args += ["--jobconf", f"mapreduce.job.reduces={reducers}", input_path or self.partition_list]
        return args

    def run(self, job_class, thetas, task, job_args=(), *, input_lines=None, reducers=None, uber=None):
        """Run one job and return its parsed output records.

        Parameters
        ----------
        job_class : subclass of mrtrain.mr_jobs.partition_job.PartitionJob
        thetas : ndarray, shape (m, p)
            Parameter points shipped to every task.
        task : dict
            Extra task settings (e.g. ``{"hessian": 1}``).
        job_args : sequence of str
            Extra command-line arguments of the job (e.g. ``--map-only``).
        input_lines : list of str, optional
            The job's input, one line each, instead of the partition list.
        reducers : int, optional
            Reduce tasks of this job instead of the launcher's (0 for a map-only job).
        uber : bool, optional
            Hadoop: False runs the job without YARN's uber mode whatever the configuration says; None asks
            for it where :func:`mrtrain.uber.uber_pass` says the pass is small (partition-list input only)
            and the user's mrjob config does not set it. A job that fails in uber mode (where YARN gives
            each task one attempt) runs once more in containers, where Hadoop retries task attempts.

        Returns
        -------
        list of (key, value)
            The job's output; its Hadoop counters (one dict per step) are kept in ``last_counters``, and
            the bytes its map tasks emitted (:func:`shuffle_bytes`) in ``last_shuffle_bytes``; its
            :class:`JobTime` is appended to ``job_times``.
        """
        job_dir = join(self.staging, f"job-{self.jobs_run:06d}")
        self.jobs_run += 1
        input_path = None
        if input_lines is not None:
            input_path = join(job_dir, "input.txt")
            self.fs.write_bytes(input_path, "".join(f"{line}\n" for line in input_lines).encode("utf-8"))
        args = [*self._args(task, thetas, job_dir, reducers, input_path, uber), *job_args]
        job = job_class(args=args)
        started = time.perf_counter()
        with self._make_runner(job) as runner:
            if self.on_hdfs:
                self._use_webhdfs(runner)
            try:
                runner.run()
            except StepFailedException:
                if f"{UBER_ENABLE}=true" not in args:
                    raise
                # YARN runs an uber job's tasks with one attempt each: run the pass again in containers,
                # where Hadoop retries a failed task attempt as it always did.
                log.warning("%s failed in YARN's uber mode, which does not retry tasks; running it again "
                            "in containers", job_class.__name__)
                return self.run(job_class, thetas, task, job_args, input_lines=input_lines,
                                reducers=reducers, uber=False)
            self.last_counters = runner.counters()
            self.job_times.append(JobTime(time.perf_counter() - started, map_work_seconds(self.last_counters),
                                          len(input_lines) if input_lines is not None
                                          else len(self.dataset.partitions)))
            self.last_shuffle_bytes = shuffle_bytes(self.last_counters)
            log.info("%s: the map tasks emitted %d bytes", job_class.__name__, self.last_shuffle_bytes)
            if not self.on_hdfs:
                return list(job.parse_output(runner.cat_output()))
        output = join(job_dir, "output")
        names = [name for name in self.fs.listdir(output) if name.startswith("part-")]
        records = list(job.parse_output(self.fs.read_bytes(join(output, name)) for name in names))
        self.fs.delete(job_dir, recursive=True)
        self.fs.delete(join(self.staging, "mrjob"), recursive=True)
        return records

    def _make_runner(self, job):
        """``job``'s runner: mrjob's, or a :class:`~mrtrain.local_runner.WarmLocalRunner` on the launcher's
        task server (the plain local runner, with a warning, if that server did not start)."""
        if self.task_server is not None:
            try:
                self.task_server.wait_ready()
            except TaskServerError as error:
                log.warning("%s; starting a Python per task instead", error)
                self.task_server.close()
                self.task_server = None
                _SharedTaskServer.failed()
        if self.task_server is None:
            return job.make_runner()
        # What MRJob.make_runner() does (mrjob 0.7.4), with the runner class that forks tasks from the server.
        return WarmLocalRunner(task_server=self.task_server, **job._runner_kwargs())

    def start(self, job_class, thetas, task, input_lines):
        """Start a map-only job in a background thread (see :meth:`run`); returns its :class:`BackgroundJob`.

        The AllReduce job (:mod:`mrtrain.allreduce`) runs this way for a whole training; its tasks must all
        run at once, so never in YARN's uber mode (which runs them one after another).
        """
        return BackgroundJob(lambda: self.run(job_class, thetas, task, input_lines=input_lines, reducers=0,
                                              uber=False))

    def _use_webhdfs(self, runner):
        """Give a hadoop runner the filesystem of :func:`mrtrain.mrjob_fs.webhdfs_first`.

        mrjob builds a runner's filesystem lazily in its ``fs`` property from ``_fs``; setting ``_fs``
        first is the only way in (mrjob 0.7.4). The ``hadoop`` command's filesystem of the first job is
        kept for the later ones, with its cached ``hadoop version``.
        """
        if self.hadoop_fs is None:
            self.hadoop_fs = runner.fs.hadoop
        runner._fs = webhdfs_first(self.hadoop_fs)

    def sum_vector(self, job_class, thetas, task):
        """Run a partition-sum job and return the total vector (shards concatenated in order).

        Without reducers the job outputs every partition's tagged vector and they are added here with the
        reducer's own :func:`~mrtrain.mr_jobs.partition_job.sum_in_partition_order`.

        Raises
        ------
        RuntimeError
            If the job's output does not cover every partition exactly once.
        """
        if self.reducers:
            records = self.run(job_class, thetas, task)
        else:
            tagged = self.run(job_class, thetas, task, ["--map-only"])
            try:
                records = [("0", sum_in_partition_order([value for _, value in tagged]))] if tagged else []
            except ValueError as error:
                raise RuntimeError(f"{job_class.__name__}: {error}") from None
        records = sorted(records, key=lambda record: int(record[0]))
        expected = len(self.dataset.partitions)
        if [int(key) for key, _ in records] != list(range(self.shards)) or any(
            count != expected for _, (count, _) in records
        ):
            found = {key: count for key, (count, _) in records}
            raise RuntimeError(
                f"{job_class.__name__} summed partitions per shard {found}; expected {expected} in each of "
                f"{self.shards} shard(s)."
            )
        return np.concatenate([vector for _, (_, vector) in records])


class JobTime(NamedTuple):
    """One job as :meth:`JobLauncher.run` timed it: wall ``seconds`` from the job's start to its end, the
    ``map_work_seconds`` its map tasks reported (:func:`map_work_seconds`) and its ``map_tasks``."""

    seconds: float
    map_work_seconds: float
    map_tasks: int


class BackgroundJob:
    """A job run by ``target()`` in a daemon thread: its ``records`` once it succeeded, or its ``error``."""

    def __init__(self, target):
        self.records = None
        self.error = None
        self._thread = threading.Thread(target=self._run, args=(target,), name="mrtrain-job", daemon=True)
        self._thread.start()

    def _run(self, target):
        try:
            self.records = target()
        except BaseException as error:
            self.error = error

    def done(self):
        """Whether the job has ended (successfully or not)."""
        return not self._thread.is_alive()

    def wait(self, timeout=None):
        """Wait up to ``timeout`` seconds (None: for ever) for the job to end; returns :meth:`done`."""
        self._thread.join(timeout)
        return self.done()
