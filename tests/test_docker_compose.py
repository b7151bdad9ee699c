"""docker-hadoop/: the compose cluster for users with Docker, checked without a Docker engine.

Parses docker-compose.yml, the Hadoop XML configuration, mrjob.conf and the Dockerfile, and checks
that the services exist, publish the documented ports and agree with each other on addresses,
versions and memory.
"""

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

DOCKER = Path(__file__).resolve().parent.parent / "docker-hadoop"
SERVICES = {"namenode", "datanode1", "datanode2", "resourcemanager", "nodemanager1",
            "nodemanager2", "jobhistory"}
PUBLISHED = {
    "namenode": {8020, 9870},
    "resourcemanager": {8032, 8088},
    "jobhistory": {10020, 19888},
}


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
    return {int(str(port).split(":")[-1].split("/")[0]) for port in service.get("ports", [])}


def test_cluster_services_exist_and_share_the_image(compose):
    services = compose["services"]
    assert SERVICES <= set(services)
    images = {services[name]["image"] for name in SERVICES | {"client"}}
    assert images == {"mrtrain-hadoop:3.4.2"}
    assert all(services[name]["build"] == "." for name in SERVICES)


@pytest.mark.parametrize(("service", "ports"), sorted(PUBLISHED.items()))
def test_documented_ports_are_published(compose, service, ports):
    assert published_ports(compose["services"][service]) == ports


def test_every_service_runs_its_daemon(compose):
    commands = {name: str(compose["services"][name]["command"]) for name in SERVICES}
    assert "hdfs namenode" in commands["namenode"]
    assert commands["datanode1"] == commands["datanode2"] == "hdfs datanode"
    assert commands["nodemanager1"] == commands["nodemanager2"] == "yarn nodemanager"
    assert commands["resourcemanager"] == "yarn resourcemanager"
    assert commands["jobhistory"] == "mapred historyserver"


def test_addresses_name_compose_services_and_published_ports(compose, conf):
    services = compose["services"]
    fs = urlsplit(conf["fs.defaultFS"])
    assert (fs.scheme, fs.hostname, fs.port) == ("hdfs", "namenode", 8020)
    for key, service in [("dfs.namenode.rpc-address", "namenode"),
                         ("dfs.namenode.http-address", "namenode"),
                         ("yarn.resourcemanager.address", "resourcemanager"),
                         ("mapreduce.jobhistory.address", "jobhistory"),
                         ("mapreduce.jobhistory.webapp.address", "jobhistory")]:
        host, port = host_port(conf[key])
        assert host == service == services[service]["hostname"], key
        assert port in published_ports(services[service]), key
    assert conf["yarn.resourcemanager.hostname"] == "resourcemanager"


def test_mapreduce_runs_on_yarn_with_shuffle_and_webhdfs(conf):
    assert conf["mapreduce.framework.name"] == "yarn"
    assert conf["yarn.nodemanager.aux-services"] == "mapreduce_shuffle"
    assert conf["dfs.webhdfs.enabled"] == "true"
    assert int(conf["dfs.replication"]) == 2  # one copy on each DataNode


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


def test_hadoop_version_is_the_same_everywhere():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    pom = (DOCKER / "minicluster" / "pom.xml").read_text()
    docker_version = re.search(r"ARG HADOOP_VERSION=(\S+)", dockerfile).group(1)
    pom_version = re.search(r"<hadoop\.version>([^<]+)<", pom).group(1)
    jar = json.loads((DOCKER / "mrjob.conf").read_text())["runners"]["hadoop"][
        "hadoop_streaming_jar"]
    assert docker_version == pom_version
    assert Path(jar).name == f"hadoop-streaming-{docker_version}.jar"


def test_image_has_python_numpy_pyarrow_and_the_conf():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.MULTILINE)
    assert re.search(r"pip install .*numpy.*pyarrow", dockerfile)
    for name in ("core-site.xml", "hdfs-site.xml", "yarn-site.xml", "mapred-site.xml"):
        assert f"conf/{name}" in dockerfile


def test_mrjob_conf_and_client_env_match_the_cluster(compose, conf):
    runner = json.loads((DOCKER / "mrjob.conf").read_text())["runners"]["hadoop"]
    client = compose["services"]["client"]["environment"]
    webhdfs = f"http://{conf['dfs.namenode.http-address']}"
    assert client["MRTRAIN_HDFS_URL"] == conf["fs.defaultFS"]
    assert client["MRTRAIN_WEBHDFS_URL"] == runner["cmdenv"]["MRTRAIN_WEBHDFS_URL"] == webhdfs
    assert client["MRJOB_CONF"] == "/work/docker-hadoop/mrjob.conf"
    assert "PYTHONPATH" not in runner["cmdenv"]  # the code travels in the job's zip, as package mrtrain
    for name in ("nodemanager1", "nodemanager2"):
        assert "..:/work:ro" in compose["services"][name]["volumes"]
