"""The AllReduce driver's default address (mrtrain.allreduce_address): loopback on the local runner, this
host's address toward the ResourceManager on the hadoop runner, loopback with a warning when it has none."""

import shutil
import subprocess

import pytest

from mrtrain.allreduce_address import default_address


def yarn_conf(folder, webapp):
    """A Hadoop configuration directory whose ResourceManager web address is ``webapp``."""
    folder.mkdir(exist_ok=True)
    (folder / "yarn-site.xml").write_text(
        "<configuration><property><name>yarn.resourcemanager.webapp.address</name>"
        f"<value>{webapp}</value></property></configuration>")
    return str(folder)


def route_source(address):
    """The source address ``ip route get`` picks toward ``address`` (the kernel's answer), or None."""
    if not shutil.which("ip"):
        return None
    words = subprocess.run(["ip", "route", "get", address], capture_output=True, text=True).stdout.split()
    return words[words.index("src") + 1] if "src" in words else None


def test_local_runner_listens_on_loopback(monkeypatch, tmp_path):
    monkeypatch.setenv("HADOOP_CONF_DIR", yarn_conf(tmp_path, "192.0.2.1:8088"))
    assert default_address("local") == "127.0.0.1"


def test_hadoop_runner_listens_where_the_resourcemanager_is_reached(monkeypatch, tmp_path):
    monkeypatch.setenv("HADOOP_CONF_DIR", yarn_conf(tmp_path / "loop", "127.0.0.1:8088"))
    assert default_address("hadoop") == "127.0.0.1"  # the single-machine cluster: as before
    # A ResourceManager elsewhere (TEST-NET-1: routed by the default route, never answered; nothing is sent).
    expected = route_source("192.0.2.1")
    if expected is None:
        pytest.skip("no route to 192.0.2.1 on this machine")
    monkeypatch.setenv("HADOOP_CONF_DIR", yarn_conf(tmp_path / "net", "192.0.2.1:8088"))
    assert default_address("hadoop") == expected


@pytest.mark.parametrize("case", ["no conf", "unresolvable host"])
def test_without_a_resourcemanager_address_it_is_loopback_with_a_warning(case, monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("HADOOP_HOME", raising=False)
    if case == "no conf":
        monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    else:
        monkeypatch.setenv("HADOOP_CONF_DIR", yarn_conf(tmp_path, "no-such-host.invalid:8088"))
    with caplog.at_level("WARNING", logger="mrtrain.allreduce_address"):
        assert default_address("hadoop") == "127.0.0.1"
    assert any("pass --allreduce-address" in record.getMessage() for record in caplog.records)
