"""Per-pass cost of the hadoop runner on a running cluster: fixed costs of small iterative jobs.

Run ``python3 -m benchmarks.hadoop [--passes N] [--json OUT]`` with the cluster's environment
(``eval "$(scripts/hadoop-cluster env)"``). It writes a tiny dataset (3 partitions) to HDFS and times
gradient passes through :class:`mrtrain.engine.mapreduce.JobLauncher` with one reducer and map-only, counting
the ``hadoop`` commands each job runs by pointing mrjob's ``hadoop_bin`` at a wrapper that logs its calls.
Nearly all of a pass here is Hadoop's fixed cost (JVM starts, submission, application master, containers).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid

import numpy as np

from mrtrain.engine.mapreduce import JobLauncher
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.storage.dataset import Dataset, write_dataset
from mrtrain.storage.filesystem import get_filesystem


def logging_hadoop_conf(conf_path, tmp):
    """A copy of the mrjob config ``conf_path`` whose ``hadoop_bin`` logs each command line.

    Returns
    -------
    (str, str)
        The new config's path and the log's path (one line per ``hadoop`` command, its arguments).
    """
    with open(conf_path, encoding="utf-8") as handle:
        conf = json.load(handle)
    hadoop_bin = conf["runners"]["hadoop"]["hadoop_bin"]
    calls = os.path.join(tmp, "hadoop-calls.log")
    wrapper = os.path.join(tmp, "hadoop")
    with open(wrapper, "w", encoding="utf-8") as handle:
        handle.write(f'#!/bin/bash\necho "$*" >> {calls}\nexec {hadoop_bin} "$@"\n')
    os.chmod(wrapper, 0o755)
    conf["runners"]["hadoop"]["hadoop_bin"] = wrapper
    path = os.path.join(tmp, "mrjob.conf")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(conf, handle)
    return path, calls


def measure(passes=3):
    """Median seconds per pass and ``hadoop`` commands per job, with 1 and 0 reducers.

    Returns
    -------
    dict
    """
    base = f"{os.environ['MRTRAIN_HDFS_URL']}/user/{os.environ['MRTRAIN_HDFS_USER']}/tmp/" \
           f"mrtrain-bench-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 5))
    y = (rng.random(3000) < 0.5).astype(float)
    results = {}
    try:
        write_dataset(base, X, y, partitions=3)
        dataset = Dataset.open(base)
        spec = {"kind": "logistic", "n_features": 5, "classes": [0.0, 1.0], "fit_intercept": True}
        for reducers in (1, 0):
            with tempfile.TemporaryDirectory(prefix="mrtrain-bench-hadoop-") as tmp:
                conf_path, calls = logging_hadoop_conf(os.environ["MRJOB_CONF"], tmp)
                times = []
                with JobLauncher(dataset, spec, runner="hadoop", conf_path=conf_path,
                                 reducers=reducers) as launcher:
                    for _ in range(passes):
                        started = time.perf_counter()
                        launcher.sum_vector(MRGradient, np.zeros((4, 6)), {"hessian": 0})
                        times.append(time.perf_counter() - started)
                with open(calls, encoding="utf-8") as handle:
                    commands = [line.split()[0] for line in handle if line.strip()]
            results[f"reducers={reducers}"] = {
                "pass_s_median": statistics.median(times), "pass_s": times,
                "hadoop_commands": {name: commands.count(name) for name in sorted(set(commands))},
                "jobs": passes,
            }
    finally:
        get_filesystem(base).delete(base, recursive=True)
    return results


def main(argv=None):
    """Command-line entry point: prints a table, optionally writes JSON."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.hadoop", description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args(argv)
    for name in ("MRJOB_CONF", "MRTRAIN_HDFS_URL", "MRTRAIN_HDFS_USER"):
        if not os.environ.get(name):
            parser.error(f"${name} is not set: run eval \"$(scripts/hadoop-cluster env)\" first")
    results = measure(args.passes)
    print("| job shape | s/pass (median) | s/pass (each) | hadoop commands over all jobs |")
    print("|---|---|---|---|")
    for shape, row in results.items():
        each = ", ".join(f"{t:.1f}" for t in row["pass_s"])
        commands = ", ".join(f"{name} ×{count}" for name, count in row["hadoop_commands"].items())
        print(f"| {shape}, {row['jobs']} jobs | {row['pass_s_median']:.1f} | {each} | {commands} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
