"""AllReduce training passes: one map-only job for a whole training, passes over TCP.

Vowpal Wabbit's "Hadoop-compatible AllReduce" (Agarwal et al., JMLR 2014). A job per pass pays the
framework's fixed costs on every pass (on YARN: a client JVM, an application master, containers); here the
driver pays them once. :class:`AllReduceSession` opens a TCP server, starts one map-only job
(:mod:`mrtrain.mr_jobs.allreduce_job`, through the same :class:`~mrtrain.launcher.JobLauncher` as every
other job) whose map tasks each hold a *group* of partitions, and waits until every group's task has
connected and proved that it belongs to this run (HMAC-SHA256 over a per-run secret; see
:mod:`mrtrain.mr_jobs.allreduce_wire`; connections are accepted and their handshakes run by
:class:`mrtrain.allreduce_gate.Gate`, which nobody else connecting to the port can hold up). Each pass
then sends the parameter points to every task, receives every partition's vector, computed by the
job-per-pass code, and adds them in partition order with the reducer's own function
(:func:`~mrtrain.mr_jobs.partition_job.sum_in_partition_order`): the model is bitwise the one job-per-pass
training gives, on every runner. The training's metrics pass on its own data is one more pass of the session
(the evaluate job's vectors, :class:`~mrtrain.mr_jobs.evaluate.MREvaluate`); evaluate on other data and
predict stay jobs.

Gang scheduling: every task must run at the same time, so the partitions are cut into as many contiguous
groups as there are map slots, at most one per partition: on the local runner mrjob's ``num_cores``
(default: the machine's cores); on Hadoop the map containers the cluster can run at once next to the job's
application master, as its ResourceManager says (:mod:`mrtrain.yarn_capacity`), or
:data:`DEFAULT_HADOOP_TASKS` with a warning when it cannot be asked; ``tasks`` overrides both. If not every
group connects within ``timeout`` seconds the training stops with one line saying how many did (and how many
other connections the port refused, and why), and the job is ended.

The secret: written into a file that only the run's user can read (0600 in a 0700 directory): the local
staging directory on the local runner, the HDFS staging directory on Hadoop, or for a dataset outside HDFS
a new directory on the default filesystem. The tasks read it themselves, as they read their partitions, so
it is in no task file, upload or distributed cache (mrjob uploads a local dataset's job files world-readable
and YARN then caches them publicly on the nodes); it is deleted when the training ends.

Faults: a task attempt that dies (Hadoop retries it; speculative execution is off) drops its connection;
the retry reconnects under the same group id and the driver sends it the current pass again, so the pass
completes with the same bits; a task whose connection breaks reconnects the same way, and a connection
replaced by a newer one of its group is told to stop. A group that stays away for ``timeout`` seconds
stops the training (its checkpoints stay; a rerun resumes). When the driver ends it closes its server and
tells every task to stop; a driver that was killed leaves nothing listening, so its tasks' reconnections
fail and they exit (they also exit after no message for ``idle_timeout`` seconds): no task outlives its
driver. The inline runner runs map tasks one after another in the driver's process, which a gang cannot
do: it is refused.
"""

import logging
import os
import secrets
import select
import socket
import subprocess
import threading
import time

import numpy as np

from mrtrain.allreduce_address import default_address
from mrtrain.allreduce_gate import BACKLOG, Gate
from mrtrain.engine.folds import n_groups
from mrtrain.engine.metrics import metric_vector_length
from mrtrain.engine.models import PartialSums
from mrtrain.engine.params import check_number
from mrtrain.engine.registry import model_from_spec
from mrtrain.engine.standardization import feature_sums_length
from mrtrain.launcher import make_hdfs_staging, task_uri
from mrtrain.mr_jobs import allreduce_wire as wire
from mrtrain.mr_jobs.allreduce_job import MRAllReduce
from mrtrain.mr_jobs.evaluate import MREvaluate
from mrtrain.mr_jobs.feature_stats import MRFeatureStats
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.mr_jobs.grouped_gradient import MRGroupedGradient
from mrtrain.mr_jobs.partition_job import (
    NON_FINITE_COUNTERS,
    PartitionDataError,
    PartitionError,
    format_partition_line,
    sum_in_partition_order,
)
from mrtrain.storage.filesystem import get_filesystem, join, split_scheme
from mrtrain.storage.hdfs_fs import hadoop_conf_dir, hdfs_path
from mrtrain.yarn_capacity import hadoop_map_slots, site_properties

log = logging.getLogger(__name__)

#: Default seconds for every group to connect, and for a lost group to reconnect.
DEFAULT_TIMEOUT = 120.0
#: Map tasks on the hadoop runner when the ResourceManager cannot tell the cluster's capacity.
DEFAULT_HADOOP_TASKS = 2
#: Seconds between checks of the job and of lost groups while a pass waits.
POLL_SECONDS = 0.5
#: Least seconds to wait for the job to end after its tasks were told to stop.
JOB_END_SECONDS = 60.0
#: Name of the file holding the run's secret (a random suffix follows).
SECRET_FILE = "allreduce-secret"


def parse_address(text):
    """``HOST[:PORT]`` (``[V6ADDR]:PORT`` for IPv6) as ``(host, port)``; port 0 (any free port) by default.

    Raises
    ------
    ValueError
        Naming the parameter, the expected form and the value.
    """
    host, port = text, "0"
    if isinstance(text, str) and text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") if rest else "0"
        ok = rest == "" or rest.startswith(":")
    elif isinstance(text, str):
        if text.count(":") == 1:
            host, port = text.split(":")
        ok = text.count(":") <= 1
    else:
        ok = False
    if not (ok and host and port.isdigit() and int(port) <= 65535):
        raise ValueError(
            "The 'allreduce_address' parameter must be HOST or HOST:PORT ([IPV6]:PORT), PORT in 0..65535 (0: "
            f"any free port). Got {text!r} instead."
        )
    return host, int(port)


def local_map_slots(conf_path):
    """Map tasks mrjob's local runner runs at once: its ``num_cores`` option, else the machine's cores."""
    from mrjob.conf import load_opts_from_mrjob_confs

    cores = None
    for _, options in load_opts_from_mrjob_confs("local", [conf_path] if conf_path else None):
        cores = options.get("num_cores") or cores
    return int(cores or os.cpu_count() or 1)


def hadoop_jobconf(conf_path):
    """The AllReduce job's Hadoop settings: its ``JOBCONF``, updated with the mrjob config's ``jobconf``."""
    from mrjob.conf import load_opts_from_mrjob_confs

    jobconf = dict(MRAllReduce.JOBCONF)
    for _, options in load_opts_from_mrjob_confs("hadoop", [conf_path] if conf_path else None):
        jobconf.update({str(key): value for key, value in (options.get("jobconf") or {}).items()})
    return jobconf


def hadoop_tasks(conf_path, partitions):
    """Map tasks on the hadoop runner: as many as the cluster can run at once now, at most ``partitions``.

    The capacity comes from the ResourceManager (:func:`mrtrain.yarn_capacity.hadoop_map_slots`);
    when it cannot be asked, :data:`DEFAULT_HADOOP_TASKS`, with a warning saying why. A full cluster
    gives 1 (the task waits for a slot, up to the timeout).
    """
    try:
        slots, how = hadoop_map_slots(hadoop_jobconf(conf_path))
    except (OSError, ValueError) as error:
        tasks = min(partitions, DEFAULT_HADOOP_TASKS)
        log.warning("allreduce: could not read the cluster's map capacity (%s); using %d map tasks (set "
                    "--allreduce-tasks to choose)", error, tasks)
        return tasks
    tasks = max(1, min(slots, partitions))
    log.info("allreduce: room for %d map tasks at once (%s); using %d for %d partitions", slots, how, tasks,
             partitions)
    if slots < 1:
        log.warning("allreduce: the cluster has no free map slot next to the application master now; "
                    "starting 1 map task, which waits for one")
    return tasks


def group_partitions(partition_ids, n_groups):
    """Cut the partition ids, in order, into ``n_groups`` contiguous groups of nearly equal size."""
    return [[int(i) for i in group] for group in np.array_split(np.asarray(partition_ids), n_groups)]


class _Connection:
    """An authenticated task connection: its socket, group and attempt."""

    def __init__(self, sock, group, attempt):
        self.sock = sock
        self.group = group
        self.attempt = attempt

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def stop(self):
        """Tell the task to end (best effort), then close."""
        try:
            wire.send_message(self.sock, {"type": "stop"})
        except OSError:
            pass
        self.close()


class AllReduceSession:
    """The driver's side of AllReduce training over one :class:`~mrtrain.launcher.JobLauncher`.

    Use as a context manager: the first :meth:`sum_vector` binds the server, starts the job and waits for
    every group (a resumed training that has nothing left to do starts no job); every :meth:`sum_vector` is
    one pass; leaving tells the tasks to stop and waits for the job to end.

    Parameters
    ----------
    launcher : JobLauncher
        Its runner must be ``"local"`` or ``"hadoop"``.
    address : str, optional
        ``HOST[:PORT]`` the server binds; tasks connect to it (to this machine's name if HOST is a
        wildcard address). On a cluster: an address of the driver host the NodeManagers can reach.
        Default: :func:`mrtrain.allreduce_address.default_address` of the runner.
    tasks : int >= 1, optional
        Map tasks (groups of partitions), at most one per partition. Default: the local runner's cores, or
        on Hadoop the cluster's free map capacity (:func:`hadoop_tasks`).
    timeout : float > 0
        Seconds for every group to connect, and for a lost group to reconnect.
    """

    def __init__(self, launcher, *, address=None, tasks=None, timeout=DEFAULT_TIMEOUT, split=None):
        check_settings(runner=launcher.runner, address=address, tasks=tasks, timeout=timeout)
        self.launcher = launcher
        self.split = split
        self.bind_address = parse_address(default_address(launcher.runner) if address is None else address)
        self.timeout = timeout
        ids = [part.index for part in launcher.dataset.partitions]
        slots = tasks or (local_map_slots(launcher.conf_path) if launcher.runner == "local"
                          else hadoop_tasks(launcher.conf_path, len(ids)))
        self.groups = group_partitions(ids, max(1, min(slots, len(ids))))
        self.n_params, self.n_features = self._model_sizes(launcher.model_spec)
        self.secret = wire.new_secret()
        self.secret_uri = None
        self.private_dir = None
        self.passes = 0
        self.job = None
        self.job_id = None
        self.last_counters = []
        self.server = None
        self.port = None
        self._connections = {}
        #: Connections replaced by a newer one of their group, for the main thread to stop and close.
        self._superseded = []
        self._closed = False
        #: Connections admitted so far (0: no task ever reached the driver).
        self._admitted = 0
        #: ``HOST:PORT`` the tasks were told to connect to.
        self._connect_to = None
        self._gate = None
        self._cond = threading.Condition()

    def _model_sizes(self, spec):
        """``(n_params, n_features)`` of the model the passes are for."""
        model = model_from_spec(spec)
        return model.n_params, model.n_features

    def _job(self, settings):
        """``(job class, points, task)`` of the job that serves the passes (its task file's ``allreduce``
        object is ``settings``)."""
        return (MRAllReduce, np.zeros((0, self.n_params)),
                {"hessian": 0, "allreduce": settings, **({"split": self.split} if self.split else {})})

    # -- lifecycle -------------------------------------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        self.close(stop=exc_type is None)

    def open(self):
        """Bind the server, start the job, wait until every group's task has connected."""
        host, port = self.bind_address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.server = socket.create_server((host, port), family=family, backlog=BACKLOG)
        except OSError as error:
            raise OSError(f"--allreduce-address {host}:{port}: cannot listen for map tasks: {error}") \
                from None
        connect_host = host if host not in ("0.0.0.0", "::", "") else socket.getfqdn()
        port = self.port = self.server.getsockname()[1]
        self._connect_to = f"[{connect_host}]:{port}" if ":" in connect_host else f"{connect_host}:{port}"
        self._gate = Gate(self.server, self.secret, len(self.groups), self._admit, max(self.timeout, 60.0))
        self._gate.start()
        self.secret_uri = self._write_secret()
        partitions = {part.index: part for part in self.launcher.dataset.partitions}
        lines = [
            [format_partition_line(i, task_uri(partitions[i].uri), partitions[i].sha256, partitions[i].rows,
                                   partitions[i].bytes) for i in group]
            for group in self.groups
        ]
        settings = {
            "address": [connect_host, port], "secret_file": task_uri(self.secret_uri), "groups": lines,
            "read_timeout": max(self.timeout, 60.0), "idle_timeout": 3 * self.timeout + 60.0,
            "connect_timeout": self.timeout,
        }
        log.info("allreduce: %d map tasks (partition groups %s) connect to %s:%d", len(self.groups),
                 self.groups, connect_host, port)
        self.job = self.launcher.start(*self._job(settings), [f"{g:06d}" for g in range(len(self.groups))])
        self._wait_for_gang()

    def _write_secret(self):
        """Write the run's secret into a file only this user can read (0600 in a 0700 directory); its URI.

        Local runner: in the local staging directory. Hadoop runner: in the HDFS staging directory, or for
        a dataset outside HDFS in a new directory on the default filesystem (``fs.defaultFS``), removed by
        :meth:`close`. The tasks read it themselves, like their partitions: it is never in the task file,
        the distributed cache or a command line.
        """
        data = self.secret.encode("ascii")
        name = f"{SECRET_FILE}-{secrets.token_hex(8)}"  # one per session, should a launcher serve several
        if self.launcher.runner == "local":
            path = os.path.join(self.launcher.local_staging, name)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                handle.write(data)
            return path
        if self.launcher.on_hdfs:
            directory = self.launcher.staging
        else:
            conf_dir = hadoop_conf_dir()
            default_fs = site_properties(conf_dir).get("fs.defaultFS", "") if conf_dir else ""
            if split_scheme(default_fs) != "hdfs":
                raise OSError(
                    "--allreduce on the hadoop runner with a dataset outside HDFS keeps the run's secret in "
                    "a private HDFS directory: fs.defaultFS in the Hadoop configuration ($HADOOP_CONF_DIR) "
                    f"must be an hdfs:// URI. Got {default_fs!r} instead."
                )
            directory = self.private_dir = make_hdfs_staging(default_fs, permission="700")
        fs = get_filesystem(directory)
        fs._call("mkdir", directory, fs.client.makedirs, hdfs_path(directory), permission="700")
        fs._call("chmod", directory, fs.client.set_permission, hdfs_path(directory), "700")
        uri = join(directory, name)
        fs._call("write", uri, fs.client.write, hdfs_path(uri), data=data, overwrite=False, permission="600")
        return uri

    def _remove_secret(self):
        """Delete the secret file (and the directory made for it), best effort: the training has ended."""
        try:
            if self.private_dir is not None:
                get_filesystem(self.private_dir).delete(self.private_dir, recursive=True)
            elif self.secret_uri is not None:
                get_filesystem(self.secret_uri).delete(self.secret_uri)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.warning("allreduce: could not remove the secret file %s: %s", self.secret_uri, error)

    def _wait_for_gang(self):
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while len(self._connections) < len(self.groups):
                left = deadline - time.monotonic()
                if left <= 0 or self.job.done():
                    break
                self._cond.wait(min(left, POLL_SECONDS))
            connected = len(self._connections)
        if connected == len(self.groups):
            log.info("allreduce: all %d map tasks connected", connected)
            return
        self._raise_if_job_ended()
        if self._admitted == 0:
            raise TimeoutError(
                f"--allreduce: no map task reached {self._connect_to} within {self.timeout:g} s: pass "
                f"--allreduce-address with an address of this host that the NodeManagers reach (or, if the "
                f"tasks were still starting or waiting for map slots, a longer --allreduce-timeout, or train "
                f"without --allreduce){self._refusals()}"
            )
        raise TimeoutError(
            f"--allreduce: {connected} of {len(self.groups)} map tasks connected within {self.timeout:g} s "
            "(every task needs a map slot for the whole training); train without --allreduce (one job per "
            f"pass), or give the cluster more free map slots, or lower --allreduce-tasks{self._refusals()}"
        )

    def close(self, stop=True):
        """Close the server, tell every connected task to stop, and wait for the job to end.

        ``stop`` is False when training failed: then an error of the job itself is not worth a warning.
        Tasks that were not connected find nothing listening and end too.
        """
        with self._cond:
            self._closed = True
            connections = list(self._connections.values()) + self._superseded
            self._connections.clear()
            self._superseded = []
        if self._gate is not None:
            self._gate.close()
        elif self.server is not None:
            self.server.close()
        for connection in connections:
            connection.stop()
        if self.job is not None:
            if not self.job.wait(max(self.timeout, JOB_END_SECONDS)):
                self._kill_job()
            elif self.job.error is not None and stop:
                log.warning("allreduce: the job ended with an error after training: %s", self.job.error)
        self._remove_secret()

    def _kill_job(self):
        """End a job whose tasks did not all exit: ``hadoop job -kill`` on Hadoop (job id from the tasks)."""
        hadoop_fs = self.launcher.hadoop_fs
        if self.launcher.runner != "hadoop" or self.job_id is None or hadoop_fs is None:
            log.warning("allreduce: the job did not end within %g s after its tasks were told to stop",
                        max(self.timeout, JOB_END_SECONDS))
            return
        command = [*hadoop_fs.get_hadoop_bin(), "job", "-kill", self.job_id]
        log.warning("allreduce: the job did not end; killing it: %s", " ".join(command))
        try:
            subprocess.run(command, check=False, capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as error:
            log.warning("allreduce: could not kill %s: %s", self.job_id, error)
        self.job.wait(30.0)

    # -- connections -------------------------------------------------------------------------------------

    def _admit(self, sock, group, hello, peer):
        """Register a connection that passed the handshake (the gate's callback) under its group."""
        attempt, job = str(hello.get("attempt", ""))[:100], str(hello.get("job", ""))[:100]
        with self._cond:
            if self._closed:
                sock.close()
                return
            if group in self._connections:
                self._superseded.append(self._connections[group])
            self._connections[group] = _Connection(sock, group, attempt)
            self._admitted += 1
            if job.startswith("job_"):
                self.job_id = job
            self._cond.notify_all()
        log.info("allreduce: group %d connected from %s (%s)", group, peer, attempt or "attempt unknown")

    def _refusals(self):
        """``"; meanwhile N other connections to the port ..."`` if the gate refused any, else ``""``."""
        count, causes = self._gate.refusals() if self._gate is not None else (0, "")
        if not count:
            return ""
        return (f"; meanwhile the driver's port {self.port} refused {count} connections "
                f"that did not prove they belong to this run ({causes})")

    def _drop(self, connection, reason):
        """Forget a connection that failed; its group waits for a new attempt."""
        log.warning("allreduce: lost group %d (%s): %s; waiting up to %g s for a new attempt",
                    connection.group, connection.attempt, reason, self.timeout)
        connection.close()
        with self._cond:
            if self._connections.get(connection.group) is connection:
                del self._connections[connection.group]

    def _raise_if_job_ended(self):
        if not self.job.done():
            return
        if self.job.error is not None:
            raise self.job.error
        if self._admitted == 0:
            raise RuntimeError(
                f"--allreduce: the job ended and no map task reached {self._connect_to}: pass "
                "--allreduce-address with an address of this host that the NodeManagers reach"
                f"{self._refusals()}"
            )
        raise RuntimeError(
            f"--allreduce: the job ended while the training still needed its map tasks{self._refusals()}"
        )

    # -- passes ------------------------------------------------------------------------------------------

    def sum_vector(self, job_class, thetas, task):
        """One pass: the gradient job's total vector at ``thetas``, as ``JobLauncher.sum_vector`` gives it,
        or the feature statistics job's (:class:`MRFeatureStats`, ``thetas`` unused) that the optimizer's
        coordinates come from, or the evaluate job's (:class:`MREvaluate`, one point: the trained model's
        metric sums, without a job of its own).

        Parameters
        ----------
        job_class : MRGradient (MRGroupedGradient for a grid's session), MRFeatureStats or MREvaluate
        thetas : ndarray, shape (m, p)
        task : dict
            ``{"hessian": k}`` (a gradient pass).

        Returns
        -------
        ndarray
            Every partition's vector added in partition order, bitwise as the reducer adds them.
        """
        served = (MRGradient, MRFeatureStats, MREvaluate) if self.split is None else (MRGroupedGradient,
                                                                                      MRFeatureStats)
        if job_class not in served:
            raise ValueError(f"This AllReduce session serves {', '.join(job.__name__ for job in served)} "
                             f"passes. Got {job_class.__name__}.")
        points = np.ascontiguousarray(thetas, dtype=np.float64)
        if job_class is MREvaluate:
            if len(points) != 1:
                raise ValueError(f"A metrics pass takes one parameter point. Got {len(points)}.")
            request = {"type": "pass", "points": 1, "hessian": 0, "metrics": True}
            length = metric_vector_length(model_from_spec(self.launcher.model_spec))
        elif job_class is MRFeatureStats:
            request = {"type": "pass", "points": len(points), "hessian": 0,
                       "statistics": True}
            length = feature_sums_length(self.n_features)
        else:
            hessian = int(task["hessian"])
            request = {"type": "pass", "points": len(points), "hessian": hessian}
            one_group = PartialSums.zeros(len(points), self.n_params, hessian).to_vector().size
            length = n_groups(self.split) * one_group
        return self.serve_pass(request, points, length)

    def serve_pass(self, request, points, length):
        """Send the ``request`` (its ``"pass"`` set here) and ``points`` to every group; return every
        partition's answer (``length`` values each) added in partition order. Opens the session first if
        needed."""
        if self.server is None:
            self.open()
        self.passes += 1
        request = {**request, "pass": self.passes}
        answers = {}
        sent = {}
        lost_since = {}
        while len(answers) < len(self.groups):
            with self._cond:
                current = dict(self._connections)
                superseded, self._superseded = self._superseded, []
            for connection in superseded:
                connection.stop()  # a newer attempt of its group connected: that task must not come back
            now = time.monotonic()
            for group in range(len(self.groups)):
                if group in answers:
                    continue
                connection = current.get(group)
                if connection is None:
                    since = lost_since.setdefault(group, now)
                    if now - since > self.timeout:
                        raise TimeoutError(
                            f"--allreduce: the map task of partition group {group} (partitions "
                            f"{self.groups[group]}) was lost and no new attempt connected within "
                            f"{self.timeout:g} s; rerun the same command to resume from the last checkpoint"
                            f"{self._refusals()}"
                        )
                    continue
                lost_since.pop(group, None)
                if sent.get(group) is not connection:
                    if group in sent:
                        log.info("allreduce: sending pass %d again to group %d (%s)", self.passes, group,
                                 connection.attempt)
                    try:
                        wire.send_message(connection.sock, request, points)
                    except OSError as error:
                        self._drop(connection, error)
                        continue
                    sent[group] = connection
            waiting = {sent[g].sock: sent[g] for g in sent if g not in answers and current.get(g) is sent[g]}
            readable = select.select(list(waiting), [], [], POLL_SECONDS)[0] if waiting else []
            if not waiting:
                time.sleep(POLL_SECONDS)
            for sock in readable:
                connection = waiting[sock]
                answer = self._receive_answer(connection, length)
                if answer is not None:
                    answers[connection.group] = answer
            if len(answers) < len(self.groups):
                self._raise_if_job_ended()
        tagged = [pair for group in range(len(self.groups)) for pair in answers[group][0]]
        non_finite = sorted(i for group in answers.values() for i in group[1])
        self.last_counters = [{NON_FINITE_COUNTERS: {str(i): 1 for i in non_finite}}] if non_finite else []
        return sum_in_partition_order(tagged)[1]

    def _receive_answer(self, connection, length):
        """``([(partition id, vector), ...], non-finite ids)`` from ``connection``, or None if it dropped."""
        ids = self.groups[connection.group]
        try:
            header, payload = wire.receive_message(connection.sock, len(ids) * length * 8)
        except wire.ProtocolError as error:
            raise RuntimeError(f"allreduce: group {connection.group} sent a bad message: {error}") from None
        except (EOFError, OSError) as error:
            self._drop(connection, error)
            return None
        if header["type"] == "error":
            message = str(header.get("message", ""))[:2000]
            raise (PartitionDataError if header.get("data_error") else PartitionError)(message)
        if (header["type"] != "result" or header.get("pass") != self.passes or header.get("partitions") != ids
                or payload.size != len(ids) * length):
            raise RuntimeError(
                f"allreduce: group {connection.group} answered pass {self.passes} with "
                f"{header['type']!r:.20} for pass {header.get('pass')!r:.20}, partitions "
                f"{header.get('partitions')!r:.80} and {payload.size} values; expected partitions {ids} and "
                f"{len(ids) * length} values"
            )
        vectors = payload.reshape(len(ids), length)
        non_finite = [i for i, vector in zip(ids, vectors, strict=True) if not np.isfinite(vector).all()]
        return list(zip(ids, vectors, strict=True)), non_finite


def check_settings(*, runner, address, tasks, timeout):
    """Check the AllReduce settings of a trainer before anything runs; ValueError naming the parameter."""
    if runner not in ("local", "hadoop"):
        raise ValueError(
            "The 'allreduce' parameter needs the 'local' or 'hadoop' runner (the inline runner runs map "
            f"tasks one after another: a gang of tasks cannot run). Got runner={runner!r} instead."
        )
    if address is not None:
        parse_address(address)
    if tasks is not None and (isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 1):
        raise ValueError(
            f"The 'allreduce_tasks' parameter must be an int >= 1 or None. Got {tasks!r} instead."
        )
    check_number("allreduce_timeout", timeout, minimum=0, strictly=True)
