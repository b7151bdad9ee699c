"""mrjob's local runner with its tasks forked from a warm interpreter (:mod:`mrtrain.task_server`).

:class:`TaskServer` is the driver's handle on one server process: started by a
:class:`~mrtrain.launcher.JobLauncher` of the local runner (its imports overlap the driver's own work), its
socket in the launcher's staging directory, stopped when the launcher closes; or, inside
:func:`mrtrain.launcher.one_task_server` (every ``mrtrain`` command), one per block, shared by its
launchers; in any case it ends by itself when the driver dies.
:class:`WarmLocalRunner` is mrjob's :class:`~mrjob.local.LocalMRJobRunner` with two methods changed:

- ``_invoke_task_func``: a task whose command is ``<task python> <job script> ARGS`` runs in a child of the
  server (:func:`run_task`) instead of ``subprocess.check_call`` of that command; the same files, working
  directory and environment, and a non-zero exit is the same ``_TaskFailedException``. Any other command
  (a setup wrapper script) runs as mrjob runs it.
- ``_run_multiple``: a wave of tasks runs on ``num_cores`` threads of the driver, each waiting for its task,
  instead of a ``multiprocessing.Pool`` forked for every wave, whose workers receive the tasks pickled. As
  with the pool, the first task that fails ends the wave: the tasks still running are killed (their
  connections to the server closed, :class:`TaskWave`) and that failure is raised.

Everything else (working directories, input splits, the sort, counters, output) is mrjob's own, so a job
computes what it computes on the plain local runner, bit for bit.
"""

import concurrent.futures
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from functools import partial
from subprocess import CalledProcessError

from mrjob.local import LocalMRJobRunner, _invoke_task_in_subprocess, _TaskFailedException

from mrtrain.task_server import READY, recv_frame, send_frame

log = logging.getLogger(__name__)

#: Seconds a new server may take to import its modules and listen.
START_TIMEOUT = 120
#: Seconds :meth:`TaskServer.close` waits for the server to exit before killing it.
STOP_TIMEOUT = 5
#: Environment of the server besides the driver's: what the launcher gives every local task (one BLAS
#: thread, set before numpy loads; the standard library's distutils for mrjob below Python 3.12), and no
#: background thread in Arrow's jemalloc, so that the server has one thread when it forks (a fork of a
#: threaded process copies locks other threads may hold; Python 3.12 warns of it in every child).
SERVER_ENVIRONMENT = {
    "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    "JE_ARROW_MALLOC_CONF": "background_thread:false",
    **({"SETUPTOOLS_USE_DISTUTILS": "stdlib"} if sys.version_info < (3, 12) else {}),
}


class TaskServerError(RuntimeError):
    """The task server could not start, or ended while a task was running."""


class TaskServer:
    """One :mod:`mrtrain.task_server` process serving the tasks of one launcher's jobs.

    Parameters
    ----------
    directory : str
        A private (0700) directory for the server's socket, and its working directory (so that ``python -m``
        imports nothing from the driver's: a ``numpy.py`` there is no concern of the server's); the
        caller removes it.
    """

    def __init__(self, directory):
        self.address = os.path.join(directory, "task-server.sock")
        alive_r, self._alive_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mrtrain.task_server", self.address, str(alive_r)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, pass_fds=(alive_r,),
                env={**os.environ, **SERVER_ENVIRONMENT}, cwd=directory,
            )
        except BaseException:
            os.close(self._alive_w)
            raise
        finally:
            os.close(alive_r)
        self._ready = None
        self._lock = threading.Lock()

    @property
    def pid(self):
        return self.process.pid

    def wait_ready(self):
        """Block until the server listens. Raises :class:`TaskServerError` if it exited instead."""
        with self._lock:
            if self._ready is None:
                line = self.process.stdout.readline()
                self.process.stdout.close()
                self._ready = line == READY
                if not self._ready:
                    self.process.wait(STOP_TIMEOUT)
        if not self._ready:
            raise TaskServerError(
                f"the local runner's task server (pid {self.process.pid}) exited with status "
                f"{self.process.returncode} before listening"
            )

    def run(self, argv, cwd, env, stdin, stdout, stderr, wave=None):
        """Run the task ``python ARGV`` in a child of the server and return its exit status.

        ``stdin``, ``stdout`` and ``stderr`` are open files the task gets as its standard streams. A task of
        a ``wave`` (:class:`TaskWave`) that is cancelled is killed and returns ``-SIGKILL``.
        """
        self.wait_ready()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(self.address)
            try:
                if wave is not None and not wave.add(sock):
                    return -signal.SIGKILL
                send_frame(sock, {"argv": list(argv), "cwd": cwd, "env": dict(env)},
                           [stdin.fileno(), stdout.fileno(), stderr.fileno()])
                reply, _ = recv_frame(sock)
            except OSError:
                if wave is None or not wave.cancelled:
                    raise
                reply = None
            finally:
                if wave is not None:
                    wave.discard(sock)
        if reply is None and wave is not None and wave.cancelled:
            return -signal.SIGKILL
        if reply is None or not isinstance(reply.get("returncode"), int):
            raise TaskServerError(
                f"the local runner's task server (pid {self.process.pid}) ended while running {argv[0]}"
            )
        return reply["returncode"]

    def close(self):
        """Stop the server (closing its pipe ends it; killed after :data:`STOP_TIMEOUT` seconds, or at once if
        it has run no task)."""
        if self._alive_w is None:
            return
        os.close(self._alive_w)
        self._alive_w = None
        if self._ready is None:
            # Never asked to run a task (tasks wait for it to be ready): killed rather than waited for
            # through its imports, which may take seconds (a command that failed early).
            self.process.stdout.close()
            self.process.kill()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class TaskWave:
    """The connections of the tasks running in one wave, to end them all at once (:meth:`cancel`)."""

    def __init__(self):
        self.cancelled = False
        self._lock = threading.Lock()
        self._sockets = set()

    def add(self, sock):
        """Count ``sock``'s task in; False (and nothing added) once the wave is cancelled."""
        with self._lock:
            if not self.cancelled:
                self._sockets.add(sock)
            return not self.cancelled

    def discard(self, sock):
        with self._lock:
            self._sockets.discard(sock)

    def cancel(self):
        """Close every running task's connection (the server kills those tasks); start no more."""
        with self._lock:
            self.cancelled = True
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _invoke_task_in_server(server, wave, task_type, step_num, task_num, argv, num_steps,
                           stdin, stdout, stderr, wd, env):
    """mrjob's ``_invoke_task_in_subprocess`` with the task forked by ``server``."""
    returncode = server.run(argv, wd, env, stdin, stdout, stderr, wave)
    if returncode:
        raise _TaskFailedException(
            reason=str(CalledProcessError(returncode, argv)), step_num=step_num, num_steps=num_steps,
            task_type=task_type, task_num=task_num,
        )


class WarmLocalRunner(LocalMRJobRunner):
    """mrjob's local runner whose tasks are children of a :class:`TaskServer` (see the module docstring).

    Parameters
    ----------
    task_server : TaskServer
    **kwargs
        :class:`mrjob.local.LocalMRJobRunner`'s.
    """

    def __init__(self, task_server, **kwargs):
        super().__init__(**kwargs)
        self._task_server = task_server
        self._wave = TaskWave()

    def _invoke_task_func(self, task_type, step_num, task_num):
        args = self._substep_args(step_num, task_type)
        python = self._task_python_bin()
        if args[:len(python)] != python or python != [sys.executable]:
            return partial(_invoke_task_in_subprocess, task_type, step_num, task_num, args, self._num_steps())
        return partial(self._invoke_in_server, task_type, step_num, task_num, args[len(python):])

    def _invoke_in_server(self, task_type, step_num, task_num, argv, *streams):
        _invoke_task_in_server(self._task_server, self._wave, task_type, step_num, task_num, argv,
                               self._num_steps(), *streams)

    def _run_multiple(self, funcs, num_processes=None):
        """Run ``funcs`` on ``num_cores`` threads; the first failure cancels those not started and is
        raised."""
        workers = self._opts["num_cores"] or os.cpu_count() or 1
        self._wave = wave = TaskWave()
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="mrtrain-task") as pool:
            futures = [pool.submit(func) for func in funcs]
            try:
                concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
                failed = [future for future in futures if future.done() and future.exception() is not None]
                if failed:
                    failed[0].result()
            except BaseException:
                for future in futures:
                    future.cancel()
                wave.cancel()
                raise
