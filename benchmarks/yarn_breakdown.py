"""Where a job-per-pass pass goes on YARN, timed from the Hadoop client's own lines and the job's counters.

``python3 -m benchmarks.yarn_breakdown [--passes 3] [--config baseline --config ...]`` (cluster running,
its environment loaded: ``eval "$(scripts/hadoop-cluster env)"``) writes a 20k x 28 logistic dataset
(2 partitions) to HDFS and runs L-BFGS-sized gradient passes (4 points; map-only as ``--reducers 0`` unless
the configuration has a reducer) through :class:`mrtrain.launcher.JobLauncher`, each configuration's extra
``jobconf`` given in an mrjob config (:data:`CONFIGURATIONS`; the baseline is mrtrain's defaults, which ask
for uber mode for a pass this small, :mod:`mrtrain.uber`; ``containers (no uber)`` turns it off), then the
floor: a no-op streaming job (``/bin/cat`` over the same partition list, same input format and map count)
through ``hadoop jar``, in containers.

The mini cluster's ResourceManager and JobHistory servers answer no REST calls, so the phases are timed in
the driver, at the moment each line of the ``hadoop jar`` client arrives (mrjob logs them as they come):

- *driver*: the pass's start to mrjob's ``Running step`` (the pass's files staged over WebHDFS, mrjob's
  uploads of its job script and setup wrapper, the Python side before ``hadoop jar`` starts);
- *submit*: to ``Submitted application`` (the ``hadoop jar`` client JVM, its uploads of the job's jar,
  configuration and splits to the YARN staging directory, the submission);
- *AM start*: to ``running in uber mode`` (the application master's container and JVM, the job's setup);
- *maps*: to the first ``map 100%`` (map containers, task JVMs, Python, the map work);
- *to completion*: to ``completed successfully`` (the reduce, the commit, the client noticing);
- *after*: to the driver having the vector (counters, the output read, cleanup);
- and from the counters, per map task: *map task s* (``MILLIS_MAPS`` over the maps: the container's task
  time) and *map work s* (mrtrain's own ``map work ms``: read and sums inside Python).

The client reports progress every ``mapreduce.client.progressmonitor.pollinterval`` (1 s by default),
which bounds the resolution of the middle phases, and is itself a cost the ``poll 100 ms`` configuration
measures.
"""

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np

from mrtrain.launcher import JobLauncher
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.storage.dataset import Dataset, write_dataset
from mrtrain.storage.filesystem import get_filesystem

#: name -> (extra jobconf, reducers of the pass).
CONFIGURATIONS = {
    "baseline (map-only)": ({}, 0),
    "containers (no uber)": ({"mapreduce.job.ubertask.enable": "false"}, 0),
    "one reducer": ({}, 1),
    "poll 100 ms": ({"mapreduce.client.progressmonitor.pollinterval": "100"}, 0),
    "uber": ({"mapreduce.job.ubertask.enable": "true", "mapreduce.job.ubertask.maxmaps": "16"}, 0),
    "uber, poll 100 ms": ({"mapreduce.job.ubertask.enable": "true", "mapreduce.job.ubertask.maxmaps": "16",
                           "mapreduce.client.progressmonitor.pollinterval": "100"}, 0),
}
#: (phase, the client line that ends it).
MARKS = (("driver", "Running step"), ("submit", "Submitted application"),
         ("AM start", "running in uber mode"), ("maps", "map 100%"),
         ("to completion", "completed successfully"))


class ClientLines(logging.Handler):
    """Keeps ``(time.time(), message)`` of every record of mrjob's loggers (the client's lines among them)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append((time.time(), record.getMessage()))


def breakdown(lines, started, ended, counters=None, maps=1):
    """The phases of one job in seconds from ``lines`` seen between ``started`` and ``ended``."""
    phases, previous = {}, started
    for phase, mark in MARKS:
        at = next((when for when, text in lines if mark in text and when >= previous), None)
        if at is None and phase == "driver":  # the no-op job has no mrjob driver: the client starts at once
            at = started
        phases[phase] = (at - previous) if at is not None else float("nan")
        previous = at if at is not None else previous
    phases["after"] = ended - previous
    phases["total"] = ended - started
    tasks = next((group for name, group in (counters or {}).items() if name.strip() == "Job Counters"), {})
    phases["map task s"] = tasks.get("Total time spent by all map tasks (ms)", 0) / 1000 / maps
    phases["map work s"] = (counters or {}).get("mrtrain", {}).get("map work ms", 0) / 1000 / maps
    phases["uber"] = any("running in uber mode : true" in text for _, text in lines)
    return phases


def conf_with(jobconf, tmp):
    """A copy of ``$MRJOB_CONF`` with ``jobconf`` added to the hadoop runner's."""
    with open(os.environ["MRJOB_CONF"], encoding="utf-8") as handle:
        conf = json.load(handle)
    conf["runners"]["hadoop"].setdefault("jobconf", {}).update(jobconf)
    path = os.path.join(tmp, f"mrjob-{uuid.uuid4().hex[:6]}.conf")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(conf, handle)
    return path


def run_passes(dataset, jobconf, reducers, passes, tmp, client):
    """Breakdowns of ``passes`` gradient passes (4 points) with ``jobconf``."""
    spec = {"kind": "logistic", "n_features": 28, "classes": [0.0, 1.0], "fit_intercept": True}
    rows = []
    thetas = np.random.default_rng(1).normal(scale=0.01, size=(4, 29))
    with JobLauncher(dataset, spec, runner="hadoop", conf_path=conf_with(jobconf, tmp),
                     reducers=reducers) as launcher:
        for _ in range(passes):
            client.lines.clear()
            started = time.time()
            launcher.sum_vector(MRGradient, thetas, {"hessian": 0})
            ended = time.time()
            rows.append(breakdown(list(client.lines), started, ended, launcher.last_counters[0],
                                  len(dataset.partitions)))
    return rows


def noop_job(dataset_uri, partitions_uri):
    """Breakdown of a no-op streaming job (``/bin/cat``) over ``partitions_uri`` with NLineInputFormat."""
    with open(os.environ["MRJOB_CONF"], encoding="utf-8") as handle:
        hadoop = json.load(handle)["runners"]["hadoop"]
    output = f"{dataset_uri}-noop-{uuid.uuid4().hex[:6]}"
    lines = []
    started = time.time()
    with subprocess.Popen(
        [hadoop["hadoop_bin"], "jar", hadoop["hadoop_streaming_jar"], "-D", "mapreduce.job.reduces=0",
         "-D", "mapreduce.input.lineinputformat.linespermap=1",
         "-inputformat", "org.apache.hadoop.mapred.lib.NLineInputFormat",
         "-input", partitions_uri, "-output", output, "-mapper", "/bin/cat"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    ) as process:
        for line in process.stderr:
            lines.append((time.time(), line))
    ended = time.time()
    if process.returncode:
        raise RuntimeError("".join(text for _, text in lines[-20:]))
    get_filesystem(output).delete(output, recursive=True)
    return breakdown(lines, started, ended)


def medians(rows):
    keys = [key for key in rows[0] if key != "uber"]
    return {key: statistics.median(row[key] for row in rows) for key in keys}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.yarn_breakdown",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--config", action="append", choices=sorted(CONFIGURATIONS),
                        help="configurations to run (repeatable). Default: all")
    parser.add_argument("--no-noop", action="store_true", help="skip the no-op job's floor")
    args = parser.parse_args(argv)
    base = f"{os.environ['MRTRAIN_HDFS_URL']}/user/{os.environ['MRTRAIN_HDFS_USER']}/tmp/" \
           f"mrtrain-breakdown-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 28))
    y = (X @ rng.normal(size=28) + rng.normal(size=20_000) > 0).astype(float)
    results = {}
    print(f"load average (1 min) at the start: {os.getloadavg()[0]:.2f}", flush=True)
    try:
        write_dataset(base, X, y, partitions=2)
        dataset = Dataset.open(base)
        client = ClientLines()
        logging.getLogger("mrjob").addHandler(client)
        logging.getLogger("mrjob").setLevel(logging.INFO)
        with tempfile.TemporaryDirectory(prefix="mrtrain-breakdown-") as tmp:
            for name in args.config or list(CONFIGURATIONS):
                jobconf, reducers = CONFIGURATIONS[name]
                rows = run_passes(dataset, jobconf, reducers, args.passes, tmp, client)
                results[name] = medians(rows[1:] if len(rows) > 1 else rows)  # the first pass fills caches
                print(name, json.dumps({k: round(v, 2) for k, v in results[name].items()}), flush=True)
            if not args.no_noop:
                with JobLauncher(dataset, {"kind": "logistic", "n_features": 28, "classes": [0.0, 1.0],
                                           "fit_intercept": True}, runner="hadoop") as launcher:
                    rows = [noop_job(base, launcher.partition_list) for _ in range(args.passes)]
                results["no-op streaming job (floor)"] = floor = medians(rows)
                print("no-op", json.dumps({k: round(v, 2) for k, v in floor.items()}), flush=True)
    finally:
        get_filesystem(base).delete(base, recursive=True)
    keys = list(next(iter(results.values())))
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    print("| configuration | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(f"{row[key]:.2f}" for key in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
