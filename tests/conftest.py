"""Shared fixtures. ``hadoop_cluster``: the single-machine Hadoop started by scripts/hadoop-cluster."""

import os
import shlex
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
HADOOP_CACHE = ROOT / ".cache" / "hadoop"
HADOOP_ENV_FILE = HADOOP_CACHE / "env.sh"
START_HINT = "Start it first with `scripts/hadoop-cluster start` (stop: `scripts/hadoop-cluster stop`)."


def read_env_file(path):
    """Parse the ``export NAME=value`` lines of env.sh into a dict (PATH is left out)."""
    env = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name != "PATH":
            env[name] = shlex.split(value)[0]
    return env


def reachable(url):
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def partition_cache_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own, empty node-local partition cache (its tasks inherit the variable).

    Tests write the same seeded data many times; a cache shared between tests would let a test that
    corrupts a partition read the intact bytes another test cached.
    """
    path = tmp_path_factory.mktemp("partition-cache") / "cache"
    monkeypatch.setenv("MRTRAIN_PARTITION_CACHE_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def hadoop_cluster():
    """The running Hadoop cluster as a dict of env.sh values plus ``launcher`` and ``conf_path``.

    The env.sh values (MRTRAIN_HDFS_URL, MRTRAIN_WEBHDFS_URL, MRTRAIN_HDFS_USER, HADOOP_CONF_DIR,
    MRJOB_CONF, JAVA_HOME) and the launcher's directory on PATH are set in ``os.environ`` for the
    session. Fails (never skips) with instructions when the cluster is not up: a test marked
    ``hadoop`` must not pass silently without Hadoop.
    """
    if not HADOOP_ENV_FILE.exists():
        pytest.fail(f"No Hadoop cluster: {HADOOP_ENV_FILE} is missing. {START_HINT}", pytrace=False)
    env = read_env_file(HADOOP_ENV_FILE)
    for key in ("MRTRAIN_HDFS_URL", "MRTRAIN_WEBHDFS_URL"):
        if not reachable(env[key]):
            pytest.fail(f"No Hadoop cluster: {key}={env[key]} does not answer. {START_HINT}",
                        pytrace=False)
    probe = f"{env['MRTRAIN_WEBHDFS_URL']}/webhdfs/v1/?op=GETFILESTATUS&user.name=" \
            f"{env['MRTRAIN_HDFS_USER']}"
    try:
        urllib.request.urlopen(probe, timeout=5).close()
    except (OSError, urllib.error.HTTPError) as error:
        pytest.fail(f"No Hadoop cluster: WebHDFS {probe} failed ({error}). {START_HINT}",
                    pytrace=False)
    launcher = HADOOP_CACHE / "bin" / "hadoop"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.setenv("PATH", str(launcher.parent), prepend=os.pathsep)
        yield {
            **env,
            "launcher": str(launcher),
            "conf_path": env["MRJOB_CONF"],
        }
