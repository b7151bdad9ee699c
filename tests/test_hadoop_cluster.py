"""The single-machine Hadoop of scripts/hadoop-cluster: launcher, HDFS, WebHDFS, mrjob on YARN.

Needs a running cluster (``scripts/hadoop-cluster start``); the ``hadoop_cluster`` fixture fails
loudly otherwise.
"""

import json
import os
import subprocess
import uuid
from itertools import accumulate
from pathlib import Path
from urllib.parse import urlsplit

import hdfs
import numpy
import pyarrow
import pytest
import requests
from mrjob.fs.hadoop import HadoopFilesystem

from tests.hadoop_probe_job import PROBE_ENV, MRHadoopProbe

pytestmark = pytest.mark.hadoop

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "hadoop-cluster"
NM_LOGS = SCRIPT.parent.parent / ".cache" / "hadoop" / "run" / "data" / "MiniHadoopClusterManager"
MANIFEST_LINES = ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]


def run_launcher(cluster, *args):
    return subprocess.run([cluster["launcher"], *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def webhdfs(hadoop_cluster):
    return hdfs.InsecureClient(hadoop_cluster["MRTRAIN_WEBHDFS_URL"],
                               user=hadoop_cluster["MRTRAIN_HDFS_USER"])


@pytest.fixture
def hdfs_dir(webhdfs):
    path = f"/tmp/mrtrain-test-cluster/{uuid.uuid4().hex}"
    webhdfs.makedirs(path)
    yield path
    webhdfs.delete(path, recursive=True)


def test_status_says_up(hadoop_cluster):
    result = subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is up" in result.stdout


def test_env_exports_what_the_team_uses(hadoop_cluster):
    result = subprocess.run([str(SCRIPT), "env"], capture_output=True, text=True, check=True)
    names = {line.split("=")[0].removeprefix("export ") for line in result.stdout.splitlines()}
    assert names == {"JAVA_HOME", "HADOOP_CONF_DIR", "MRJOB_CONF", "MRTRAIN_HDFS_URL",
                     "MRTRAIN_WEBHDFS_URL", "MRTRAIN_HDFS_USER", "PATH"}
    assert hadoop_cluster["MRTRAIN_HDFS_URL"] == "hdfs://127.0.0.1:8020"
    assert hadoop_cluster["MRTRAIN_WEBHDFS_URL"] == "http://127.0.0.1:9870"


def test_mrjob_conf_points_at_the_launcher_jar_and_this_python(hadoop_cluster):
    conf = json.loads(Path(hadoop_cluster["conf_path"]).read_text())["runners"]["hadoop"]
    assert conf["hadoop_bin"] == hadoop_cluster["launcher"]
    assert Path(conf["hadoop_streaming_jar"]).name.startswith("hadoop-streaming-3.4.")
    assert Path(conf["hadoop_streaming_jar"]).is_file()
    assert Path(conf["python_bin"]).is_absolute()


def test_launcher_version(hadoop_cluster):
    result = run_launcher(hadoop_cluster, "version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("Hadoop 3.4.")


def test_launcher_fs_round_trip(hadoop_cluster, hdfs_dir, tmp_path):
    local = tmp_path / "hello.txt"
    local.write_text("hello hdfs\n")
    uri = f"{hadoop_cluster['MRTRAIN_HDFS_URL']}{hdfs_dir}"
    assert run_launcher(hadoop_cluster, "fs", "-mkdir", "-p", f"{uri}/sub").returncode == 0
    put = run_launcher(hadoop_cluster, "fs", "-put", str(local), f"{uri}/sub/hello.txt")
    assert put.returncode == 0, put.stderr
    listing = run_launcher(hadoop_cluster, "fs", "-ls", f"{uri}/sub")
    assert listing.stdout.rstrip().endswith(f"{hdfs_dir}/sub/hello.txt"), listing.stdout
    cat = run_launcher(hadoop_cluster, "fs", "-cat", f"{uri}/sub/hello.txt")
    assert (cat.stdout, cat.stderr) == ("hello hdfs\n", "")


def test_missing_path_prints_only_the_no_such_file_line(hadoop_cluster):
    missing = f"{hadoop_cluster['MRTRAIN_HDFS_URL']}/tmp/mrtrain-no-such-{uuid.uuid4().hex}"
    result = run_launcher(hadoop_cluster, "fs", "-ls", missing)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"ls: `{missing}': No such file or directory"]
    assert not HadoopFilesystem([hadoop_cluster["launcher"]]).exists(missing)


def test_webhdfs_client_round_trip(webhdfs, hdfs_dir):
    webhdfs.write(f"{hdfs_dir}/a.bin", data=b"\x00\x01payload", overwrite=True)
    with webhdfs.read(f"{hdfs_dir}/a.bin") as reader:
        assert reader.read() == b"\x00\x01payload"
    webhdfs.rename(f"{hdfs_dir}/a.bin", f"{hdfs_dir}/b.bin")
    assert webhdfs.list(hdfs_dir) == ["b.bin"]
    assert webhdfs.delete(f"{hdfs_dir}/b.bin")
    assert webhdfs.list(hdfs_dir) == []


def test_webhdfs_redirects_to_a_datanode_on_localhost(hadoop_cluster, webhdfs, hdfs_dir):
    webhdfs.write(f"{hdfs_dir}/r.txt", data=b"x")
    url = (f"{hadoop_cluster['MRTRAIN_WEBHDFS_URL']}/webhdfs/v1{hdfs_dir}/r.txt"
           f"?op=OPEN&user.name={hadoop_cluster['MRTRAIN_HDFS_USER']}")
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 307
    assert urlsplit(response.headers["Location"]).hostname == "127.0.0.1"


@pytest.fixture(scope="module")
def probe_run(hadoop_cluster, webhdfs):
    """Run the probe job once on YARN over a 3-line manifest; return (records, apps submitted)."""
    base = f"/tmp/mrtrain-test-probe/{uuid.uuid4().hex}"
    webhdfs.write(f"{base}/manifest.txt", data="".join(f"{line}\n" for line in MANIFEST_LINES))
    token = uuid.uuid4().hex
    job = MRHadoopProbe([
        "-r", "hadoop", "--conf-path", hadoop_cluster["conf_path"],
        "--cmdenv", f"{PROBE_ENV}={token}",
        "-D", "mapreduce.input.lineinputformat.linespermap=1",
        f"{hadoop_cluster['MRTRAIN_HDFS_URL']}{base}/manifest.txt",
    ])
    try:
        with job.make_runner() as runner:
            runner.run()
            records = [value for _, value in job.parse_output(runner.cat_output())]
    finally:
        webhdfs.delete(base, recursive=True)
    return {"records": records, "token": token}


def test_nline_manifest_gives_one_map_task_per_line(probe_run):
    records = probe_run["records"]
    assert len({record["task_id"] for record in records}) == len(MANIFEST_LINES)
    # NLineInputFormat with streaming hands the mapper "byte offset<TAB>line".
    offsets = accumulate((len(line) + 1 for line in MANIFEST_LINES[:-1]), initial=0)
    expected = sorted(f"{offset}\t{line}" for offset, line in zip(offsets, MANIFEST_LINES, strict=True))
    assert sorted(record["line"] for record in records) == expected


def test_tasks_run_in_yarn_containers(probe_run):
    for record in probe_run["records"]:
        assert not record["task_id"].startswith("task_local"), record
        # container_<cluster timestamp>_<app>_<attempt>_<container>: the NodeManager logged it.
        _, stamp, app, _, _ = record["container_id"].split("_")
        logs = list(NM_LOGS.glob(f"*/*/application_{stamp}_{app}/{record['container_id']}"))
        assert logs, record


def test_tasks_see_cmdenv_numpy_and_pyarrow(probe_run):
    for record in probe_run["records"]:
        assert record["probe_env"] == probe_run["token"]
        assert (record["numpy"], record["pyarrow"]) == (numpy.__version__, pyarrow.__version__)


def test_fixture_exports_the_cluster_env(hadoop_cluster):
    assert os.environ["MRTRAIN_WEBHDFS_URL"] == hadoop_cluster["MRTRAIN_WEBHDFS_URL"]
    assert os.environ["PATH"].split(os.pathsep)[0] == str(Path(hadoop_cluster["launcher"]).parent)
