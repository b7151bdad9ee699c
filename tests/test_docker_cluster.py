"""The compose cluster of docker-hadoop/, built and run for real: 2 DataNodes, 2 NodeManagers.

Everything goes through ``scripts/docker-cluster`` (the commands of docs/hadoop.md): ``up`` builds the image
and waits for the cluster, ``run -- ...`` runs mrtrain in a client container on the compose network, ``down``
removes it all. Models trained with ``--runner hadoop`` on the cluster are compared bit for bit with the local
runner's in the same image (same Python, numpy and BLAS: bitwise equality is a promise on one machine).

Without a Docker engine these tests fail, loudly: ``scripts/test`` starts one (``scripts/docker-cluster
engine start``), installing Debian's docker.io as root where it is missing.
"""

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(ROOT / "scripts" / "docker-cluster")
HDFS = "hdfs://namenode:8020/user/root"
#: The NameNode's WebHDFS as published on the host (docker-compose.yml): listings only, no redirects.
WEBHDFS = "http://127.0.0.1:19870/webhdfs/v1/user/root"
NAMENODE_JMX = "http://127.0.0.1:19870/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo"
TRAIN_TIMEOUT_S = 1200
MODEL_KEYS = ("coefficients", "intercept", "objective", "iterations", "passes", "converged", "stop_reason")

IRIS_TRAIN = ["mrtrain", "train", f"{HDFS}/iris", "--model", "softmax", "--optimizer", "newton",
              "--l2", "0.01", "--max-iter", "3"]
BINARY_TRAIN = ["mrtrain", "train", f"{HDFS}/binary", "--model", "logistic", "--optimizer", "lbfgs",
                "--max-iter", "4"]


def script(*args, timeout=900):
    result = subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"scripts/docker-cluster {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result


def client(*command, volumes=(), timeout=TRAIN_TIMEOUT_S):
    """Run ``command`` in a client container; the CompletedProcess."""
    args = [SCRIPT, "run"]
    for volume in volumes:
        args += ["-v", volume]
    return subprocess.run([*args, "--", *command], capture_output=True, text=True, timeout=timeout,
                          check=False)


def client_json(*command, volumes=()):
    result = client(*command, "--json", volumes=volumes)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def model_of(result):
    return {key: result[key] for key in MODEL_KEYS}


def container(service):
    return subprocess.run(
        ["docker", "ps", "-q", "--filter", "label=com.docker.compose.project=mrtrain-hadoop",
         "--filter", f"label=com.docker.compose.service={service}"],
        capture_output=True, text=True, check=True).stdout.split()


def http_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def checkpoints(directory):
    """Names of the checkpoints in the HDFS directory ``directory`` (under /user/root)."""
    try:
        listing = http_json(f"{WEBHDFS}/{directory}?op=LISTSTATUS&user.name=root")
    except OSError:
        return []
    return sorted(s["pathSuffix"] for s in listing["FileStatuses"]["FileStatus"]
                  if s["pathSuffix"].startswith("ckpt-"))


def wait_for(condition, what, timeout=600):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.5)


def live_datanodes():
    return len(json.loads(http_json(NAMENODE_JMX)["beans"][0]["LiveNodes"]))


@pytest.fixture(scope="module")
def cluster():
    """A fresh cluster (image built, empty HDFS) for the module, removed with its volumes after it."""
    script("down")
    script("up")
    try:
        yield
    finally:
        script("down")
        leftovers = subprocess.run(
            ["docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=mrtrain-hadoop"],
            capture_output=True, text=True, check=True).stdout.split()
        assert leftovers == []


@pytest.fixture(scope="module")
def binary_data(cluster, tmp_path_factory):
    """A 600 x 6 binary problem in libsvm format, ingested into HDFS in 4 partitions; the local mount."""
    folder = tmp_path_factory.mktemp("docker-data")
    rng = np.random.default_rng(7)
    X = rng.normal(size=(600, 6))
    y = (X @ np.array([1.5, -2.0, 0.5, 0.0, 1.0, -0.7]) + rng.normal(size=600) > 0).astype(int)
    lines = [f"{label} " + " ".join(f"{j + 1}:{float(v)!r}" for j, v in enumerate(row))
             for label, row in zip(y, X, strict=True)]
    (folder / "binary.libsvm").write_text("\n".join(lines) + "\n")
    volume = f"{folder}:/in:ro"
    client_json("mrtrain", "ingest", "/in/binary.libsvm", f"{HDFS}/binary", "--partitions", "4",
                volumes=[volume])
    return volume


@pytest.fixture(scope="module")
def binary_reference(binary_data):
    """The logistic model of BINARY_TRAIN on the local runner, in the same image."""
    return model_of(client_json(*BINARY_TRAIN, "--runner", "local"))


@pytest.fixture(scope="module")
def iris(cluster):
    """Iris ingested and trained as docs/hadoop.md shows, on the cluster and on the local runner."""
    client_json("mrtrain", "ingest", "/work/data/iris.libsvm", f"{HDFS}/iris", "--partitions", "4")
    started = time.time()
    on_cluster = client_json(*IRIS_TRAIN, "--runner", "hadoop", "--checkpoint-dir", f"{HDFS}/iris-ckpt")
    local = client_json(*IRIS_TRAIN, "--runner", "local")
    return {"cluster": on_cluster, "local": local, "started": started}


MAP_NODES = r"""
import json, sys, urllib.request
base = "http://jobhistory:19888/ws/v1/history/mapreduce/jobs"
def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)
nodes = {}
for job in (get(base)["jobs"] or {}).get("job", []):
    if job["startTime"] < float(sys.argv[1]) * 1000:
        continue
    for task in get(f"{base}/{job['id']}/tasks")["tasks"]["task"]:
        if task["type"] != "MAP":
            continue
        for attempt in get(f"{base}/{job['id']}/tasks/{task['id']}/attempts")["taskAttempts"]["taskAttempt"]:
            node = attempt["nodeHttpAddress"].split(":")[0]
            nodes[node] = nodes.get(node, 0) + 1
print(json.dumps(nodes))
"""


def test_image_python_has_exactly_what_setup_cfg_requires(cluster):
    result = client("sh", "-c", "pip check && python3 -c 'import mrtrain.mr_jobs.gradient, threadpoolctl'")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No broken requirements found" in result.stdout


def test_softmax_newton_on_the_cluster_is_the_local_model_and_uses_both_nodemanagers(iris):
    assert model_of(iris["cluster"]) == model_of(iris["local"])
    assert iris["cluster"]["passes"] >= 3
    result = client("python3", "-c", MAP_NODES, str(iris["started"]))
    assert result.returncode == 0, result.stderr
    nodes = json.loads(result.stdout)
    assert set(nodes) == {"nodemanager1", "nodemanager2"}, nodes


def test_allreduce_without_an_address_reaches_the_nodemanagers_and_is_the_local_model(binary_reference):
    # No --allreduce-address: the driver listens on the client container's address toward the
    # ResourceManager, which the NodeManagers' tasks reach (127.0.0.1 would be their own container).
    result = client("mrtrain", "-v", *BINARY_TRAIN[1:], "--runner", "hadoop", "--allreduce", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    listening = re.search(r"allreduce: listening on (\S+), this host's address toward the ResourceManager",
                          result.stderr)
    assert listening and not listening.group(1).startswith("127."), result.stderr[-3000:]
    assert re.search(r"allreduce: all \d+ map tasks connected", result.stderr), result.stderr[-3000:]
    assert model_of(json.loads(result.stdout.strip().splitlines()[-1])) == binary_reference


def test_a_killed_nodemanager_mid_training_leaves_the_model_unchanged(binary_data, binary_reference):
    command = [SCRIPT, "run", "--", *BINARY_TRAIN, "--runner", "hadoop", "--checkpoint-dir",
               f"{HDFS}/nm-ckpt", "--json"]
    training = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: checkpoints("nm-ckpt") or training.poll() is not None, "the first checkpoint")
        assert training.poll() is None, "training ended before a NodeManager could be killed"
        subprocess.run(["docker", "kill", *container("nodemanager2")], check=True, capture_output=True)
        out, err = training.communicate(timeout=TRAIN_TIMEOUT_S)
    finally:
        if training.poll() is None:
            training.kill()
    assert training.returncode == 0, err[-3000:]
    assert model_of(json.loads(out.strip().splitlines()[-1])) == binary_reference
    script("up")  # the NodeManager back, for the next tests


def test_a_killed_datanode_leaves_reads_to_the_replica(iris):
    subprocess.run(["docker", "kill", *container("datanode1")], check=True, capture_output=True)
    try:
        wait_for(lambda: live_datanodes() == 1, "the NameNode to see one DataNode", timeout=120)
        metrics = client_json("mrtrain", "evaluate", f"{HDFS}/iris", "--model-dir", f"{HDFS}/iris-ckpt",
                              "--runner", "hadoop")
    finally:
        script("up")
    assert metrics["metrics"] == iris["cluster"]["metrics"]


def test_a_killed_client_reruns_from_the_hdfs_checkpoint(binary_data, binary_reference):
    command = [*BINARY_TRAIN, "--runner", "hadoop", "--checkpoint-dir", f"{HDFS}/client-ckpt"]
    training = subprocess.Popen([SCRIPT, "run", "--", *command], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: checkpoints("client-ckpt") or training.poll() is not None, "the first checkpoint")
        assert training.poll() is None, "training ended before the client could be killed"
        subprocess.run(["docker", "kill", *container("client")], check=True, capture_output=True)
        training.communicate(timeout=60)
    finally:
        if training.poll() is None:
            training.kill()
    assert training.returncode != 0
    done = checkpoints("client-ckpt")
    assert len(done) >= 1
    # The killed client's lock names a process of another container: stale at once when the new container
    # got the same PID namespace (its pid 1 started at another time), else once its lease has not been
    # renewed for 30 s. The rerun takes the lock over and resumes.
    rerun = client("mrtrain", "-v", *command[1:], "--json")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "taking over the stale lock of pid 1 of 'root' on host 'client'" in rerun.stderr
    assert "resuming from" in rerun.stderr
    assert model_of(json.loads(rerun.stdout.strip().splitlines()[-1])) == binary_reference
