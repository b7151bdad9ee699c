"""Single-machine Hadoop (HDFS + WebHDFS + YARN + MapReduce) for mrtrain, from Maven Central jars.

``scripts/hadoop-cluster`` runs this module. Subcommands:

- ``fetch``  copy the pinned Hadoop jars (``docker-hadoop/minicluster/pom.xml``) into
  ``.cache/hadoop/lib`` with Maven; a second run reuses the cache and ``~/.m2``.
- ``start``  fetch, write the client files, start Hadoop's own mini cluster
  (``MiniHadoopClusterManager``: NameNode, DataNode, ResourceManager, NodeManager, JobHistory in one
  JVM; MapReduce tasks in YARN containers) on the fixed ports in ``PORTS``, wait until it serves.
- ``stop``   kill the cluster's process group and any container process left behind.
- ``status`` exit 0 if the cluster serves, 3 if not.
- ``env``    print the ``export`` lines of ``.cache/hadoop/env.sh``.

Generated client files (the rest of mrtrain relies on these names): ``conf/`` (Hadoop client
configuration), ``bin/hadoop`` (a launcher mrjob uses as ``hadoop_bin``), ``mrjob.conf`` (JSON) and
``env.sh``. Startup logs go to ``logs/``; scratch data to ``run/``, wiped on every start.
"""

import argparse
import getpass
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "docker-hadoop" / "minicluster" / "pom.xml"
CACHE = ROOT / ".cache" / "hadoop"
LIB = CACHE / "lib"
CONF = CACHE / "conf"
BIN = CACHE / "bin"
LOGS = CACHE / "logs"
RUN = CACHE / "run"
PID_FILE = CACHE / "cluster.pid"
ENV_FILE = CACHE / "env.sh"
MRJOB_CONF = CACHE / "mrjob.conf"
FETCH_STAMP = LIB / ".pom.sha256"

HOST = "127.0.0.1"
PORTS = {
    "namenode_rpc": 8020,
    "namenode_http": 9870,
    "resourcemanager": 8032,
    "resourcemanager_scheduler": 8030,
    "resourcemanager_tracker": 8031,
    "resourcemanager_admin": 8033,
    "resourcemanager_web": 8088,
    "jobhistory": 10020,
    "jobhistory_admin": 10033,
    "jobhistory_web": 19888,
}
HDFS_URL = f"hdfs://{HOST}:{PORTS['namenode_rpc']}"
WEBHDFS_URL = f"http://{HOST}:{PORTS['namenode_http']}"
RM_WEB_URL = f"http://{HOST}:{PORTS['resourcemanager_web']}"
STAGING_DIR = "/tmp/hadoop-yarn/staging"

NODEMANAGER_MB = 4096
CONTAINER_MB = 512
# Short-lived JVMs on 2 cores: C1 only and the serial collector halve AM and task start-up.
FAST_JVM = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
TASK_HEAP = "-Xmx384m"
HEARTBEAT_MS = 200
CLUSTER_HEAP = "-Xmx1536m"
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30
EXIT_DOWN = 3

# Hadoop's own list for Java 17 (hadoop_finalize_jpms_opts); unknown ones are ignored on older JVMs.
JAVA_OPENS = [
    "-XX:+IgnoreUnrecognizedVMOptions",
    *(
        f"--add-opens=java.base/{pkg}=ALL-UNNAMED"
        for pkg in (
            "java.io", "java.lang", "java.lang.reflect", "java.math", "java.net", "java.nio",
            "java.text", "java.util", "java.util.concurrent", "java.util.zip", "sun.nio.ch",
            "sun.security.util", "sun.security.x509",
        )
    ),
    "--add-exports=java.base/sun.net.dns=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "-Djava.net.preferIPv4Stack=true",
]


def hadoop_version():
    """Return the Hadoop version pinned in the fetch pom (``hadoop.version``)."""
    match = re.search(r"<hadoop\.version>([^<]+)</hadoop\.version>", POM.read_text())
    if not match:
        raise SystemExit(f"No <hadoop.version> property in {POM}.")
    return match.group(1)


def streaming_jar():
    return LIB / f"hadoop-streaming-{hadoop_version()}.jar"


def java_home():
    """Return JAVA_HOME, or the JDK that owns the ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return Path(home)
    java = shutil.which("java")
    if not java:
        raise SystemExit("Java 17 is needed: no JAVA_HOME and no `java` on PATH.")
    return Path(java).resolve().parent.parent


# ---------------------------------------------------------------------------------------- fetch
def fetch():
    """Copy the pinned jars into LIB with Maven unless the cache already matches the pom."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if FETCH_STAMP.exists() and FETCH_STAMP.read_text() == digest and streaming_jar().exists():
        print(f"Hadoop {hadoop_version()} jars: cached in {LIB}")
        return
    mvn = shutil.which("mvn")
    if not mvn:
        raise SystemExit("Maven (`mvn`) is needed to fetch the Hadoop jars from Maven Central.")
    LOGS.mkdir(parents=True, exist_ok=True)
    partial = CACHE / "lib.partial"
    shutil.rmtree(partial, ignore_errors=True)
    print(f"Fetching Hadoop {hadoop_version()} jars with Maven (log: {LOGS / 'fetch.log'}) ...")
    started = time.monotonic()
    with open(LOGS / "fetch.log", "w") as log:
        result = subprocess.run(
            [mvn, "-B", "-f", str(POM), "dependency:copy-dependencies",
             f"-DoutputDirectory={partial}"],
            stdout=log, stderr=subprocess.STDOUT, check=False,
        )
    if result.returncode != 0:
        raise SystemExit(f"Maven fetch failed (exit {result.returncode}); see {LOGS / 'fetch.log'}")
    shutil.rmtree(LIB, ignore_errors=True)
    partial.rename(LIB)
    FETCH_STAMP.write_text(digest)
    size_mb = sum(f.stat().st_size for f in LIB.glob("*.jar")) / 2**20
    print(f"Fetched {len(list(LIB.glob('*.jar')))} jars, {size_mb:.0f} MiB, "
          f"in {time.monotonic() - started:.1f} s")


# -------------------------------------------------------------------------------- client files
def site_xml(properties):
    rows = "".join(
        f"  <property><name>{escape(k)}</name><value>{escape(str(v))}</value></property>\n"
        for k, v in properties.items()
    )
    return f'<?xml version="1.0"?>\n<!-- Generated by scripts/hadoop-cluster -->\n' \
           f"<configuration>\n{rows}</configuration>\n"


def client_config():
    """Return {file name: {key: value}} for the client conf dir (also seen by the AM and tasks)."""
    task_opts = " ".join([TASK_HEAP, *FAST_JVM, *JAVA_OPENS])
    return {
        "core-site.xml": {
            "fs.defaultFS": HDFS_URL,
            "hadoop.tmp.dir": str(RUN / "client-tmp"),
        },
        "hdfs-site.xml": {
            "dfs.namenode.rpc-address": f"{HOST}:{PORTS['namenode_rpc']}",
            "dfs.namenode.http-address": f"{HOST}:{PORTS['namenode_http']}",
            "dfs.webhdfs.enabled": "true",
            "dfs.replication": "1",
            "dfs.client.use.datanode.hostname": "false",
        },
        "yarn-site.xml": {
            "yarn.resourcemanager.hostname": HOST,
            "yarn.resourcemanager.address": f"{HOST}:{PORTS['resourcemanager']}",
            "yarn.resourcemanager.scheduler.address":
                f"{HOST}:{PORTS['resourcemanager_scheduler']}",
            "yarn.resourcemanager.resource-tracker.address":
                f"{HOST}:{PORTS['resourcemanager_tracker']}",
            "yarn.resourcemanager.admin.address": f"{HOST}:{PORTS['resourcemanager_admin']}",
            "yarn.resourcemanager.webapp.address": f"{HOST}:{PORTS['resourcemanager_web']}",
            "yarn.is.minicluster": "true",
            "yarn.scheduler.minimum-allocation-mb": "256",
        },
        "mapred-site.xml": {
            "mapreduce.framework.name": "yarn",
            "yarn.app.mapreduce.am.staging-dir": STAGING_DIR,
            "mapreduce.jobhistory.address": f"{HOST}:{PORTS['jobhistory']}",
            "mapreduce.jobhistory.admin.address": f"{HOST}:{PORTS['jobhistory_admin']}",
            "mapreduce.jobhistory.webapp.address": f"{HOST}:{PORTS['jobhistory_web']}",
            "yarn.app.mapreduce.am.resource.mb": CONTAINER_MB,
            "yarn.app.mapreduce.am.command-opts": task_opts,
            "mapreduce.map.memory.mb": CONTAINER_MB,
            "mapreduce.map.java.opts": task_opts,
            "mapreduce.reduce.memory.mb": CONTAINER_MB,
            "mapreduce.reduce.java.opts": task_opts,
            "mapreduce.task.io.sort.mb": "32",
            "yarn.app.mapreduce.am.scheduler.heartbeat.interval-ms": HEARTBEAT_MS,
            "mapreduce.client.progressmonitor.pollinterval": HEARTBEAT_MS,
        },
    }


def cluster_properties():
    """Return the -D settings of the mini cluster (server side)."""
    props = {}
    for values in client_config().values():
        props.update(values)
    del props["fs.defaultFS"]  # the mini DFS cluster sets it itself
    props.update({
        "hadoop.tmp.dir": str(RUN / "tmp"),
        "test.build.data": str(RUN / "data"),
        "dfs.permissions.enabled": "false",
        "dfs.namenode.http-address": f"{HOST}:{PORTS['namenode_http']}",
        "yarn.nodemanager.hostname": HOST,
        "yarn.minicluster.yarn.nodemanager.resource.memory-mb": NODEMANAGER_MB,
        "yarn.nodemanager.resource.memory-mb": NODEMANAGER_MB,
        "yarn.nodemanager.vmem-check-enabled": "false",
        "yarn.resourcemanager.nodemanagers.heartbeat-interval-ms": HEARTBEAT_MS,
        "yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage": "99.5",
        "yarn.scheduler.capacity.maximum-am-resource-percent": "0.5",
    })
    return props


LOG4J = """\
# Generated by scripts/hadoop-cluster: client logging to stderr in Hadoop's format (mrjob parses it).
hadoop.root.logger=INFO,console
log4j.rootLogger=${hadoop.root.logger}
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{yy/MM/dd HH:mm:ss} %p %c{2}: %m%n
"""

LAUNCHER = """\
#!/usr/bin/env bash
# Generated by scripts/hadoop-cluster: the `hadoop` command mrjob needs (version, fs, jar).
# `fs` logs only errors, so a missing path prints nothing but the "No such file" line;
# `jar` logs at INFO, so mrjob can read job ids and counters.
set -euo pipefail
export JAVA_HOME={java_home}
case "${{1:-}}" in
  version) main=org.apache.hadoop.util.VersionInfo; level=ERROR ;;
  fs | dfs) main=org.apache.hadoop.fs.FsShell; level=ERROR ;;
  jar) main=org.apache.hadoop.util.RunJar; level=INFO ;;
  classpath) echo {classpath}; exit 0 ;;
  *) echo "usage: hadoop version | fs ARGS | jar JAR ARGS | classpath" >&2; exit 2 ;;
esac
shift
exec "$JAVA_HOME/bin/java" -Xmx512m {fast} {opens} \\
  -Dhadoop.root.logger="$level",console -cp {classpath} "$main" "$@"
"""


def write_client_files():
    """Write conf/, bin/hadoop, mrjob.conf and env.sh; return the env.sh text."""
    jhome = java_home()
    CONF.mkdir(parents=True, exist_ok=True)
    for name, props in client_config().items():
        (CONF / name).write_text(site_xml(props))
    (CONF / "log4j.properties").write_text(LOG4J)

    BIN.mkdir(parents=True, exist_ok=True)
    launcher = BIN / "hadoop"
    launcher.write_text(LAUNCHER.format(
        java_home=shlex.quote(str(jhome)),
        classpath=shlex.quote(f"{CONF}:{LIB}/*"),
        fast=" ".join(FAST_JVM),
        opens=" ".join(JAVA_OPENS),
    ))
    launcher.chmod(0o755)

    user = getpass.getuser()
    MRJOB_CONF.write_text(json.dumps({"runners": {"hadoop": {
        "hadoop_bin": str(launcher),
        "hadoop_streaming_jar": str(streaming_jar()),
        "python_bin": sys.executable,
        "cmdenv": {"MRTRAIN_WEBHDFS_URL": WEBHDFS_URL, "MRTRAIN_HDFS_USER": user},
    }}}, indent=2) + "\n")

    env = {
        "JAVA_HOME": str(jhome),
        "HADOOP_CONF_DIR": str(CONF),
        "MRJOB_CONF": str(MRJOB_CONF),
        "MRTRAIN_HDFS_URL": HDFS_URL,
        "MRTRAIN_WEBHDFS_URL": WEBHDFS_URL,
        "MRTRAIN_HDFS_USER": user,
    }
    text = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    text += f'export PATH={shlex.quote(str(BIN))}:"$PATH"\n'
    ENV_FILE.write_text(text)
    return text


# ---------------------------------------------------------------------------------- lifecycle
def port_in_use(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def http_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def serving():
    """True when WebHDFS answers and the ResourceManager accepts connections.

    The mini cluster writes its configuration only after the NodeManager registered, so start
    also waits for that file. (Its REST APIs answer 404, and its JMX values lag up to 10 s.)
    """
    try:
        http_json(f"{WEBHDFS_URL}/webhdfs/v1/?op=GETFILESTATUS&user.name={getpass.getuser()}")
    except (OSError, ValueError):
        return False
    return port_in_use(PORTS["resourcemanager"])


def cluster_pid():
    """Return the pid in PID_FILE if that process is alive and is the mini cluster, else None."""
    try:
        pid = int(PID_FILE.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    # An exiting JVM whose main thread is gone shows an empty command line.
    if not alive(pid) or (cmdline and b"MiniHadoopClusterManager" not in cmdline):
        return None
    return pid


def leftover_pids():
    """Pids (not ours) whose command line or working directory is under RUN: task containers."""
    found = []
    marker = str(RUN)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if marker in cmdline or cwd.startswith(marker):
            found.append(int(proc.name))
    return found


def alive(pid):
    """True while any thread of the process runs (a JVM's main thread can exit before the rest)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        return any((task / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
                   for task in tasks)
    except OSError:
        return False


def wait_gone(pids, timeout):
    """Wait until none of pids is alive; return those still alive after timeout seconds."""
    deadline = time.monotonic() + timeout
    while (pids := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return pids


def stop(quiet=False):
    pid = cluster_pid()
    if pid:
        os.killpg(pid, signal.SIGTERM)
        if wait_gone([pid], STOP_TIMEOUT_S):
            os.killpg(pid, signal.SIGKILL)
            wait_gone([pid], 5)
    leftovers = leftover_pids()
    for leftover in leftovers:
        os.kill(leftover, signal.SIGKILL)
    wait_gone(leftovers, 5)
    PID_FILE.unlink(missing_ok=True)
    busy = [name for name, port in PORTS.items() if port_in_use(port)]
    if busy:
        raise SystemExit(f"Stopped, but ports still in use: {busy}")
    if not quiet:
        print("Hadoop mini cluster stopped." if pid else "Hadoop mini cluster was not running.")


def start():
    if cluster_pid() and serving():
        print("Hadoop mini cluster already running.")
        print_addresses()
        return
    stop(quiet=True)
    busy = {name: port for name, port in PORTS.items() if port_in_use(port)}
    if busy:
        raise SystemExit(f"Cannot start: ports in use on {HOST}: {busy}. "
                         "Stop whatever listens there (another Hadoop?) and retry.")
    fetch()
    write_client_files()
    shutil.rmtree(RUN, ignore_errors=True)
    RUN.mkdir(parents=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    conf_dump = RUN / "cluster-conf.xml"
    command = [
        str(java_home() / "bin" / "java"), CLUSTER_HEAP, *JAVA_OPENS,
        f"-Dtest.build.data={RUN / 'data'}", f"-Dhadoop.tmp.dir={RUN / 'tmp'}",
        "-cp", f"{LIB}/*", "org.apache.hadoop.mapreduce.MiniHadoopClusterManager",
        "-format", "-datanodes", "1", "-nodemanagers", "1",
        "-nnport", str(PORTS["namenode_rpc"]), "-nnhttpport", str(PORTS["namenode_http"]),
        "-rmport", str(PORTS["resourcemanager"]), "-jhsport", str(PORTS["jobhistory"]),
        "-writeConfig", str(conf_dump),
    ]
    for key, value in cluster_properties().items():
        command += ["-D", f"{key}={value}"]
    env = dict(os.environ, JAVA_HOME=str(java_home()))
    env.pop("HADOOP_CONF_DIR", None)
    started = time.monotonic()
    log_path = LOGS / "cluster.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=RUN, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    PID_FILE.write_text(str(proc.pid))
    print(f"Starting Hadoop mini cluster (pid {proc.pid}, log: {log_path}) ...")
    while not (conf_dump.exists() and serving()):
        if proc.poll() is not None or time.monotonic() - started > START_TIMEOUT_S:
            stop(quiet=True)
            tail = "".join(log_path.read_text().splitlines(keepends=True)[-30:])
            raise SystemExit(f"{tail}\nHadoop mini cluster failed to start "
                             f"(exit {proc.returncode}); full log: {log_path}")
        time.sleep(0.5)
    print(f"Hadoop mini cluster up in {time.monotonic() - started:.1f} s.")
    print_addresses()


def print_addresses():
    print(f"  HDFS            {HDFS_URL}")
    print(f"  WebHDFS         {WEBHDFS_URL}/webhdfs/v1/")
    print(f"  ResourceManager {HOST}:{PORTS['resourcemanager']}  (web {RM_WEB_URL})")
    print(f"  JobHistory      {HOST}:{PORTS['jobhistory']}  "
          f"(web http://{HOST}:{PORTS['jobhistory_web']})")
    print(f"  conf dir        {CONF}")
    print(f"  mrjob.conf      {MRJOB_CONF}")
    print(f"  env             source {ENV_FILE}   (or: eval \"$(scripts/hadoop-cluster env)\")")
    print("  stop            scripts/hadoop-cluster stop")


def status():
    if cluster_pid() and serving():
        print(f"Hadoop mini cluster is up (pid {cluster_pid()}).")
        print_addresses()
        return 0
    print("Hadoop mini cluster is down.")
    return EXIT_DOWN


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hadoop-cluster", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["fetch", "start", "stop", "status", "env"])
    command = parser.parse_args(argv).command
    if command == "fetch":
        fetch()
    elif command == "start":
        start()
    elif command == "stop":
        stop()
    elif command == "status":
        return status()
    else:
        print(write_client_files(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
