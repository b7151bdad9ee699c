"""The dockerised Hadoop cluster of docker-hadoop/: build its image, start, check, stop.

``scripts/docker-cluster`` runs this module. Subcommands:

- ``engine start|stop``  make a Docker engine answer: as root, install Debian's ``docker.io``,
  ``docker-compose`` and ``debootstrap`` if ``dockerd`` is missing, and start ``dockerd`` in the background
  if no engine answers (``stop`` stops only a ``dockerd`` that ``start`` started). What ``scripts/test`` runs.
- ``build``   make the image ``mrtrain-hadoop:3.4.2``: the base image (``$MRTRAIN_BASE_IMAGE``, default
  ``debian:bookworm``) is pulled, or, where Docker Hub cannot be reached, made with ``debootstrap`` and
  ``docker import`` under that name; the Hadoop jars come from Maven Central through
  ``scripts/hadoop-cluster fetch``; then ``docker build``. Layers are cached by the engine.
- ``up``      build, start NameNode, 2 DataNodes, ResourceManager, 2 NodeManagers and JobHistory, and wait
  until HDFS has left safe mode with 2 live DataNodes, 2 NodeManagers are running and JobHistory answers.
- ``status``  exit 0 if the cluster is up and ready, 3 if not.
- ``run [-v HOST:CONTAINER[:ro]]... -- COMMAND...``  run a command in a fresh ``client`` container on the
  compose network (mrtrain is installed there; the repository's data/ is at /work/data).
- ``test``    ``python3 -m pytest -m docker`` (the tests bring the cluster up and down themselves).
- ``down``    remove every container, network and volume of the compose project, and check that none is
  left.

Every step prints what it did and how long it took.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-hadoop" / "docker-compose.yml"
DOCKERFILE = ROOT / "docker-hadoop" / "Dockerfile"
CACHE = ROOT / ".cache" / "docker"
CA_DIR = CACHE / "ca"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DOCKERD_PID = CACHE / "dockerd.pid"
DOCKERD_LOG = CACHE / "dockerd.log"

PROJECT = "mrtrain-hadoop"
IMAGE = "mrtrain-hadoop:3.4.2"
BASE_IMAGE = os.environ.get("MRTRAIN_BASE_IMAGE", "debian:bookworm")
SERVICES = ["namenode", "datanode1", "datanode2", "resourcemanager", "nodemanager1", "nodemanager2",
            "jobhistory"]
DATANODES = 2
NODEMANAGERS = 2
ENGINE_TIMEOUT_S = 60
READY_TIMEOUT_S = 300
EXIT_DOWN = 3

NO_ENGINE = ("no Docker engine answers (`docker info` failed{detail}). Start one (`dockerd`), or as root "
             "run `scripts/docker-cluster engine start`, which installs Debian's docker.io and starts it.")


def log(message):
    print(f"docker-cluster: {message}", flush=True)


def fail(message):
    raise SystemExit(f"docker-cluster: error: {message}")


def run(command, *, check=True, capture=False, **kwargs):
    if capture:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
    result = subprocess.run(command, check=False, **kwargs)
    if check and result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()[-1:] if capture else []
        fail(f"`{' '.join(map(str, command))}` exited {result.returncode}"
             + (f": {detail[0]}" if detail else ""))
    return result


# ------------------------------------------------------------------------------------ engine
def engine_answers():
    if not shutil.which("docker"):
        return False, "the docker command is not installed"
    result = run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False, capture=True)
    detail = (result.stderr or "").strip().splitlines()
    return result.returncode == 0, (detail[-1] if detail else "")


def require_engine():
    ok, detail = engine_answers()
    if not ok:
        fail(NO_ENGINE.format(detail=f": {detail}" if detail else ""))


def install_engine():
    """Install Debian's Docker engine, compose 1.29 and debootstrap (root only)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        fail(NO_ENGINE.format(detail=": dockerd is not installed, and installing it needs root and apt-get"))
    log("installing docker.io, docker-compose and debootstrap from Debian's packages ...")
    started = time.monotonic()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env, capture=True)
    run(["apt-get", "install", "-y", "-qq", "docker.io", "docker-compose", "debootstrap"], env=env,
        capture=True)
    log(f"installed in {time.monotonic() - started:.0f} s")


def engine_start():
    if engine_answers()[0]:
        log("a Docker engine answers")
        return
    if not shutil.which("dockerd") or not shutil.which("debootstrap"):
        install_engine()
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(DOCKERD_LOG, "w") as out:
        proc = subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    DOCKERD_PID.write_text(str(proc.pid))
    while not engine_answers()[0]:
        if proc.poll() is not None or time.monotonic() - started > ENGINE_TIMEOUT_S:
            tail = DOCKERD_LOG.read_text().strip().splitlines()[-1:] or ["(no output)"]
            fail(f"dockerd did not start (log {DOCKERD_LOG}): {tail[0]}")
        time.sleep(0.5)
    log(f"started dockerd (pid {proc.pid}) in {time.monotonic() - started:.1f} s")


def engine_stop():
    if not DOCKERD_PID.exists():
        return
    pid = int(DOCKERD_PID.read_text())
    DOCKERD_PID.unlink()
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log(f"stopped dockerd (pid {pid})")
            return
        time.sleep(0.2)
    log(f"dockerd (pid {pid}) still running after 30 s")


# ------------------------------------------------------------------------------------- image
def image_exists(name):
    return run(["docker", "image", "inspect", name], check=False, capture=True).returncode == 0


def base_image():
    """Make sure BASE_IMAGE exists: pull it, or build it with debootstrap where no registry answers."""
    if image_exists(BASE_IMAGE):
        return
    started = time.monotonic()
    if run(["docker", "pull", BASE_IMAGE], check=False, capture=True).returncode == 0:
        log(f"pulled {BASE_IMAGE} in {time.monotonic() - started:.0f} s")
        return
    suite = BASE_IMAGE.partition(":")[2] or "bookworm"
    if not shutil.which("debootstrap") or os.geteuid() != 0:
        fail(f"cannot pull {BASE_IMAGE}, and building it needs root and debootstrap (apt-get install "
             "debootstrap)")
    rootfs = CACHE / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    log(f"cannot pull {BASE_IMAGE}: building it with debootstrap {suite} (log {CACHE / 'debootstrap.log'})")
    with open(CACHE / "debootstrap.log", "w") as out:
        result = subprocess.run(["debootstrap", "--variant=minbase", "--include=ca-certificates", suite,
                                 str(rootfs), "http://deb.debian.org/debian"], stdout=out,
                                stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        fail(f"debootstrap exited {result.returncode}; see {CACHE / 'debootstrap.log'}")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    run(["docker", "import", "-", BASE_IMAGE], stdin=tar.stdout, capture=True)
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    log(f"made {BASE_IMAGE} with debootstrap in {time.monotonic() - started:.0f} s")


def build():
    require_engine()
    base_image()
    run([sys.executable, str(ROOT / "scripts" / "hadoop_cluster.py"), "fetch"])
    # The build stage that installs Python packages trusts this machine's CA bundle (needed behind an
    # intercepting TLS proxy); it stays out of git (.cache/) and out of the final image.
    shutil.rmtree(CA_DIR, ignore_errors=True)
    CA_DIR.mkdir(parents=True)
    if HOST_CA_BUNDLE.exists():
        shutil.copy(HOST_CA_BUNDLE, CA_DIR / "ca-certificates.crt")
    started = time.monotonic()
    log(f"building {IMAGE} from {BASE_IMAGE} (log {CACHE / 'build.log'}) ...")
    with open(CACHE / "build.log", "w") as out:
        result = subprocess.run(
            ["docker", "build", "-f", str(DOCKERFILE), "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
             "-t", IMAGE, str(ROOT)],
            stdout=out, stderr=subprocess.STDOUT, check=False, env=dict(os.environ, DOCKER_BUILDKIT="0"),
        )
    if result.returncode != 0:
        tail = (CACHE / "build.log").read_text().strip().splitlines()[-3:]
        fail(f"docker build exited {result.returncode}: {' | '.join(tail)}")
    log(f"built {IMAGE} in {time.monotonic() - started:.1f} s")


# ----------------------------------------------------------------------------------- cluster
def compose_command():
    if run(["docker", "compose", "version"], check=False, capture=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    fail("neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)")


def compose(*args, **kwargs):
    return run([*compose_command(), "-p", PROJECT, "-f", str(COMPOSE_FILE), *args], **kwargs)


def container(service):
    """The id of the running container of ``service`` ('' if none)."""
    return compose("ps", "-q", service, capture=True).stdout.strip()


READINESS = r"""
import json, sys, urllib.request
def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)
nn = get("http://namenode:9870/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo")["beans"][0]
rm = get("http://resourcemanager:8088/ws/v1/cluster/metrics")["clusterMetrics"]
get("http://jobhistory:19888/ws/v1/history/info")
print(json.dumps({"safemode": nn["Safemode"], "datanodes": len(json.loads(nn["LiveNodes"])),
                  "nodemanagers": rm["activeNodes"]}))
"""


def readiness():
    """{'safemode', 'datanodes', 'nodemanagers'} as the cluster reports them; None if it does not answer."""
    namenode = container("namenode")
    if not namenode:
        return None
    result = run(["docker", "exec", namenode, "/opt/mrtrain/bin/python3", "-c", READINESS], check=False,
                 capture=True)
    return json.loads(result.stdout) if result.returncode == 0 else None


def ready(state):
    return (state is not None and not state["safemode"] and state["datanodes"] == DATANODES
            and state["nodemanagers"] == NODEMANAGERS)


def up():
    build()
    started = time.monotonic()
    compose("up", "-d", "--no-build", *SERVICES, capture=True)
    log("started the containers; waiting for HDFS to leave safe mode with 2 DataNodes, 2 NodeManagers "
        "and JobHistory ...")
    state = None
    while not ready(state := readiness()):
        if time.monotonic() - started > READY_TIMEOUT_S:
            fail(f"cluster not ready after {READY_TIMEOUT_S} s (last state {state}); "
                 f"see `{' '.join(compose_command())} -p {PROJECT} -f {COMPOSE_FILE} logs`")
        time.sleep(1)
    log(f"cluster ready in {time.monotonic() - started:.1f} s: {state}")


def status():
    ok, _ = engine_answers()
    state = readiness() if ok else None
    if ready(state):
        log(f"up: {state}")
        return 0
    log(f"down{'' if state is None else f' or not ready: {state}'}")
    return EXIT_DOWN


def client_run(volumes, command):
    args = ["run", "--rm", "--no-deps", "-T"]
    for volume in volumes:
        args += ["-v", volume]
    return compose(*args, "client", *command, check=False).returncode


def leftovers():
    label = f"label=com.docker.compose.project={PROJECT}"
    found = {}
    for kind, listing in (("containers", ["ps", "-aq"]), ("networks", ["network", "ls", "-q"]),
                          ("volumes", ["volume", "ls", "-q"])):
        ids = run(["docker", *listing, "--filter", label], capture=True).stdout.split()
        if ids:
            found[kind] = ids
    return found


def down():
    if not engine_answers()[0]:
        log("no Docker engine answers: nothing to remove")
        return
    started = time.monotonic()
    compose("--profile", "client", "down", "-v", "--remove-orphans", "--timeout", "5", capture=True)
    left = leftovers()
    if left:
        fail(f"left behind after down: {left}")
    log(f"removed every container, network and volume of {PROJECT} in {time.monotonic() - started:.1f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="docker-cluster", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    engine = sub.add_parser("engine", help="start or stop a Docker engine (installs it as root)")
    engine.add_argument("action", choices=["start", "stop"])
    for name in ("build", "up", "status", "down", "test"):
        sub.add_parser(name)
    client = sub.add_parser("run", help="run a command in a client container")
    client.add_argument("-v", "--volume", action="append", default=[])
    client.add_argument("client_command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "engine":
        engine_start() if args.action == "start" else engine_stop()
    elif args.command == "build":
        build()
    elif args.command == "up":
        up()
    elif args.command == "status":
        return status()
    elif args.command == "down":
        down()
    elif args.command == "run":
        command = args.client_command[1:] if args.client_command[:1] == ["--"] else args.client_command
        if not command:
            parser.error("run needs a command after --")
        require_engine()
        return client_run(args.volume, command)
    else:
        return subprocess.run([sys.executable, "-m", "pytest", "-m", "docker"], cwd=ROOT,
                              check=False).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
