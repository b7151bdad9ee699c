"""AllReduce job: one map-only job serves every data pass of a training over TCP.

Vowpal Wabbit's "Hadoop-compatible AllReduce" (Agarwal et al., JMLR 2014): instead of one MapReduce job per
pass, the driver (:mod:`mrtrain.allreduce`) starts this job once. Its input has one line per *group*
of partitions (the group id; on Hadoop ``NLineInputFormat`` gives each line its own map task). Each map
task reads its group's partitions once (through the same reading, checking and partition cache as
:mod:`mrtrain.mr_jobs.gradient`), connects to the driver at the address in the task file, proves it
belongs to this run (:mod:`mrtrain.mr_jobs.allreduce_wire`), then serves passes: it receives the parameter
points and the Hessian count, computes every partition's vector with :meth:`MRGradient.partial_vector`
(the job-per-pass code, on one BLAS thread; with the task's row ``split``, a grid's per-group sums:
:func:`mrtrain.mr_jobs.grouped_gradient.grouped_vector`; a statistics pass: the feature statistics job's
vector; a metrics pass at the trained model: the evaluate job's) and sends back the partition ids and their
vectors, which the driver adds in partition order. ``stop`` ends the task, and so does no message for the task
file's ``idle_timeout`` seconds. A task whose connection breaks connects again: a live driver sends it the
current pass again; a driver that is gone refuses the connection, and the task ends. A task never outlives its
driver. A handshake that fails otherwise (the driver, flooded by other connections, closed it; it did not
complete in time) is tried again with exponential backoff for the task file's ``connect_timeout`` seconds.

While it waits, a task reports its status to Hadoop (``set_status``) every :data:`STATUS_SECONDS`, so the
framework's task timeout does not kill an idle but healthy task. A partition with bad data is reported to
the driver (which stops with that one line) before the task fails; any other failure just fails the
attempt, and the retry loads its partitions, reconnects under the same group id and gets the current pass.

The task file's ``allreduce`` object: ``address`` ``[host, port]``, ``secret_file`` (a local path or
``hdfs://`` URI of the owner-only file holding the run's secret, which the task reads itself, as it reads
its partitions), ``groups`` (per group, its partition-list lines), ``idle_timeout``, ``read_timeout`` and
``connect_timeout`` (seconds).
"""

import mrtrain.mr_jobs  # noqa: F401  (first: mrtrain/__init__.py provides what mrjob needs, mrtrain._mrjob_compat)

# isort: split
import logging
import os
import random
import re
import secrets
import select
import time

from mrjob.step import MRStep

from mrtrain.engine.metrics import metric_partials
from mrtrain.mr_jobs import allreduce_wire as wire
from mrtrain.mr_jobs.evaluate import checked_finite
from mrtrain.mr_jobs.feature_stats import feature_sums_vector
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.mr_jobs.grouped_gradient import grouped_vector
from mrtrain.mr_jobs.partition_job import _attempt_number, failures_named, single_threaded_blas
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import get_filesystem

log = logging.getLogger(__name__)

#: Environment variable naming a group whose first task attempt fails after answering its first gradient
#: pass (fault tests: Hadoop retries the attempt, which must rejoin the training).
FAULT_GROUP_ENV = "MRTRAIN_FAULT_FAIL_ALLREDUCE_GROUP"
#: Seconds between status reports while a task waits for the driver.
STATUS_SECONDS = 10.0
#: Seconds to connect, and then to complete the whole handshake. (A listening socket can outlive the driver
#: in forked processes, mrjob's local task pool: then connecting succeeds but nobody answers.)
HANDSHAKE_SECONDS = 10.0
#: Seconds before the first retry of a failed handshake; each retry waits twice as long, at most
#: :data:`MAX_RETRY_SECONDS`, less a random part (so tasks that failed together do not retry together).
FIRST_RETRY_SECONDS = 0.2
MAX_RETRY_SECONDS = 5.0
#: Most parameter points one pass may carry.
MAX_POINTS = 4096
#: Reconnections in a row, without a pass served in between, before a task gives up.
MAX_RECONNECTS = 5


def read_secret(uri):
    """The run's secret (hex) from the private file the driver wrote (local path or ``hdfs://`` URI).

    Raises
    ------
    ValueError
        If the file does not hold ``2 * SECRET_BYTES`` hex digits.
    """
    text = get_filesystem(uri).read_bytes(uri, max_bytes=4 * wire.SECRET_BYTES).decode("ascii", "replace")
    if not re.fullmatch(f"[0-9a-f]{{{2 * wire.SECRET_BYTES}}}", text):
        raise ValueError(f"{uri}: expected the run's secret as {2 * wire.SECRET_BYTES} hex digits")
    return text


def group_id(line):
    """The group id on an input line (the last tab-separated field: Hadoop prefixes a byte offset)."""
    return int(line.rstrip("\r\n").rsplit("\t", 1)[-1])


class MRAllReduce(MRGradient):
    """Map tasks that hold their partitions and serve the driver's passes until it says stop."""

    JOBCONF = {**MRGradient.JOBCONF, "mapreduce.map.speculative": "false"}

    def steps(self):
        return [MRStep(mapper_init=self.mapper_init_load_task, mapper=self.mapper_serve_passes)]

    def partial_vector(self, X, y, w):
        """The gradient job's vector, or with the task's row ``split`` the grouped gradient job's."""
        split = self.task.get("split")
        if split is None:
            return super().partial_vector(X, y, w)
        return grouped_vector(self.model, split, self.partition_id, X, y, w, self.thetas,
                              self.task["hessian"])

    def mapper_serve_passes(self, _, line):
        group = group_id(line)
        settings = {**self.task["allreduce"], "secret": read_secret(self.task["allreduce"]["secret_file"])}
        partitions, error = self.load_group(settings["groups"][group])
        passes, ended, reconnects = 0, False, 0
        while not ended and reconnects <= MAX_RECONNECTS:
            sock = self.connect_to_driver(settings, group)
            if sock is None:
                break
            with sock:
                if error is not None:
                    wire.send_message(sock, {"type": "error", "data_error": True, "message": str(error)})
                    raise error
                served, ended = self.serve_passes(sock, settings, group, partitions)
            passes += served
            reconnects = 0 if served else reconnects + 1
        self.increment_counter("mrtrain allreduce", "passes served", passes)
        yield from ()

    def load_group(self, lines):
        """Read the group's partitions: ``([(id, uri, X, y, w), ...], None)``, or ``(partial, DataError)``."""
        partitions = []
        try:
            for line in lines:
                partition_id, uri, X, y_raw, w = self.read_partition_line(line)
                partitions.append((partition_id, uri, X, self.encoded_labels(partition_id, uri, y_raw), w))
        except DataError as error:
            return partitions, error
        return partitions, None

    def connect_to_driver(self, settings, group):
        """An authenticated connection to the driver, or None if it is gone.

        A connection refused means nothing listens there (the driver listens before it starts the job, and
        stops listening only when it ends): the driver is gone. Any other failure (the driver busy with
        other connections hung up, a handshake that did not complete within :data:`HANDSHAKE_SECONDS`)
        is tried again with exponential backoff for the task file's ``connect_timeout`` seconds (the gang
        timeout, for which the driver waits for a task).
        """
        address = tuple(settings["address"])
        give_up = time.monotonic() + settings["connect_timeout"]
        delay, tries = FIRST_RETRY_SECONDS, 0
        while True:
            tries += 1
            try:
                sock = wire.connect(address, timeout=HANDSHAKE_SECONDS)
            except ConnectionRefusedError as error:
                log.warning("allreduce group %d: nothing listens at %s:%s (%s): the driver is gone; exiting",
                            group, *address, error)
                return None
            except OSError as error:
                failure = error
            else:
                try:
                    self.prove_membership(sock, settings["secret"], group,
                                          time.monotonic() + HANDSHAKE_SECONDS)
                    sock.settimeout(settings["read_timeout"])
                    return sock
                except wire.ProtocolError:
                    sock.close()
                    raise
                except (EOFError, OSError) as error:
                    sock.close()
                    failure = error
            wait = min(delay, MAX_RETRY_SECONDS) * random.uniform(0.5, 1.0)
            if time.monotonic() + wait > give_up:
                log.warning("allreduce group %d: no handshake with the driver at %s:%s completed in %d "
                            "tries over %g s (last: %s); exiting", group, *address, tries,
                            settings["connect_timeout"], failure)
                return None
            log.info("allreduce group %d: the handshake with the driver failed (%s); trying again in %.1f s",
                     group, failure, wait)
            time.sleep(wait)
            delay *= 2

    def prove_membership(self, sock, secret, group, deadline):
        """The task's side of the handshake (see :mod:`mrtrain.mr_jobs.allreduce_wire`), by ``deadline``."""
        header, _ = wire.receive_message(sock, 0, deadline)
        wire.expect(header, "challenge")
        if header.get("protocol") != wire.PROTOCOL:
            raise wire.ProtocolError(
                f"expected protocol {wire.PROTOCOL}, found {header.get('protocol')!r:.20}"
            )
        driver_nonce = wire.nonce_from(header, "nonce")
        task_nonce = secrets.token_bytes(wire.NONCE_BYTES)
        wire.send_message(sock, {
            "type": "hello", "group": group, "nonce": task_nonce.hex(),
            "mac": wire.task_mac(secret, driver_nonce, task_nonce, group),
            "attempt": os.environ.get("mapreduce_task_attempt_id", ""),
            "job": os.environ.get("mapreduce_job_id", ""),
        })
        header, _ = wire.receive_message(sock, 0, deadline)
        wire.expect(header, "welcome")
        if not wire.macs_equal(wire.driver_mac(secret, driver_nonce, task_nonce, group), header.get("mac")):
            raise wire.ProtocolError("the driver's proof does not match this run's secret")

    def next_message(self, sock, settings, group, passes):
        """The driver's next message, reporting status while waiting; ``"idle"`` after ``idle_timeout``
        seconds without one, ``"lost"`` if the connection broke."""
        idle = 0.0
        while True:
            started = time.monotonic()
            readable, _, _ = select.select([sock], [], [], STATUS_SECONDS)
            if readable:
                break
            idle += time.monotonic() - started
            if idle > settings["idle_timeout"]:
                log.warning("allreduce group %d: no message from the driver for %.0f s; exiting", group, idle)
                return "idle"
            self.set_status(f"allreduce group {group}: {passes} passes served, waiting for the driver")
        try:
            return wire.receive_message(sock, self.max_payload_bytes())
        except (TimeoutError, EOFError, ConnectionError) as error:
            log.warning("allreduce group %d: the connection to the driver broke (%s)", group, error)
            return "lost"

    def serve_passes(self, sock, settings, group, partitions):
        """Answer pass requests on one connection.

        Returns
        -------
        passes : int
            Passes served.
        ended : bool
            True after ``stop`` or ``idle_timeout``; False if the connection broke (the task reconnects:
            a driver that is gone refuses it, a live one sends it the current pass again).
        """
        passes = 0
        while True:
            message = self.next_message(sock, settings, group, passes)
            if isinstance(message, str):
                return passes, message == "idle"
            header, payload = message
            del message
            if header["type"] == "stop":
                return passes, True
            wire.expect(header, "pass")
            try:
                other = self.answer_request(sock, header, payload, partitions)
            except wire.ProtocolError:
                raise  # a bad request, not a broken connection
            except OSError as error:
                log.warning("allreduce group %d: the connection to the driver broke (%s)", group, error)
                return passes, False
            del payload  # nothing of a pass is held while waiting for the next one
            passes += 1
            if os.environ.get(FAULT_GROUP_ENV) == str(group) and _attempt_number() == 0 and not other:
                raise RuntimeError(
                    f"failing the first attempt after its first gradient pass on purpose ({FAULT_GROUP_ENV})"
                )

    def max_payload_bytes(self):
        """The largest pass payload this task reads: :data:`MAX_POINTS` parameter points."""
        return min(wire.MAX_POINTS_BYTES, MAX_POINTS * self.model.n_params * 8)

    def answer_request(self, sock, header, payload, partitions):
        """Check a ``pass`` request and answer it (:meth:`answer_pass`); whether it was a statistics or
        metrics pass (not a gradient pass).

        Raises
        ------
        mrtrain.mr_jobs.allreduce_wire.ProtocolError
            A request that is no pass of 1..:data:`MAX_POINTS` points and 0..points Hessians.
        OSError
            The connection broke.
        """
        p = self.model.n_params
        points, hessian = header.get("points"), header.get("hessian")
        if not (isinstance(points, int) and 1 <= points <= MAX_POINTS and payload.size == points * p
                and isinstance(hessian, int) and 0 <= hessian <= points):
            raise wire.ProtocolError(
                f"expected a pass of 1..{MAX_POINTS} points of {p} parameters and 0..points Hessians, "
                f"found points={points!r:.20}, hessian={hessian!r:.20}, {payload.size} values"
            )
        # A statistics pass (the driver's first, when the optimizer runs in standardized coordinates)
        # returns the feature statistics job's vector instead of the gradient job's; a metrics pass (the
        # driver's last, at the trained model) the evaluate job's.
        statistics = header.get("statistics") is True
        metrics = header.get("metrics") is True
        if metrics and (points != 1 or hessian != 0 or statistics):
            raise wire.ProtocolError(f"expected a metrics pass of 1 point and no Hessian, found "
                                     f"points={points!r:.20}, hessian={hessian!r:.20}")
        self.task["hessian"] = hessian
        partial = (feature_sums_vector if statistics else self.metric_vector if metrics
                   else self.partial_vector)
        self.answer_pass(sock, header, payload.reshape(points, p), partitions, partial)
        return statistics or metrics

    def metric_vector(self, X, y, w):
        """The evaluate job's vector (:class:`~mrtrain.mr_jobs.evaluate.MREvaluate`) at the one point."""
        return checked_finite(metric_partials(self.model, X, y, w, self.thetas[0]))

    def answer_pass(self, sock, header, thetas, partitions, partial):
        """Compute every partition's vector ``partial(X, y, w)`` at ``thetas`` (m, p) and send them as one
        ``result`` message.

        The vectors go to the socket one after another (:func:`wire.send_message`), never copied into one
        array; the points are dropped once the answer is sent. Raises OSError if the connection broke.
        """
        self.thetas = thetas
        vectors = []
        try:
            for partition_id, uri, X, y, w in partitions:
                self.partition_id = partition_id
                with failures_named(partition_id, uri), single_threaded_blas():
                    vectors.append(partial(X, y, w))
            wire.send_message(sock, {
                "type": "result", "pass": header.get("pass"), "partitions": [part[0] for part in partitions],
            }, vectors)
        finally:
            self.thetas = thetas[:0].copy()


if __name__ == "__main__":
    MRAllReduce.run()
