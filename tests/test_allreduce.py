"""AllReduce training (``train --allreduce``): one map-only job whose tasks serve every pass over TCP.

The reference is job-per-pass training on the same data: every model must be bitwise the same (same
partition vectors, added in the same order by the same function), so the comparisons are exact, not
tolerances. Faults are exercised with real task processes: a launcher that plays YARN (it reruns a failed
attempt under the next attempt number) and a driver killed with SIGKILL.
"""

import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from functools import partial

import numpy as np
import pytest

from mrtrain import allreduce, allreduce_gate
from mrtrain.allreduce import AllReduceSession, group_partitions, parse_address
from mrtrain.launcher import BackgroundJob, JobLauncher
from mrtrain.mr_jobs import allreduce_wire as wire
from mrtrain.mr_jobs.allreduce_job import FAULT_GROUP_ENV
from mrtrain.storage.checkpoint import list_checkpoints
from mrtrain.trainer import Trainer
from tests.command import run
from tests.conftest import ROOT
from tests.datasets import poisson_data, reference_data, write


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    X, y = reference_data("breast_cancer")
    return write(tmp_path_factory.mktemp("cancer") / "data", X, y, partitions=3)


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    X, y = reference_data("iris")
    return write(tmp_path_factory.mktemp("iris") / "data", X, y, partitions=3)


@pytest.fixture
def jobs_run(monkeypatch):
    """A list that gets one entry per job a JobLauncher runs (its class name)."""
    names = []
    original = JobLauncher.run

    def counting(self, job_class, *args, **kwargs):
        names.append(job_class.__name__)
        return original(self, job_class, *args, **kwargs)

    monkeypatch.setattr(JobLauncher, "run", counting)
    return names


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


LOGISTIC = {"model": "logistic", "optimizer": "lbfgs", "l2": 0.01, "max_iter": 6}
SOFTMAX = {"model": "softmax", "optimizer": "newton", "l2": 0.01, "max_iter": 4}


def fit(data, settings, **options):
    settings = {"runner": "local", **settings, **options}
    return Trainer(settings.pop("model"), **settings).fit(data)


@pytest.fixture(scope="module")
def reference(cancer):
    """LOGISTIC on ``cancer`` trained one job per pass."""
    return fit(cancer, LOGISTIC, reducers=0)


@pytest.mark.parametrize("settings,dataset", [(LOGISTIC, "cancer"), (SOFTMAX, "iris")])
def test_allreduce_equals_one_job_per_pass_bitwise_with_one_job(settings, dataset, request, jobs_run):
    data = request.getfixturevalue(dataset)
    per_pass = fit(data, settings, reducers=0)
    # The statistics pass of the preconditioner, then the optimizer's passes: all served by one job below.
    statistics = ["MRFeatureStats"] if settings["optimizer"] != "newton" else []
    assert jobs_run == statistics + ["MRGradient"] * per_pass.n_passes_
    jobs_run.clear()
    # Two tasks (partition groups [0, 1] and [2]) whatever the machine's cores; the metrics pass on the
    # training data is served by the same job.
    together = fit(data, settings, allreduce=True, allreduce_tasks=2, training_metrics=True)
    metrics = together.evaluate(data, runner="local")
    assert jobs_run == ["MRAllReduce"]
    assert together.theta_.tobytes() == per_pass.theta_.tobytes()
    assert together.history_ == per_pass.history_
    assert together.n_passes_ == per_pass.n_passes_ > 2
    exact = partial(json.dumps, default=lambda value: value.tolist())
    assert exact(metrics) == exact(per_pass.evaluate(data, runner="local"))
    assert jobs_run == ["MRAllReduce", "MREvaluate"]


def test_the_online_start_runs_its_job_before_the_allreduce_job_and_gives_the_same_bits(cancer, jobs_run):
    """On YARN the AllReduce job holds its containers until training ends: a job started after it could
    wait for a slot forever, so the online start's job must come first."""
    settings = {**LOGISTIC, "init": "online"}
    per_pass = fit(cancer, settings, reducers=0)
    jobs_run.clear()
    together = fit(cancer, settings, allreduce=True, allreduce_tasks=2)
    assert jobs_run == ["MROnlineInit", "MRAllReduce"]
    assert together.theta_.tobytes() == per_pass.theta_.tobytes()
    assert together.n_passes_ == per_pass.n_passes_


def test_one_task_per_partition_and_one_task_for_all_give_the_same_bits(cancer, tmp_path):
    conf = tmp_path / "mrjob.conf"
    conf.write_text(json.dumps({"runners": {"local": {"num_cores": 3}}}))
    one = fit(cancer, LOGISTIC, allreduce=True, allreduce_tasks=1)
    # Capped at one task per partition: 3 tasks, 3 local slots.
    three = fit(cancer, LOGISTIC, allreduce=True, allreduce_tasks=5, conf_path=str(conf))
    assert one.theta_.tobytes() == three.theta_.tobytes()


def test_allreduce_resumes_a_job_per_pass_checkpoint_to_the_same_bits(cancer, tmp_path, reference):
    checkpoints = str(tmp_path / "ck")
    fit(cancer, {**LOGISTIC, "max_iter": 3}, checkpoint_dir=checkpoints)
    resumed = fit(cancer, LOGISTIC, checkpoint_dir=checkpoints, allreduce=True)
    assert resumed.theta_.tobytes() == reference.theta_.tobytes()
    assert [i for i, _ in list_checkpoints(checkpoints)][-1] == reference.n_iter_


def test_a_finished_training_resumed_with_allreduce_starts_no_job(cancer, tmp_path, jobs_run):
    checkpoints = str(tmp_path / "ck")
    first = fit(cancer, LOGISTIC, checkpoint_dir=checkpoints, allreduce=True)
    jobs_run.clear()
    again = fit(cancer, LOGISTIC, checkpoint_dir=checkpoints, allreduce=True)
    assert jobs_run == []
    assert again.theta_.tobytes() == first.theta_.tobytes()


class RetryingLauncher(JobLauncher):
    """A local launcher whose AllReduce job runs each group's task as its own process and, like YARN,
    starts the next attempt of a task whose process failed (up to 4 attempts)."""

    attempts = []

    def start(self, job_class, thetas, task, input_lines):
        job_dir = os.path.join(self.staging, "allreduce")
        os.makedirs(job_dir)
        args = self._args(task, thetas, job_dir, 0, None)
        files = ["--task", args[args.index("--task") + 1], "--params", args[args.index("--params") + 1]]
        return BackgroundJob(lambda: self._supervise(input_lines, files))

    def _supervise(self, input_lines, files):
        command = [sys.executable, "-m", "mrtrain.mr_jobs.allreduce_job", "--mapper", "--step-num=0", *files]

        def attempt(group, number):
            env = {**os.environ, "mapreduce_task_attempt_id": f"attempt_1_0001_m_{group:06d}_{number}"}
            RetryingLauncher.attempts.append((group, number))
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, env=env)
            process.stdin.write(f"{input_lines[group]}\n".encode())
            process.stdin.close()
            return process

        running = {group: (0, attempt(group, 0)) for group in range(len(input_lines))}
        while running:
            for group, (number, process) in list(running.items()):
                if process.poll() is None:
                    continue
                stderr = process.stderr.read().decode()
                del running[group]
                if process.returncode:
                    if number == 3:
                        raise RuntimeError(f"group {group} failed 4 times: {stderr}")
                    running[group] = (number + 1, attempt(group, number + 1))
            time.sleep(0.05)
        return []


def test_a_task_attempt_that_dies_is_retried_and_the_model_is_bitwise_unchanged(
    cancer, monkeypatch, caplog, reference
):
    monkeypatch.setattr("mrtrain.training.run.JobLauncher", RetryingLauncher)
    RetryingLauncher.attempts = []
    monkeypatch.setenv(FAULT_GROUP_ENV, "1")  # group 1's attempt 0 fails after answering pass 1
    with caplog.at_level("INFO", logger="mrtrain.allreduce"):
        survived = fit(cancer, LOGISTIC, allreduce=True, allreduce_tasks=2)
    assert survived.theta_.tobytes() == reference.theta_.tobytes()
    assert survived.history_ == reference.history_
    assert sorted(RetryingLauncher.attempts) == [(0, 0), (1, 0), (1, 1)]
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("allreduce: lost group 1") for message in messages), messages
    assert any("group 1 connected" in message and "_m_000001_1" in message for message in messages)


def test_on_the_local_runner_a_failed_task_fails_the_training_and_a_rerun_resumes(cancer, tmp_path,
                                                                                monkeypatch, reference):
    """mrjob's local runner does not retry tasks: the job fails, the checkpoints stay, a rerun resumes."""
    checkpoints = str(tmp_path / "ck")
    monkeypatch.setenv(FAULT_GROUP_ENV, "0")
    with pytest.raises(Exception, match="Step 1 of 1 failed"):
        fit(cancer, LOGISTIC, allreduce=True, allreduce_tasks=2, checkpoint_dir=checkpoints)
    assert [i for i, _ in list_checkpoints(checkpoints)] == [0]
    monkeypatch.delenv(FAULT_GROUP_ENV)
    resumed = fit(cancer, LOGISTIC, allreduce=True, allreduce_tasks=2, checkpoint_dir=checkpoints)
    assert resumed.theta_.tobytes() == reference.theta_.tobytes()


def test_a_task_whose_connection_breaks_reconnects_and_the_model_is_bitwise_unchanged(
    cancer, reference, monkeypatch, caplog
):
    sessions = []
    original = AllReduceSession.open

    def opening(self):
        sessions.append(self)
        original(self)

    monkeypatch.setattr(AllReduceSession, "open", opening)

    def break_group_0(progress):
        if progress.passes == 2:
            sessions[0]._connections[0].sock.shutdown(socket.SHUT_RDWR)

    with caplog.at_level("INFO", logger="mrtrain.allreduce"):
        survived = fit(cancer, LOGISTIC, allreduce=True, allreduce_tasks=2, callback=break_group_0)
    assert survived.theta_.tobytes() == reference.theta_.tobytes()
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("allreduce: lost group 0") for message in messages), messages
    # The same task attempt connected twice.
    connected = [message.split("(")[-1] for message in messages if "group 0 connected" in message]
    assert len(connected) == 2 and connected[0] == connected[1], messages


def stranger_visits(port, seen):
    """Connect to the driver as strangers: garbage, a wrong proof for group 0, and silence."""
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        header, _ = wire.receive_message(sock, 0)
        seen.append(header["type"])
        sock.sendall(b"GET / HTTP/1.0\r\n")  # 16 bytes, as long as a frame
        replies.append(sock.recv(100))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        wire.receive_message(sock, 0)
        wire.send_message(sock, {"type": "hello", "group": 0, "nonce": "00" * wire.NONCE_BYTES,
                                 "mac": "ab" * 32})
        replies.append(sock.recv(100))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        wire.receive_message(sock, 0)
        # A frame announcing a 1 TiB payload: refused from its 16 bytes.
        sock.sendall(wire.MAGIC + (2).to_bytes(4, "little") + (2**40).to_bytes(8, "little"))
        replies.append(sock.recv(100))
    silent = socket.create_connection(("127.0.0.1", port), timeout=10)
    return replies, silent


def test_strangers_get_nothing_and_change_nothing(cancer, caplog, reference):
    port = free_port()
    seen, replies, silent = [], [], []

    def visit(progress):
        if progress.passes == 2:
            got, sock = stranger_visits(port, seen)
            replies.extend(got)
            silent.append(sock)

    with caplog.at_level("WARNING", logger="mrtrain.allreduce"):
        visited = fit(cancer, LOGISTIC, allreduce=True, allreduce_address=f"127.0.0.1:{port}", callback=visit)
    silent[0].close()
    assert seen == ["challenge"]
    assert replies == [b"", b"", b""]  # each stranger was hung up on without a word
    assert visited.theta_.tobytes() == reference.theta_.tobytes()
    refused = [r.getMessage() for r in caplog.records if "refused a connection" in r.getMessage()]
    # (A fourth line comes once the silent stranger hangs up or its handshake times out.)
    assert len(refused) >= 3, refused
    assert "expected a frame starting b'MRAR'" in refused[0]
    assert "the proof does not match this run's secret" in refused[1]
    assert "at most 0 bytes" in refused[2]


DRIVER = textwrap.dedent("""
    import sys, time
    from mrtrain.trainer import Trainer

    data, checkpoints, marker = sys.argv[1:4]

    def pause_after_two_passes(progress):
        if progress.passes == 2:
            open(marker, "w").close()
            time.sleep(600)

    Trainer("logistic", optimizer="lbfgs", l2=0.01, max_iter=6, runner="local", checkpoint_dir=checkpoints,
            allreduce=True, allreduce_tasks=2, callback=pause_after_two_passes).fit(data)
""")


def processes_mentioning(text):
    """Pids of live processes whose command line contains ``text``."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                cmdline = handle.read().decode(errors="replace")
            with open(f"/proc/{name}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            pids.append(int(name))
    return pids


def test_tasks_exit_when_the_driver_is_killed_and_a_rerun_resumes_to_the_same_bits(cancer, tmp_path,
                                                                                   reference):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    checkpoints, marker = str(tmp_path / "ck"), tmp_path / "two-passes"
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen([sys.executable, str(script), cancer, checkpoints, str(marker)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), (tmp_path / "driver.log").read_text()[-3000:]
        tasks = [pid for pid in processes_mentioning(str(tmp_path)) if pid != driver.pid]
        assert tasks, "no task processes found while training"
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    deadline = time.monotonic() + 30
    while processes_mentioning(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(str(tmp_path)) == []
    resumed = fit(cancer, LOGISTIC, checkpoint_dir=checkpoints, allreduce=True)
    assert resumed.theta_.tobytes() == reference.theta_.tobytes()


def test_no_task_connecting_names_the_address_and_the_option_to_pass(cancer):
    # Local tasks take longer than 0.3 s to start (a Python process importing mrjob and numpy): none can
    # connect in time; their short connect timeout then ends them, and with them the job.
    started = time.monotonic()
    with pytest.raises(TimeoutError) as raised:
        fit(cancer, LOGISTIC, allreduce=True, allreduce_tasks=2, allreduce_timeout=0.3)
    message = str(raised.value)
    assert "\n" not in message
    assert re.match(r"--allreduce: no map task reached 127\.0\.0\.1:\d+ within 0\.3 s: pass "
                    r"--allreduce-address with an address of this host that the NodeManagers reach \(",
                    message), message
    assert time.monotonic() - started < 60
    assert [t for t in threading.enumerate() if t.name == "mrtrain-job"] == []


def test_too_few_map_slots_stop_with_one_line_and_end_the_job(cancer, tmp_path):
    conf = tmp_path / "mrjob.conf"
    conf.write_text(json.dumps({"runners": {"local": {"num_cores": 1}}}))
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"^--allreduce: 1 of 2 map tasks connected within 3 s .*train "
                                           r"without --allreduce \(one job per pass\)"):
        fit(cancer, LOGISTIC, allreduce=True, allreduce_tasks=2, allreduce_timeout=3, conf_path=str(conf))
    assert time.monotonic() - started < 30
    assert [t for t in threading.enumerate() if t.name == "mrtrain-job"] == []


def test_cli_refuses_allreduce_on_the_inline_runner_and_bad_settings(capsys, cancer):
    status, out, err = run(capsys, "train", cancer, "--model", "logistic", "--allreduce", "--runner",
                           "inline")
    assert (status, out) == (2, "")
    assert err == ["mrtrain: error: The 'allreduce' parameter needs the 'local' or 'hadoop' runner (the "
                   "inline runner runs map tasks one after another: a gang of tasks cannot run). Got "
                   "runner='inline' instead."]
    status, _, err = run(capsys, "train", cancer, "--model", "logistic", "--allreduce",
                         "--allreduce-address", "host:99999")
    assert status == 2 and err[0].startswith("mrtrain: error: The 'allreduce_address' parameter must be")
    status, _, err = run(capsys, "train", cancer, "--model", "logistic", "--allreduce-timeout", "0")
    assert status == 2 and "The 'allreduce_timeout' parameter must be a finite float > 0" in err[0]


def test_cli_trains_with_allreduce_to_the_same_json(capsys, cancer):
    common = ["train", cancer, "--model", "logistic", "--l2", "0.01", "--max-iter", "3", "--json",
              "--no-metrics"]
    status, per_pass, _ = run(capsys, *common)
    assert status == 0
    status, together, _ = run(capsys, *common, "--allreduce", "--allreduce-address", "127.0.0.1:0")
    assert status == 0
    assert json.loads(together) == json.loads(per_pass)


def test_bad_data_stops_an_allreduce_training_with_the_job_per_pass_line(capsys, tmp_path):
    X, y = poisson_data()
    y[250] = -1.0  # partition 2
    data = write(tmp_path / "bad", X, y, partitions=3)
    per_pass = run(capsys, "train", data, "--model", "poisson")
    together = run(capsys, "train", data, "--model", "poisson", "--allreduce")
    assert per_pass[0] == together[0] == 2
    assert together[2] == per_pass[2]
    assert together[2][0].startswith("mrtrain: error: partition 2: ")


def test_an_overflowing_objective_names_the_partitions_as_one_job_per_pass_does(capsys, tmp_path):
    X = np.random.default_rng(0).normal(size=(60, 2)) * 1e300
    data = write(tmp_path / "huge", X, X[:, 0] + X[:, 1], partitions=2)
    per_pass = run(capsys, "train", data, "--model", "linear", "--no-precondition")
    together = run(capsys, "train", data, "--model", "linear", "--no-precondition", "--allreduce")
    assert per_pass[0] == together[0] == 2
    assert together[2] == per_pass[2]
    assert "starting point is not finite" in together[2][0] and "part-00000.parquet" in together[2][0]
    # With the preconditioner, the statistics pass before it overflows first (squares beyond 1e308).
    status, _, err = run(capsys, "train", data, "--model", "linear", "--allreduce")
    assert status == 2 and len(err) == 1
    assert "the feature statistics are not finite" in err[0] and "part-00000.parquet" in err[0]


def test_address_parsing_and_groups():
    assert parse_address("127.0.0.1") == ("127.0.0.1", 0)
    assert parse_address("node-1.example:5000") == ("node-1.example", 5000)
    assert parse_address("[::1]:7") == ("::1", 7)
    for bad in ("", ":5", "h:", "h:x", "h:65536", "a:b:c", "[::1]x", 5):
        with pytest.raises(ValueError, match="The 'allreduce_address' parameter must be HOST or HOST:PORT"):
            parse_address(bad)
    assert group_partitions(range(5), 2) == [[0, 1, 2], [3, 4]]
    assert group_partitions(range(3), 3) == [[0], [1], [2]]


def test_messages_round_trip_exactly_and_limits_are_checked_before_reading():
    left, right = socket.socketpair()
    with left, right:
        values = np.array([-0.0, 0.0, np.nan, np.inf, -np.inf, 5e-324, np.pi])
        wire.send_message(left, {"type": "pass", "points": 1}, values)
        header, payload = wire.receive_message(right, values.nbytes)
        assert header == {"type": "pass", "points": 1}
        assert payload.tobytes() == values.tobytes()
        # A frame announcing more than the limit is refused from its 16 bytes, nothing more is read.
        left.sendall(wire.MAGIC + (10).to_bytes(4, "little") + (2**40).to_bytes(8, "little"))
        with pytest.raises(wire.ProtocolError, match="at most 80 bytes, found 1099511627776"):
            wire.receive_message(right, 80)
        left.sendall(wire.MAGIC + (2**31).to_bytes(4, "little") + (0).to_bytes(8, "little"))
        with pytest.raises(wire.ProtocolError, match="JSON header of at most 65536 bytes"):
            wire.receive_message(right, 80)
        body = b"[1, 2]"
        left.sendall(wire.MAGIC + len(body).to_bytes(4, "little") + (0).to_bytes(8, "little") + body)
        with pytest.raises(wire.ProtocolError, match="a JSON object with a 'type'"):
            wire.receive_message(right, 80)
        left.close()
        with pytest.raises(EOFError):
            wire.receive_message(right, 80)


def test_proofs_depend_on_the_secret_the_nonces_and_the_group():
    secret, other = wire.new_secret(), wire.new_secret()
    a, b = os.urandom(wire.NONCE_BYTES), os.urandom(wire.NONCE_BYTES)
    proof = wire.task_mac(secret, a, b, 1)
    assert wire.macs_equal(proof, wire.task_mac(secret, a, b, 1))
    for changed in (wire.task_mac(other, a, b, 1), wire.task_mac(secret, b, a, 1),
                    wire.task_mac(secret, a, b, 0), wire.driver_mac(secret, a, b, 1)):
        assert not wire.macs_equal(proof, changed)
    assert not wire.macs_equal(proof, None)


def site_xml(path, properties):
    body = "".join(f"<property><name>{k}</name><value>{v}</value></property>" for k, v in properties.items())
    path.write_text(f"<configuration>{body}</configuration>")


class FakeResourceManager:
    """An HTTP server answering ``GET path`` with the JSON in ``answers`` (404 otherwise)."""

    def __init__(self, answers):
        answers = {path: json.dumps(body).encode() for path, body in answers.items()}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  (the http.server name)
                body = answers.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write(body or b"not found")

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def rest_answers(available_mb, available_vcores, nodes, max_capacity=100.0, used_mb=0):
    """The ResourceManager REST answers (Hadoop 3 field names) of a cluster of ``nodes`` (MB, vcores free)."""
    return {
        "/ws/v1/cluster/metrics": {"clusterMetrics": {
            "availableMB": available_mb, "availableVirtualCores": available_vcores, "totalMB": 16384,
            "totalVirtualCores": 16, "allocatedMB": 16384 - available_mb}},
        "/ws/v1/cluster/nodes": {"nodes": {"node": [
            {"state": "RUNNING", "availMemoryMB": mb, "availableVirtualCores": vcores} for mb, vcores in nodes
        ] + [{"state": "LOST", "availMemoryMB": 8192, "availableVirtualCores": 8}]}},
        "/ws/v1/cluster/scheduler": {"scheduler": {"schedulerInfo": {
            "type": "capacityScheduler", "queueName": "root", "queues": {"queue": [
                {"queueName": "default", "absoluteMaxCapacity": max_capacity,
                 "resourcesUsed": {"memory": used_mb, "vCores": 0}},
                {"queueName": "other", "absoluteMaxCapacity": 100.0, "resourcesUsed": {"memory": 0}},
            ]}}}},
    }


@pytest.fixture
def hadoop_conf(tmp_path, monkeypatch):
    """A Hadoop configuration directory (``HADOOP_CONF_DIR``): map containers 1000 MB (rounded up to 1024),
    1 vcore; the application master 2048 MB; the ResourceManager at ``rm`` (set by the test)."""
    conf_dir = tmp_path / "hadoop-conf"
    conf_dir.mkdir()
    monkeypatch.setenv("HADOOP_CONF_DIR", str(conf_dir))
    site_xml(conf_dir / "mapred-site.xml", {"mapreduce.map.memory.mb": 1000,
                                            "yarn.app.mapreduce.am.resource.mb": 2048})

    def with_resource_manager(address, **more):
        site_xml(conf_dir / "yarn-site.xml", {"yarn.resourcemanager.webapp.address": address,
                                              "yarn.scheduler.minimum-allocation-mb": 512, **more})
        return conf_dir

    return with_resource_manager


def test_session_defaults(cancer, tmp_path, hadoop_conf, caplog):
    from mrtrain.storage.dataset import Dataset

    dataset = Dataset.open(cancer)
    spec = {"kind": "logistic", "n_features": 30, "classes": [0.0, 1.0], "fit_intercept": True}
    conf = tmp_path / "mrjob.conf"
    conf.write_text(json.dumps({"runners": {"local": {"num_cores": 2}}}))
    with JobLauncher(dataset, spec, runner="local", conf_path=str(conf)) as launcher:
        assert AllReduceSession(launcher).groups == [[0, 1], [2]]
    hadoop_conf(f"127.0.0.1:{free_port()}")  # nothing listens there
    with JobLauncher(dataset, spec, runner="hadoop") as launcher, caplog.at_level("INFO"):
        session = AllReduceSession(launcher)
        assert session.groups == [[0, 1], [2]]
        assert session.bind_address == ("127.0.0.1", 0)  # this host's address toward the ResourceManager
        assert allreduce.DEFAULT_HADOOP_TASKS == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "mrtrain.allreduce"]
    assert len(lines) == 1 and re.fullmatch(
        r"allreduce: could not read the cluster's map capacity \(rest at http://127\.0\.0\.1:\d+: .*; jmx at "
        r"http://127\.0\.0\.1:\d+: .*\); using 2 map tasks \(set --allreduce-tasks to choose\)", lines[0]
    ), lines


@pytest.mark.parametrize("nodes,max_capacity,used_mb,expected", [
    # Free per node (MB, vcores); the master (2048 MB) goes where it costs fewest map containers (1024 MB).
    ([(8192, 8), (3072, 8)], 100.0, 0, 9),  # 8 + 3 slots, the master takes 2 on the first node
    ([(8192, 2), (3072, 8)], 100.0, 0, 4),  # vcores: 2 + 3, the master takes 1 vcore
    ([(2048, 8)] + [(1536, 8)] * 3, 100.0, 0, 3),  # 2 + 1 + 1 + 1; the master fits the first node only
    ([(1536, 8)] * 4, 100.0, 0, 0),  # 6144 MB free, but the master fits no node
    ([(8192, 8), (3072, 8)], 50.0, 4096, 2),  # queue: 8192 of 16384 MB, 4096 used: 4096 - 2048 free
])
def test_the_gang_size_on_hadoop_comes_from_the_resource_managers_rest_api(
    cancer, hadoop_conf, nodes, max_capacity, used_mb, expected, caplog
):
    from mrtrain.yarn_capacity import hadoop_map_slots

    manager = FakeResourceManager(rest_answers(sum(mb for mb, _ in nodes), sum(v for _, v in nodes), nodes,
                                               max_capacity, used_mb))
    try:
        hadoop_conf(manager.address)
        slots, how = hadoop_map_slots({})
        assert slots == expected, how
        assert how.startswith(f"http://{manager.address}/ws/v1/cluster/metrics: ")
        assert "map containers 1024 MB / 1 vcores, application master 2048 MB / 1" in how
        with caplog.at_level("INFO", logger="mrtrain.allreduce"):
            assert allreduce.hadoop_tasks(None, 3) == max(1, min(expected, 3))  # at most one per partition
            assert allreduce.hadoop_tasks(None, 20) == max(1, expected)  # a full cluster: 1, which waits
    finally:
        manager.close()
    messages = [record.getMessage() for record in caplog.records]
    assert f"room for {expected} map tasks at once" in messages[0]
    assert ("the cluster has no free map slot" in messages[1]) == (expected == 0), messages


def test_the_gang_size_from_jmx_when_the_rest_api_is_missing_and_with_ha(hadoop_conf, tmp_path):
    from mrtrain.yarn_capacity import hadoop_map_slots

    beans = {"/jmx?qry=Hadoop:service=ResourceManager,name=QueueMetrics,*": {"beans": [
        {"tag.Queue": "root", "AvailableMB": 6144, "AvailableVCores": 8, "AllocatedMB": 2048,
         "AllocatedVCores": 2},
        {"tag.Queue": "root.default", "AvailableMB": 5120, "AvailableVCores": 8},
    ]}}
    manager = FakeResourceManager(beans)
    try:
        # HA: the first ResourceManager does not answer, the second has no REST API (the mini cluster's case).
        hadoop_conf("", **{"yarn.resourcemanager.ha.rm-ids": "rm1,rm2",
                           "yarn.resourcemanager.webapp.address.rm1": f"127.0.0.1:{free_port()}",
                           "yarn.resourcemanager.hostname.rm2": "127.0.0.1",
                           "yarn.resourcemanager.webapp.address.rm2": "${yarn.resourcemanager.hostname.rm2}:"
                                                                      + manager.address.split(":")[1]})
        slots, how = hadoop_map_slots({"mapreduce.map.memory.mb": "512"})  # the job's setting wins
    finally:
        manager.close()
    assert slots == (5120 - 2048) // 512, how
    assert "/jmx?qry=" in how and "5120 MB and 8 vcores free of 8192 MB" in how


def test_container_sizes_and_slots_follow_the_scheduler_rules():
    from mrtrain.yarn_capacity import Capacity, Resources, container_sizes, map_slots

    task, master = container_sizes({"yarn.scheduler.minimum-allocation-mb": "256"}, {})
    assert (task, master) == (Resources(1024, 1), Resources(1536, 1))  # Hadoop's defaults
    task, master = container_sizes({"yarn.scheduler.minimum-allocation-mb": "1024",
                                    "mapreduce.map.cpu.vcores": "2"}, {"mapreduce.map.memory.mb": 1025})
    assert task == Resources(2048, 2) and master == Resources(2048, 1)
    with pytest.raises(ValueError, match=r"^mapreduce.map.memory.mb in the job's jobconf must be an int "
                                         r">= 1\. Got 'lots' instead\.$"):
        container_sizes({}, {"mapreduce.map.memory.mb": "lots"})
    full = Capacity("x", Resources(1000, 4), Resources(8192, 8))
    assert map_slots(full, Resources(512, 1), Resources(512, 1)) == 0
    assert map_slots(Capacity("x", Resources(4096, 8), Resources(4096, 8)), Resources(512, 1),
                     Resources(512, 1)) == 7


def test_a_local_dataset_on_hadoop_needs_an_hdfs_default_filesystem_for_the_secret(cancer, hadoop_conf):
    from mrtrain.storage.dataset import Dataset

    site_xml(hadoop_conf("127.0.0.1:1") / "core-site.xml", {"fs.defaultFS": "file:///"})
    spec = {"kind": "logistic", "n_features": 30, "classes": [0.0, 1.0], "fit_intercept": True}
    with JobLauncher(Dataset.open(cancer), spec, runner="hadoop") as launcher:
        session = AllReduceSession(launcher, tasks=1)
        with pytest.raises(OSError, match=r"^--allreduce on the hadoop runner with a dataset outside HDFS "
                                          r"keeps the run's secret in a private HDFS directory: fs.defaultFS "
                                          r".* must be an hdfs:// URI\. Got 'file:///' instead\.$"):
            session._write_secret()


def files_holding(root, text):
    """Files under ``root`` (a local directory) whose bytes contain ``text``."""
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            try:
                with open(path, "rb") as handle:
                    if text.encode() in handle.read():
                        found.append(path)
            except OSError:
                continue
    return found


def test_the_secret_is_in_an_owner_only_file_and_in_no_task_file(cancer, reference, monkeypatch):
    seen = {}
    wait = AllReduceSession._wait_for_gang

    def look(session):
        wait(session)
        path = session.secret_uri
        seen["mode"] = os.stat(path).st_mode & 0o777
        seen["parent"] = os.stat(os.path.dirname(path)).st_mode & 0o777
        seen["holding"] = files_holding(session.launcher.local_staging, session.secret)
        seen["path"] = path

    monkeypatch.setattr(AllReduceSession, "_wait_for_gang", look)
    fitted = fit(cancer, LOGISTIC, allreduce=True)
    assert fitted.theta_.tobytes() == reference.theta_.tobytes()
    assert (seen["mode"], seen["parent"]) == (0o600, 0o700)
    assert seen["holding"] == [seen["path"]]  # not in task.json, nor in mrjob's copies of it
    assert not os.path.exists(seen["path"])


@pytest.fixture(scope="module")
def hdfs_base(hadoop_cluster):
    from mrtrain.storage.filesystem import get_filesystem

    base = f"{hadoop_cluster['MRTRAIN_HDFS_URL']}/user/{hadoop_cluster['MRTRAIN_HDFS_USER']}/" \
           f"mrtrain-tests/allreduce-{os.getpid()}-{int(time.time())}"
    yield base
    get_filesystem(base).delete(base, recursive=True)


@pytest.mark.hadoop
@pytest.mark.parametrize("settings,name", [(LOGISTIC, "breast_cancer"), (SOFTMAX, "iris")])
def test_on_yarn_allreduce_is_one_job_and_equals_one_job_per_pass_bitwise(
    settings, name, hadoop_cluster, hdfs_base, tmp_path, jobs_run
):
    from benchmarks.hadoop import logging_hadoop_conf

    X, y = reference_data(name)
    remote = write(f"{hdfs_base}/{name}", X, y, partitions=3)
    local = write(tmp_path / name, X, y, partitions=3)
    conf_path, calls = logging_hadoop_conf(hadoop_cluster["conf_path"], str(tmp_path))
    on_yarn = fit(remote, settings, runner="hadoop", allreduce=True, conf_path=conf_path,
                  checkpoint_dir=f"{hdfs_base}/{name}-ck")
    assert jobs_run == ["MRAllReduce"]
    with open(calls) as log:
        lines = log.readlines()
    assert [line.split()[0] for line in lines] == ["version", "jar"]
    assert "mapreduce.job.ubertask.enable=false" in lines[1]  # its tasks must run at once, never uber
    per_pass = fit(local, settings, reducers=0)
    assert on_yarn.theta_.tobytes() == per_pass.theta_.tobytes()
    assert on_yarn.history_ == per_pass.history_ and on_yarn.n_passes_ == per_pass.n_passes_


@pytest.mark.hadoop
def test_on_yarn_a_task_attempt_that_dies_is_retried_and_the_model_is_bitwise_unchanged(
    hadoop_cluster, hdfs_base, cancer, reference, monkeypatch, caplog
):
    X, y = reference_data("breast_cancer")
    remote = write(f"{hdfs_base}/cancer-fault", X, y, partitions=3)
    monkeypatch.setenv(FAULT_GROUP_ENV, "1")  # forwarded to the tasks: group 1 attempt 0 fails after pass 1
    with caplog.at_level("INFO", logger="mrtrain.allreduce"):
        survived = fit(remote, LOGISTIC, runner="hadoop", allreduce=True)
    assert survived.theta_.tobytes() == reference.theta_.tobytes()
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("allreduce: lost group 1") for message in messages), messages
    # YARN numbers map tasks in its own order: group 1's second attempt is some task's attempt 1.
    assert any(re.search(r"group 1 connected .*_m_\d{6}_1\)$", message) for message in messages), messages


@pytest.mark.hadoop
def test_on_yarn_tasks_that_do_not_all_connect_in_time_stop_with_one_line_and_the_job_ends(
    hadoop_cluster, hdfs_base
):
    X, y = reference_data("breast_cancer")
    remote = write(f"{hdfs_base}/cancer-gang", X, y, partitions=3)
    # Starting a YARN job takes longer than 2 s: no task can be there in time. The tasks then find nothing
    # listening and end, and with them the job, before the training returns.
    with pytest.raises(TimeoutError, match=r"^--allreduce: no map task reached 127\.0\.0\.1:\d+ within 2 s: "
                                           r"pass --allreduce-address with an address of this host that the "
                                           r"NodeManagers reach"):
        fit(remote, LOGISTIC, runner="hadoop", allreduce=True, allreduce_tasks=2, allreduce_timeout=2)
    assert [t for t in threading.enumerate() if t.name == "mrtrain-job"] == []


def hdfs_files_holding(fs, path, text):
    """Files under the HDFS directory ``path`` whose bytes contain ``text`` (files up to 1 MB)."""
    from hdfs.util import HdfsError

    found = []
    try:
        listed = fs.client.list(path, status=True)
    except HdfsError:  # removed meanwhile (other runs share the directory)
        return found
    for name, status in listed:
        child = f"{path.rstrip('/')}/{name}"
        if status["type"] == "DIRECTORY":
            found += hdfs_files_holding(fs, child, text)
        elif status["length"] <= 2**20:
            try:
                with fs.client.read(child) as reader:
                    if text.encode() in reader.read():
                        found.append(child)
            except HdfsError:
                continue
    return found


@pytest.mark.hadoop
@pytest.mark.parametrize("where", ["hdfs", "local"])
def test_on_yarn_the_secret_is_private_and_the_gang_fills_the_free_map_slots(
    where, hadoop_cluster, hdfs_base, tmp_path, reference, monkeypatch, caplog
):
    from mrtrain.storage.hdfs_fs import hdfs_filesystem, hdfs_path
    from mrtrain.yarn_capacity import hadoop_map_slots

    X, y = reference_data("breast_cancer")
    data = write(f"{hdfs_base}/cancer-hdfs" if where == "hdfs" else tmp_path / "cancer", X, y, partitions=3)
    fs = hdfs_filesystem(hadoop_cluster["MRTRAIN_HDFS_URL"])
    home = f"/user/{hadoop_cluster['MRTRAIN_HDFS_USER']}"
    node_dirs = [os.path.join(d, n) for d, names, _ in os.walk(ROOT / ".cache" / "hadoop" / "run")
                 for n in names if "localDir-nm" in n]
    seen = {}
    wait = AllReduceSession._wait_for_gang

    def look(session):
        wait(session)
        path = hdfs_path(session.secret_uri)
        seen.update(uri=session.secret_uri, groups=len(session.groups),
                    file=fs.client.status(path)["permission"],
                    directory=fs.client.status(path.rsplit("/", 1)[0])["permission"],
                    in_hdfs=hdfs_files_holding(fs, f"{home}/tmp", session.secret),
                    on_nodes=[f for d in node_dirs for f in files_holding(d, session.secret)],
                    in_staging=files_holding(session.launcher.local_staging, session.secret))

    monkeypatch.setattr(AllReduceSession, "_wait_for_gang", look)
    slots, how = hadoop_map_slots(allreduce.hadoop_jobconf(hadoop_cluster["conf_path"]))
    with caplog.at_level("INFO", logger="mrtrain.allreduce"):
        fitted = fit(data, LOGISTIC, runner="hadoop", allreduce=True, allreduce_timeout=240)
    assert fitted.theta_.tobytes() == reference.theta_.tobytes()
    # The mini cluster (4096 MB; 512 MB containers and master) has no REST API: its JMX answers.
    assert "/jmx?qry=Hadoop:service=ResourceManager,name=QueueMetrics" in how
    assert 0 <= slots <= 7, how
    chosen = [r.getMessage() for r in caplog.records if "map tasks at once" in r.getMessage()]
    assert len(chosen) == 1 and chosen[0].endswith(f"using {seen['groups']} for 3 partitions"), chosen
    assert seen["groups"] == max(1, min(3, int(re.search(r"room for (\d+)", chosen[0]).group(1))))
    # Owner-only, on HDFS, read by the tasks themselves: in no task file, upload or node-local copy.
    assert (seen["file"], seen["directory"]) == ("600", "700"), seen
    assert seen["in_hdfs"] == [hdfs_path(seen["uri"])], seen
    assert seen["on_nodes"] == [] and seen["in_staging"] == [], seen
    assert not fs.exists(seen["uri"])
    if where == "local":  # the directory made for the secret is gone too
        assert not fs.exists(seen["uri"].rsplit("/", 1)[0])


class Flood:
    """Local users hostile to a training: ``silent`` connections to ``port`` that never send a byte and
    ``trickling`` ones that send a valid frame's bytes one every 0.5 s, each opened again as soon
    as the driver closes it (and until the port listens), from threads, until :meth:`stop`."""

    def __init__(self, port, silent=40, trickling=8):
        self.port = port
        self.stopping = threading.Event()
        self.opened = [0]
        self.threads = [threading.Thread(target=self._hold, args=(kind,), daemon=True)
                        for kind in ["silent"] * silent + ["trickling"] * trickling]
        for thread in self.threads:
            thread.start()

    def _hold(self, kind):
        trickle = wire.MAGIC + (200).to_bytes(4, "little") + (0).to_bytes(8, "little") + b"{" * 200
        while not self.stopping.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            except OSError:
                time.sleep(0.05)
                continue
            self.opened[0] += 1
            with sock:
                sent = 0
                while not self.stopping.is_set():
                    try:
                        sock.settimeout(0.5)
                        if sock.recv(100) == b"" and kind == "silent":
                            break  # hung up on: connect again
                    except TimeoutError:
                        pass
                    except OSError:
                        break
                    if kind == "trickling":
                        try:
                            sock.sendall(trickle[sent % len(trickle):][:1])
                        except OSError:
                            break
                        sent += 1

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join()


@pytest.mark.parametrize("pending", [allreduce_gate.MAX_PENDING_HANDSHAKES, 8])
def test_a_flood_of_silent_and_trickling_connections_changes_nothing(cancer, reference, caplog, monkeypatch,
                                                                     pending):
    """A local user holding 40 silent and 8 trickling connections to the port, each reopened as soon as
    the driver closes it, from before the tasks connect until after training: the gang still connects, a
    connection broken mid-training reconnects, the bits are the same. With room for 8 handshakes at once
    the flood holds more than the driver keeps: every new connection evicts the oldest, and the evicted
    connect again at once."""
    monkeypatch.setattr(allreduce_gate, "MAX_PENDING_HANDSHAKES", pending)
    # Shorter than the training: handshakes the flood holds expire while it runs (a byte every 0.5 s kept
    # a connection forever when every read had its own timeout).
    monkeypatch.setattr(allreduce_gate, "HANDSHAKE_SECONDS", 2.0)
    port = free_port()
    flood = Flood(port)
    sessions = []
    original = AllReduceSession.open

    def opening(self):
        sessions.append(self)
        original(self)

    def hold_then_break_group_0(progress):
        if progress.passes == 1:  # however fast the passes: the flood's handshakes end while training
            deadline = time.monotonic() + 30
            while sessions[0]._gate.refusals()[0] < 2 * allreduce_gate.LOGGED_REFUSALS \
                    and time.monotonic() < deadline:
                time.sleep(0.1)
        if progress.passes == 2:  # and group 0 reconnects through the flood
            sessions[0]._connections[0].sock.shutdown(socket.SHUT_RDWR)

    try:
        with pytest.MonkeyPatch.context() as patch, caplog.at_level("INFO", logger="mrtrain.allreduce"):
            patch.setattr(AllReduceSession, "open", opening)
            flooded = fit(cancer, LOGISTIC, allreduce=True, allreduce_tasks=2,
                          allreduce_address=f"127.0.0.1:{port}", allreduce_timeout=60,
                          callback=hold_then_break_group_0)
    finally:
        flood.stop()
    assert flooded.theta_.tobytes() == reference.theta_.tobytes()
    assert flooded.history_ == reference.history_
    messages = [record.getMessage() for record in caplog.records]
    assert sum("group 0 connected" in message for message in messages) == 2, messages
    assert flood.opened[0] > 48, flood.opened
    refused = [m for m in messages if m.startswith("allreduce: refused a connection")]
    assert len(refused) == allreduce_gate.LOGGED_REFUSALS, refused  # then counted, not logged one by one
    count, causes = sessions[0]._gate.refusals()
    # Room for the whole flood: its handshakes expire. Room for 8: they are evicted after their second.
    assert ("no whole hello within 2 s" in causes) == (pending > 48), causes
    assert ("evicted by a newer connection (8 handshakes pending)" in causes) == (pending == 8), causes


def test_a_training_stopped_while_strangers_connect_says_what_the_port_refused(cancer, tmp_path):
    """One map slot for two tasks: the gang cannot form. Strangers meanwhile send garbage and hold silent
    connections: the one line that stops the training says how many connections the port refused, and why."""
    conf = tmp_path / "mrjob.conf"
    conf.write_text(json.dumps({"runners": {"local": {"num_cores": 1}}}))
    port = free_port()
    flood = Flood(port, silent=2, trickling=0)
    stopping = threading.Event()

    def garbage():
        while not stopping.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    sock.recv(100)
            except OSError:
                pass
            time.sleep(0.2)

    thread = threading.Thread(target=garbage, daemon=True)
    thread.start()
    try:
        with pytest.raises(TimeoutError) as raised:
            fit(cancer, LOGISTIC, allreduce=True, allreduce_tasks=2, allreduce_timeout=12,
                allreduce_address=f"127.0.0.1:{port}", conf_path=str(conf))
    finally:
        stopping.set()
        flood.stop()
        thread.join()
    assert re.fullmatch(
        r"--allreduce: 1 of 2 map tasks connected within 12 s \(.*\); train without --allreduce .*; "
        rf"meanwhile the driver's port {port} refused (\d+) connections that did not prove they belong to "
        r"this run \((.*)\)", str(raised.value)), str(raised.value)
    causes = str(raised.value).rsplit("(", 1)[1]
    assert "not the protocol: " in causes and re.search(r"no whole hello within 10 s: \d", causes), causes
