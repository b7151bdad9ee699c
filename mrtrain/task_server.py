"""The local runner's warm task server: a Python that imported what tasks import, forking a process per task.

A task of mrjob's local runner is ``python <job script> --step-num=N --mapper ...`` in a fresh interpreter,
which imports numpy, pyarrow, mrjob and mrtrain's job modules again in every task of every pass (a few tenths
of a second each). :class:`mrtrain.local_runner.TaskServer` starts this module once per
:class:`~mrtrain.launcher.JobLauncher` (``python -m mrtrain.task_server SOCKET ALIVE_FD``); it imports
:data:`PRELOAD`, listens on a Unix socket inside the launcher's 0700 staging directory, and for every task
forks a child that becomes what the fresh interpreter would have been: the task's standard input, output and
error (file descriptors passed with the request, ``SCM_RIGHTS``), working directory, environment,
``sys.argv`` and ``sys.path``, then runs the job script as ``__main__`` and exits with its status.

Each task is still its own process, forked from a server that has run no task, so no task sees another's
state; the server forks from its only thread (it exits before listening if its imports left another
running), so no child inherits a lock held by a thread it does not have. Nothing is pickled: a request is
one JSON object ``{"argv", "cwd", "env"}`` and a reply ``{"returncode"}``, each framed as a 4-byte
little-endian length (at most :data:`MAX_FRAME_BYTES`) and the bytes. The server accepts connections
only from its own user (``SO_PEERCRED``).

Lifetime: the driver holds the write end of a pipe whose read end the server watches. When the driver exits,
however it exits (SIGKILL too), the pipe reaches end of file and the server kills its running tasks and
exits; on Linux the server also asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``), and
each task the same of the server. A task whose client hangs up (the driver gave up on the job) is killed.
"""

import ctypes
import importlib
import io
import json
import logging
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import tempfile
import traceback

from threadpoolctl import threadpool_info

log = logging.getLogger(__name__)

#: Modules the server imports before serving: everything a task of an mrtrain job imports.
PRELOAD = (
    "numpy", "pyarrow", "pyarrow.parquet", "scipy.sparse", "threadpoolctl", "mrjob.job", "mrjob.protocol",
    "mrjob.step", "mrtrain.storage.local_fs", "mrtrain.storage.dataset", "mrtrain.mr_jobs.allreduce_job",
    "mrtrain.mr_jobs.evaluate",
    "mrtrain.mr_jobs.feature_stats", "mrtrain.mr_jobs.gradient", "mrtrain.mr_jobs.grouped_evaluate",
    "mrtrain.mr_jobs.grouped_gradient", "mrtrain.mr_jobs.kmeans_job", "mrtrain.mr_jobs.kmeans_predict",
    "mrtrain.mr_jobs.naive_bayes_job", "mrtrain.mr_jobs.online_init", "mrtrain.mr_jobs.predict",
)
#: A request or reply larger than this is refused (a request holds the task's argv and environment).
MAX_FRAME_BYTES = 4 * 2**20
#: What the server writes on its standard output once it listens.
READY = b"ready\n"
_HEADER = struct.Struct("<I")
_PR_SET_PDEATHSIG = 1


def send_frame(sock, payload, fds=()):
    """Send ``payload`` (a JSON-able dict) as one frame, with ``fds`` passed alongside (``SCM_RIGHTS``)."""
    data = json.dumps(payload).encode("utf-8")
    if len(data) > MAX_FRAME_BYTES:
        raise ValueError(f"A task server frame holds at most {MAX_FRAME_BYTES} bytes. Got {len(data)}.")
    frame = _HEADER.pack(len(data)) + data
    sent = socket.send_fds(sock, [frame], list(fds)) if fds else sock.send(frame)
    sock.sendall(frame[sent:])


def recv_frame(sock, max_fds=0):
    """Receive one frame: ``(dict, fds)``, or ``(None, [])`` at end of stream before a frame starts.

    Raises
    ------
    ValueError
        If the frame is cut short, too long or not a JSON object.
    """
    if max_fds:
        data, fds, _, _ = socket.recv_fds(sock, 65536, max_fds)
    else:
        data, fds = sock.recv(65536), []
    if not data:
        return None, fds
    while len(data) < _HEADER.size:
        more = sock.recv(65536)
        if not more:
            raise ValueError("task server frame: expected a 4-byte length, found end of stream")
        data += more
    (length,) = _HEADER.unpack_from(data)
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"task server frame: expected at most {MAX_FRAME_BYTES} bytes, found a length of "
                         f"{length}")
    while len(data) < _HEADER.size + length:
        more = sock.recv(min(65536, _HEADER.size + length - len(data)))
        if not more:
            raise ValueError(f"task server frame: expected {length} bytes, found end of stream")
        data += more
    message = json.loads(data[_HEADER.size:_HEADER.size + length])
    if not isinstance(message, dict):
        raise ValueError(f"task server frame: expected a JSON object, found {type(message).__name__}")
    return message, fds


def die_with_parent():
    """Ask Linux to SIGKILL this process when its parent exits (elsewhere: nothing); True if asked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _exit_code(error):
    """The status ``SystemExit(error.code)`` gives an interpreter, printing a message code as Python does."""
    code = error.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def run_task(request, fds, base_path, sigint=signal.default_int_handler):
    """In a forked child: become the task ``request`` describes and run it; never returns.

    ``sigint`` is the SIGINT handler a fresh Python would have had: Python's own, or SIG_IGN where the
    driver was started with SIGINT ignored (a background job of a shell)."""
    status = 1
    try:
        die_with_parent()
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, sigint)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # chosen again from this environment's TMPDIR
        script, *args = request["argv"]
        extra = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
        sys.path[:] = [os.path.dirname(os.path.abspath(script)), *extra,
                       *(path for path in base_path if path not in extra)]
        sys.argv = [script, *args]
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
        sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)))
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(
            io.BufferedWriter(io.FileIO(2, "w", closefd=False)), errors="backslashreplace",
            line_buffering=True,
        )
        try:
            runpy.run_path(script, run_name="__main__")
            status = 0
        except SystemExit as error:
            status = _exit_code(error)
        except BaseException:  # noqa: BLE001 - printed as the interpreter prints an uncaught exception
            traceback.print_exc()
            status = 1
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                status = status or 120
    finally:
        os._exit(status)


class _Server:
    """The accept / fork / reap loop (see the module docstring)."""

    def __init__(self, listener, alive_fd, sigint):
        self.listener = listener
        self.sigint = sigint
        self.alive_fd = alive_fd
        self.base_path = [path for path in sys.path[1:]
                          if path not in os.environ.get("PYTHONPATH", "").split(os.pathsep)]
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.selector = selectors.DefaultSelector()
        self.tasks = {}  # pid -> connection (None once the client hung up)

    def serve(self):
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.alive_fd, selectors.EVENT_READ, "alive")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "child")
        while True:
            for key, _ in self.selector.select():
                if key.data == "alive":
                    self.stop()
                    return
                if key.data == "accept":
                    self.accept()
                elif key.data == "child":
                    while os.read(self.wake_r, 4096) == 4096:
                        pass
                else:
                    self.hung_up(key.fileobj, key.data)
            self.reap()

    def accept(self):
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        fds = []
        try:
            conn.settimeout(10)
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
            if uid != os.getuid():
                raise ValueError(f"task server: a connection from uid {uid}, expected {os.getuid()}")
            request, fds = recv_frame(conn, max_fds=3)
            if request is None or len(fds) != 3:
                raise ValueError(f"task server: expected a request with 3 file descriptors, found {len(fds)}")
            pid = os.fork()
        except (OSError, ValueError) as error:
            log.warning("%s", error)
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        if pid == 0:
            self.listener.close()
            conn.close()
            self.selector.close()
            for fd in (self.alive_fd, self.wake_r, self.wake_w):
                os.close(fd)
            for other in self.tasks.values():
                if other is not None:
                    other.close()
            run_task(request, fds, self.base_path, self.sigint)
        for fd in fds:
            os.close(fd)
        self.tasks[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, pid)

    def hung_up(self, conn, pid):
        """The client of task ``pid`` closed its connection before the task ended: kill the task."""
        self.selector.unregister(conn)
        conn.close()
        self.tasks[pid] = None
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def reap(self):
        for pid in list(self.tasks):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 255 << 8
            if not done:
                continue
            conn = self.tasks.pop(pid)
            if conn is not None:
                self.selector.unregister(conn)
                try:
                    send_frame(conn, {"returncode": os.waitstatus_to_exitcode(status)})
                except OSError:
                    pass
                conn.close()

    def stop(self):
        """The driver is gone: kill every running task, wait for them, and return."""
        for pid in self.tasks:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in self.tasks:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.tasks.clear()


def thread_names():
    """The names of this process's operating-system threads (``/proc/self/task``; ``[]`` where absent)."""
    try:
        tasks = sorted(os.listdir("/proc/self/task"), key=int)
    except OSError:
        return []
    names = []
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                names.append(comm.read().strip())
        except OSError:
            pass
    return names


def main(argv=None):
    """``python -m mrtrain.task_server SOCKET_PATH ALIVE_FD``: serve until ALIVE_FD reaches end of file."""
    socket_path, alive_fd = (argv or sys.argv[1:])[:2]
    alive_fd = int(alive_fd)
    parent = os.getppid()
    die_with_parent()
    sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server outlives a Ctrl-C; its tasks do not
    if os.getppid() != parent:
        return 0
    for name in PRELOAD:
        importlib.import_module(name)
    threadpool_info()  # threadpoolctl's first look at the loaded libraries (otherwise every task's)
    threads = thread_names()
    if len(threads) > 1:
        log.error("the task server has threads %s after its imports and forks only from one thread",
                  ", ".join(threads))
        return 1
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    listener.setblocking(False)
    try:
        os.write(1, READY)
    except BrokenPipeError:  # the driver stopped the server before it was ready: nothing to serve
        listener.close()
        os.unlink(socket_path)
        return 0
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        _Server(listener, alive_fd, sigint).serve()
    finally:
        listener.close()
        try:
            os.unlink(socket_path)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
