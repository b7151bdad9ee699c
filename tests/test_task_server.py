"""The local runner's warm task server: a task forked from it is the process a fresh Python would have been
(argv, working directory, environment, standard streams, exit status), each task its own process, the same
bits as a Python per task and as the inline runner, and nothing left running when the driver is killed."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

from mrtrain import launcher as launcher_module
from mrtrain.cli import main
from mrtrain.launcher import STAGING_PREFIX, JobLauncher, one_task_server
from mrtrain.local_runner import TaskServer
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.storage.dataset import Dataset, write_dataset
from mrtrain.task_server import send_frame

PROBE = textwrap.dedent("""
    import json, os, signal, sys
    import mrtrain.mr_jobs.partition_job as partition_job
    seen = getattr(partition_job, "_probe_mark", None)
    partition_job._probe_mark = os.getpid()
    sys.stderr.write("to stderr \\u00e9\\n")
    print(json.dumps({
        "argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0], "probe": os.environ.get("PROBE_VAR"),
        "stdin": sys.stdin.read(), "main": __name__, "seen": seen, "pid": os.getpid(), "ppid": os.getppid(),
        "sigint": str(signal.getsignal(signal.SIGINT)),
    }))
    if len(sys.argv) > 1 and sys.argv[1] == "raise":
        raise KeyError("boom")
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
""")


@pytest.fixture
def server(tmp_path):
    server = TaskServer(str(tmp_path))
    server.wait_ready()
    yield server
    server.close()


def run_both(server, tmp_path, args, name):
    """Run the probe with ``args`` through ``server`` and as ``python probe.py args``: (status, out, err)
    each."""
    work = tmp_path / name
    work.mkdir()
    (work / "probe.py").write_text(PROBE)
    (work / "in.txt").write_text("line one\nline two\n")
    env = {**os.environ, "PROBE_VAR": "value \u00e9", "PYTHONPATH": str(work)}
    results = []
    for how in ("server", "python"):
        out, err = work / f"{how}.out", work / f"{how}.err"
        with open(work / "in.txt", "rb") as stdin, open(out, "wb") as stdout, open(err, "wb") as stderr:
            if how == "server":
                status = server.run(["probe.py", *args], str(work), env, stdin, stdout, stderr)
            else:
                status = subprocess.call([sys.executable, "probe.py", *args], cwd=work, env=env,
                                         stdin=stdin, stdout=stdout, stderr=stderr)
        results.append((status, out.read_bytes(), err.read_bytes()))
    return results


def facts(output):
    found = json.loads(output)
    return {key: value for key, value in found.items() if key not in ("pid", "ppid")}


@pytest.mark.parametrize("args, status", [([], 0), (["3"], 3), (["raise"], 1)])
def test_a_task_is_what_a_fresh_python_would_have_been(server, tmp_path, args, status):
    (warm_status, warm_out, warm_err), (cold_status, cold_out, cold_err) = run_both(
        server, tmp_path, args, f"case{len(args)}{''.join(args)}"
    )
    assert warm_status == cold_status == status
    assert facts(warm_out) == facts(cold_out)
    assert facts(warm_out)["probe"] == "value \u00e9" and facts(warm_out)["stdin"] == "line one\nline two\n"
    assert facts(warm_out)["seen"] is None and facts(warm_out)["main"] == "__main__"
    # Python's own handler, unless the suite itself was started with SIGINT ignored (a background job):
    # then a fresh Python keeps ignoring it, and so must a task.
    started_ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert facts(warm_out)["sigint"] == str(signal.SIG_IGN if started_ignored else signal.default_int_handler)
    assert warm_err.splitlines()[0] == cold_err.splitlines()[0] == "to stderr \u00e9".encode()
    # An uncaught exception: the traceback's last line, as the interpreter prints it.
    assert warm_err.splitlines()[-1:] == cold_err.splitlines()[-1:]


def test_a_ctrl_c_reaches_a_task_as_it_would_a_fresh_python_also_when_ignored(tmp_path):
    """A driver started with SIGINT ignored (a shell's background job) has tasks that ignore it too."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        server = TaskServer(str(tmp_path))
        try:
            server.wait_ready()
            (warm, _, _), (cold, _, _) = [(json.loads(out), status, err)
                                          for status, out, err in run_both(server, tmp_path, [], "ignored")]
        finally:
            server.close()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert warm["sigint"] == cold["sigint"] == str(signal.SIG_IGN)


def test_each_task_is_its_own_child_of_a_server_no_task_changed(server, tmp_path):
    first = json.loads(run_both(server, tmp_path, [], "one")[0][1])
    second = json.loads(run_both(server, tmp_path, [], "two")[0][1])
    assert first["ppid"] == second["ppid"] == server.pid
    assert len({first["pid"], second["pid"], server.pid, os.getpid()}) == 4
    # The first task marked a module it imported; the second, forked later, does not see the mark.
    assert first["seen"] is None and second["seen"] is None


def alive(pid):
    """Whether ``pid`` runs (a zombie waiting for a parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def wait_file(path, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (path.exists() and path.read_text().strip()):
        time.sleep(0.05)
    return int(path.read_text())


SLEEPER = "import os, sys, time\nopen(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))\n" \
          "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\ntime.sleep(120)\n"


def test_a_task_whose_client_hangs_up_is_killed(server, tmp_path):
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    pid_file = tmp_path / "task.pid"
    with open(os.devnull, "rb") as stdin, open(os.devnull, "wb") as out, \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(server.address)
        request = {"argv": ["sleeper.py", str(pid_file)], "cwd": str(tmp_path), "env": dict(os.environ)}
        send_frame(sock, request, [stdin.fileno(), out.fileno(), out.fileno()])
        task = wait_file(pid_file)
        assert alive(task)
    assert wait_gone([task]) == []
    assert alive(server.pid)


DRIVER = textwrap.dedent("""
    import os, sys, threading
    import numpy as np
    from mrtrain.launcher import JobLauncher
    from mrtrain.storage.dataset import write_dataset
    work = sys.argv[1]
    dataset = write_dataset(os.path.join(work, "data"), np.zeros((4, 2)), np.zeros(4), partitions=2)
    launcher = JobLauncher(dataset, {"kind": "linear", "n_features": 2, "classes": None,
                                     "fit_intercept": True}, runner="local")
    launcher.task_server.wait_ready()
    with open(os.path.join(work, "server.pid"), "w") as handle:
        handle.write(str(launcher.task_server.pid))
    stdin, out = open(os.devnull, "rb"), open(os.devnull, "wb")
    launcher.task_server.run(["sleeper.py", os.path.join(work, "task.pid")], work, dict(os.environ),
                             stdin, out, out)
""")


def test_a_killed_driver_leaves_no_server_and_no_task_running(tmp_path):
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    (tmp_path / "driver.py").write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(tmp_path)])
    try:
        server, task = wait_file(tmp_path / "server.pid"), wait_file(tmp_path / "task.pid")
        assert alive(server) and alive(task)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert wait_gone([server, task]) == []


def test_closing_the_launcher_stops_its_server(tmp_path):
    dataset = write_dataset(str(tmp_path / "data"), np.zeros((4, 2)), np.zeros(4), partitions=2)
    spec = {"kind": "linear", "n_features": 2, "classes": None, "fit_intercept": True}
    launcher = JobLauncher(dataset, spec, runner="local")
    server = launcher.task_server
    server.wait_ready()
    assert os.path.exists(server.address)
    launcher.close()
    assert server.process.returncode == 0
    assert not os.path.exists(launcher.local_staging)


@pytest.mark.parametrize("reducers", [0, 2])
def test_warm_tasks_python_per_task_and_inline_give_the_same_bits(tmp_path, reducers):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(301, 5))
    y = rng.integers(0, 3, size=301).astype(float)
    dataset = write_dataset(str(tmp_path / "data"), X, y, partitions=5)
    spec = {"kind": "softmax", "n_features": 5, "classes": [0.0, 1.0, 2.0], "fit_intercept": True}
    thetas = rng.normal(size=(3, 18))
    vectors = []
    for runner, warm in (("inline", True), ("local", True), ("local", False)):
        with JobLauncher(dataset, spec, runner=runner, reducers=reducers, warm_tasks=warm) as launcher:
            assert (launcher.task_server is not None) == (runner == "local" and warm)
            vectors.append(launcher.sum_vector(MRGradient, thetas, {"hessian": 1}))
    assert vectors[0].size > 18 * 18
    assert vectors[1].tobytes() == vectors[0].tobytes() == vectors[2].tobytes()


def test_the_server_forks_from_its_only_thread(server):
    """A fork copies the locks other threads hold, not the threads: the server, imports done, has one."""
    assert len(os.listdir(f"/proc/{server.pid}/task")) == 1


def test_a_server_whose_imports_left_a_thread_running_refuses_to_serve(tmp_path):
    """Arrow's jemalloc with its background thread on: the server names the thread and exits unready."""
    alive_r, alive_w = os.pipe()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:true"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mrtrain.task_server", str(tmp_path / "s.sock"), str(alive_r)],
            pass_fds=(alive_r,), env=env, capture_output=True, text=True, timeout=120,
        )
    finally:
        os.close(alive_r)
        os.close(alive_w)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "jemalloc_bg_thd" in done.stderr and "forks only from one thread" in done.stderr


class CountingTaskServer(TaskServer):
    """The real server, counted: every one started in this process is kept in :attr:`started`."""

    started = []

    def __init__(self, directory):
        super().__init__(directory)
        CountingTaskServer.started.append(self)


@pytest.fixture
def counted(monkeypatch):
    CountingTaskServer.started = []
    monkeypatch.setattr(launcher_module, "TaskServer", CountingTaskServer)
    return CountingTaskServer.started


@pytest.fixture(scope="module")
def binary_data(tmp_path_factory):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 3))
    y = (X @ [1.0, -1.0, 0.5] + rng.normal(size=300) > 0).astype(float)
    return write_dataset(str(tmp_path_factory.mktemp("one-server") / "data"), X, y, partitions=3).uri


def own_staging():
    """This process's local staging directories (launchers' and task servers')."""
    prefix = f"{STAGING_PREFIX}{os.getpid()}-"
    return [name for name in os.listdir(tempfile.gettempdir()) if name.startswith(prefix)]


@pytest.mark.parametrize("extra", [[], ["--allreduce"], ["--inference"]])
def test_a_command_starts_one_task_server_and_stops_it(binary_data, counted, capsys, extra):
    """Training, the metrics pass after it (and --inference's pass) share one server, stopped at the end."""
    status = main(["train", binary_data, "--model", "logistic", "--optimizer", "newton", "--max-iter", "3",
                   "--runner", "local", "--json", *extra])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert json.loads(out)["metrics"]["n"] == 300
    assert len(counted) == 1
    assert counted[0].process.returncode == 0
    assert own_staging() == []


def test_a_failing_command_stops_its_task_server(tmp_path, counted, capsys):
    """A task that finds bad data (its Hessian sums overflow float64) fails the command (status 2); the
    server is stopped all the same."""
    dataset = write_dataset(str(tmp_path / "data"), np.full((6, 2), 1e200), np.array([0, 1, 0, 1, 0, 1.0]),
                            partitions=2)
    assert main(["train", dataset.uri, "--model", "logistic", "--optimizer", "newton",
                 "--runner", "local"]) == 2
    assert "overflow" in capsys.readouterr().err
    assert len(counted) == 1 and counted[0].process.returncode == 0
    assert own_staging() == []


def test_the_server_imports_nothing_from_the_working_directory(binary_data, tmp_path, monkeypatch, counted,
                                                                caplog):
    """A module in the user's directory named like one the server imports is not the server's."""
    (tmp_path / "threadpoolctl.py").write_text("raise ImportError('the working directory was imported')\n")
    monkeypatch.chdir(tmp_path)
    with one_task_server():
        with JobLauncher(Dataset.open(binary_data), {"kind": "logistic", "n_features": 3,
                                                     "classes": [0.0, 1.0], "fit_intercept": True},
                         runner="local") as launcher:
            launcher.sum_vector(MRGradient, np.zeros((1, 4)), {"hessian": 0})
            assert launcher.task_server is counted[0]
    assert "starting a Python per task instead" not in caplog.text
    assert counted[0].process.returncode == 0
