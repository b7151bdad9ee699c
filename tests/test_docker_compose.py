"""docker-hadoop/: the compose cluster's files, checked without a Docker engine (tests/test_docker_cluster.py
runs it).

Parses docker-compose.yml, the Hadoop XML configuration, mrjob.conf and the Dockerfile, and checks
that the services exist, publish the documented ports and agree with each other on addresses,
versions and memory.
"""

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker-hadoop"
SERVICES = {"namenode", "datanode1", "datanode2", "resourcemanager", "nodemanager1",
            "nodemanager2", "jobhistory"}
#: Web UIs published on the host (127.0.0.1 only), on ports apart from the single-machine cluster's.
PUBLISHED = {"namenode": {9870: 19870}, "resourcemanager": {8088: 18088}, "jobhistory": {19888: 29888}}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def conf():
    """All properties of conf/*.xml as one {name: value} dict; a name set twice is an error."""
    merged = {}
    for path in sorted((DOCKER / "conf").glob("*-site.xml")):
        for prop in ET.parse(path).getroot().iter("property"):
            name, value = prop.findtext("name"), prop.findtext("value")
            assert name not in merged, f"{name} set twice (again in {path.name})"
            merged[name] = value
    return merged


def host_port(address):
    host, _, port = address.rpartition(":")
    return host, int(port)


def published_ports(service):
    """{container port: host port} of ``service``; every mapping must bind 127.0.0.1."""
    ports = {}
    for mapping in service.get("ports", []):
        address, host, container = str(mapping).split(":")
        assert address == "127.0.0.1", mapping
        ports[int(container)] = int(host)
    return ports


def test_cluster_services_exist_and_share_the_image(compose):
    services = compose["services"]
    assert SERVICES <= set(services)
    images = {services[name]["image"] for name in SERVICES | {"client"}}
    assert images == {"mrtrain-hadoop:3.4.2"}
    for name in SERVICES | {"client"}:
        build = services[name]["build"]
        assert (build["context"], build["dockerfile"]) == ("..", "docker-hadoop/Dockerfile")
        assert services[name]["restart"] == "no"  # a killed node stays down until a test restarts it


@pytest.mark.parametrize("service", sorted(SERVICES | {"client"}))
def test_only_the_web_uis_are_published_and_only_on_loopback(compose, service):
    assert published_ports(compose["services"][service]) == PUBLISHED.get(service, {})


def test_every_service_runs_its_daemon(compose):
    commands = {name: str(compose["services"][name]["command"]) for name in SERVICES}
    assert commands["namenode"] == "hadoop namenode"
    assert commands["datanode1"] == commands["datanode2"] == "hadoop datanode"
    assert commands["nodemanager1"] == commands["nodemanager2"] == "hadoop nodemanager"
    assert commands["resourcemanager"] == "hadoop resourcemanager"
    assert commands["jobhistory"] == "hadoop historyserver"
    launcher = (DOCKER / "bin" / "hadoop").read_text()
    for daemon in ("namenode", "datanode", "resourcemanager", "nodemanager", "historyserver"):
        assert re.search(rf"^  {daemon}\)", launcher, re.MULTILINE), daemon


def test_addresses_name_compose_services(compose, conf):
    services = compose["services"]
    fs = urlsplit(conf["fs.defaultFS"])
    assert (fs.scheme, fs.hostname, fs.port) == ("hdfs", "namenode", 8020)
    for key, service in [("dfs.namenode.rpc-address", "namenode"),
                         ("dfs.namenode.http-address", "namenode"),
                         ("yarn.resourcemanager.address", "resourcemanager"),
                         ("mapreduce.jobhistory.address", "jobhistory"),
                         ("mapreduce.jobhistory.webapp.address", "jobhistory")]:
        host, _ = host_port(conf[key])
        assert host == service == services[service]["hostname"], key
    assert conf["yarn.resourcemanager.hostname"] == "resourcemanager"


def test_mapreduce_runs_on_yarn_with_shuffle_and_webhdfs(conf):
    assert conf["mapreduce.framework.name"] == "yarn"
    assert conf["yarn.nodemanager.aux-services"] == "mapreduce_shuffle"
    assert conf["dfs.webhdfs.enabled"] == "true"
    assert int(conf["dfs.replication"]) == 2  # one copy on each DataNode


def test_lost_nodes_are_noticed_within_seconds(conf):
    dead_after_ms = (2 * int(conf["dfs.namenode.heartbeat.recheck-interval"])
                     + 10 * 1000 * int(conf["dfs.heartbeat.interval"]))
    assert dead_after_ms <= 30_000
    assert conf["dfs.namenode.avoid.read.stale.datanode"] == "true"
    assert int(conf["yarn.nm.liveness-monitor.expiry-interval-ms"]) <= 30_000


def test_a_nodemanager_fits_one_am_and_two_tasks(conf):
    am = int(conf["yarn.app.mapreduce.am.resource.mb"])
    tasks = int(conf["mapreduce.map.memory.mb"]) + int(conf["mapreduce.reduce.memory.mb"])
    assert am + tasks <= int(conf["yarn.nodemanager.resource.memory-mb"])
    for key in ("yarn.app.mapreduce.am.resource.mb", "mapreduce.map.memory.mb"):
        assert int(conf[key]) >= int(conf["yarn.scheduler.minimum-allocation-mb"])


@pytest.mark.parametrize("key", ["yarn.app.mapreduce.am.command-opts",
                                 "mapreduce.map.java.opts", "mapreduce.reduce.java.opts"])
def test_task_jvms_heap_fits_container_and_opens_java_base(conf, key):
    heap_mb = int(re.search(r"-Xmx(\d+)m", conf[key]).group(1))
    memory_key = {"yarn.app.mapreduce.am.command-opts": "yarn.app.mapreduce.am.resource.mb",
                  "mapreduce.map.java.opts": "mapreduce.map.memory.mb",
                  "mapreduce.reduce.java.opts": "mapreduce.reduce.memory.mb"}[key]
    assert heap_mb < int(conf[memory_key])
    assert "--add-opens=java.base/java.lang=ALL-UNNAMED" in conf[key]


def test_hadoop_version_is_the_same_everywhere(compose):
    pom = (DOCKER / "minicluster" / "pom.xml").read_text()
    pom_version = re.search(r"<hadoop\.version>([^<]+)<", pom).group(1)
    jar = json.loads((DOCKER / "mrjob.conf").read_text())["runners"]["hadoop"]["hadoop_streaming_jar"]
    assert Path(jar).name == f"hadoop-streaming-{pom_version}.jar"
    assert compose["services"]["namenode"]["image"] == f"mrtrain-hadoop:{pom_version}"


def test_image_python_requirements_come_from_setup_cfg():
    """The image installs requirements.py's output, and that is exactly what pip records for mrtrain."""
    from importlib.metadata import requires

    sys.path.insert(0, str(DOCKER))
    try:
        from requirements import install_requires
    finally:
        sys.path.remove(str(DOCKER))
    declared = install_requires(ROOT / "setup.cfg")
    installed = [r for r in requires("mrtrain") if "extra ==" not in r]
    normal = [str(Requirement(r)) for r in declared]
    assert sorted(normal) == sorted(str(Requirement(r)) for r in installed)
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "requirements.py --build /build/setup.cfg > /build/requirements.txt" in dockerfile
    assert "pip install --no-cache-dir --disable-pip-version-check -r /build/requirements.txt" in dockerfile
    assert "threadpoolctl>=3" in declared  # what map tasks import first


def test_base_image_is_a_build_argument_and_the_ca_bundle_stays_in_the_build_stage():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=debian:bookworm$", dockerfile, re.MULTILINE)
    stages = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]
    assert [stage.split()[0] for stage in stages] == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    assert "ca/" in stages[0] and "ca/" not in stages[1]
    for name in ("core-site.xml", "hdfs-site.xml", "yarn-site.xml", "mapred-site.xml", "log4j.properties"):
        assert (DOCKER / "conf" / name).exists()
    assert "COPY docker-hadoop/conf/ /opt/hadoop/etc/hadoop/" in stages[1]


def test_mrjob_conf_and_client_env_match_the_cluster(compose, conf):
    runner = json.loads((DOCKER / "mrjob.conf").read_text())["runners"]["hadoop"]
    client = compose["services"]["client"]["environment"]
    webhdfs = f"http://{conf['dfs.namenode.http-address']}"
    assert client["MRTRAIN_HDFS_URL"] == conf["fs.defaultFS"]
    assert client["MRTRAIN_WEBHDFS_URL"] == runner["cmdenv"]["MRTRAIN_WEBHDFS_URL"] == webhdfs
    assert runner["python_bin"] == "/opt/mrtrain/bin/python3"
    assert "PYTHONPATH" not in runner["cmdenv"]  # the code travels in the job's zip, as package mrtrain
    for name in SERVICES:
        assert "volumes" not in compose["services"][name] or all(
            not str(v).startswith("..") for v in compose["services"][name]["volumes"])


def test_without_a_docker_engine_the_script_says_so_in_one_line(tmp_path):
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    script = str(ROOT / "scripts" / "docker-cluster")
    up = subprocess.run([script, "up"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert up.returncode == 1
    lines = up.stderr.strip().splitlines()
    assert len(lines) == 1, up.stderr
    assert lines[0].startswith("docker-cluster: error: no Docker engine answers (`docker info` failed")
    assert "scripts/docker-cluster engine start" in lines[0]
    status = subprocess.run([script, "status"], capture_output=True, text=True, env=env, timeout=60,
                            check=False)
    assert status.returncode == 3 and "down" in status.stdout
