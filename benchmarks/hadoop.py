"""Per-pass cost of the hadoop runner on a running cluster: fixed costs of small iterative jobs.

Run ``python3 -m benchmarks.hadoop [--passes N] [--json OUT]`` with the cluster's environment
(``eval "$(scripts/hadoop-cluster env)"``). It writes a tiny dataset (3 partitions) to HDFS and times
gradient passes through :class:`mrtrain.launcher.JobLauncher` with one reducer and map-only, counting
the ``hadoop`` commands each job runs by pointing mrjob's ``hadoop_bin`` at a wrapper that logs its calls.
Nearly all of a pass here is Hadoop's fixed cost (JVM starts, submission, application master, containers).

``python3 -m benchmarks.hadoop --allreduce`` instead trains whole models one job per pass (map-only) and
with ``--allreduce`` (one job per training), on the local runner and on the cluster, for the shipped Iris
(softmax, Newton) and the 1M x 28 higgs benchmark (logistic, Newton and L-BFGS; see
:mod:`benchmarks.data`), and reports jobs, passes, the first pass (for AllReduce: job start and gang wait
included) and the median of the later passes. One job per pass with L-BFGS on the cluster (25 jobs) runs
only with ``--all``.
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

from benchmarks import data
from mrtrain.launcher import JobLauncher
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.storage import partition_cache
from mrtrain.storage.dataset import MANIFEST_NAME, Dataset, write_dataset
from mrtrain.storage.filesystem import get_filesystem, join
from mrtrain.storage.ingest import ingest
from mrtrain.trainer import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: (dataset, model, optimizer, l2) of the trainings compared with and without AllReduce.
TRAININGS = (("iris", "softmax", "newton", 0.01), ("higgs", "logistic", "newton", 1e-4),
             ("higgs", "logistic", "lbfgs", 1e-4))


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


def _datasets(base, tmp):
    """``{(name, runner): dataset URI}``: Iris ingested, higgs copied; locally and to HDFS under ``base``."""
    iris_local = os.path.join(tmp, "iris")
    ingest(os.path.join(ROOT, "data", "iris.libsvm"), iris_local, partitions=3)
    ingest(os.path.join(ROOT, "data", "iris.libsvm"), join(base, "iris"), partitions=3)
    higgs = data.ensure_dataset(data.FULL[0])
    fs = get_filesystem(base)
    for name in [MANIFEST_NAME] + [os.path.basename(part.uri) for part in higgs.partitions]:
        with open(os.path.join(higgs.uri, name), "rb") as handle:
            fs.write_bytes(join(base, "higgs", name), handle.read())
    return {("iris", "local"): iris_local, ("iris", "hadoop"): join(base, "iris"),
            ("higgs", "local"): higgs.uri, ("higgs", "hadoop"): join(base, "higgs")}


def train(uri, model, optimizer, l2, runner, allreduce):
    """One training from an empty partition cache: jobs, passes, seconds, and the parameters' bytes."""
    jobs = []
    run = JobLauncher.run

    def counting(self, job_class, *args, **kwargs):
        jobs.append(job_class.__name__)
        return run(self, job_class, *args, **kwargs)

    seconds = []
    options = {"allreduce": True} if allreduce else {"reducers": 0}
    trainer = Trainer(model, optimizer=optimizer, l2=l2, runner=runner,
                      callback=lambda progress: seconds.append(progress.seconds), **options)
    with tempfile.TemporaryDirectory(prefix="mrtrain-bench-cache-") as cache:
        previous = os.environ.get(partition_cache.ROOT_ENV)
        os.environ[partition_cache.ROOT_ENV] = cache
        JobLauncher.run = counting
        try:
            started = time.perf_counter()
            fitted = trainer.fit(uri)
            total = time.perf_counter() - started
        finally:
            JobLauncher.run = run
            if previous is None:
                os.environ.pop(partition_cache.ROOT_ENV)
            else:
                os.environ[partition_cache.ROOT_ENV] = previous
    return {"jobs": len(jobs), "passes": fitted.n_passes_, "total_s": total, "first_pass_s": seconds[0],
            "later_pass_s_median": statistics.median(seconds[1:]), "theta": fitted.theta_.tobytes().hex()}


def measure_allreduce(everything=False):
    """Whole trainings one job per pass (map-only) and with AllReduce, on the local and hadoop runners.

    Returns
    -------
    list of dict
        One row per training, runner and mode.
    """
    base = f"{os.environ['MRTRAIN_HDFS_URL']}/user/{os.environ['MRTRAIN_HDFS_USER']}/tmp/" \
           f"mrtrain-bench-{uuid.uuid4().hex[:8]}"
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="mrtrain-bench-allreduce-") as tmp:
            uris = _datasets(base, tmp)
            for name, model, optimizer, l2 in TRAININGS:
                for runner in ("local", "hadoop"):
                    for allreduce in (False, True):
                        if runner == "hadoop" and optimizer == "lbfgs" and not allreduce and not everything:
                            continue
                        row = train(uris[name, runner], model, optimizer, l2, runner, allreduce)
                        rows.append({"data": name, "model": model, "optimizer": optimizer, "runner": runner,
                                     "mode": "allreduce" if allreduce else "one job per pass", **row})
    finally:
        get_filesystem(base).delete(base, recursive=True)
    return rows


def print_allreduce(rows):
    """The AllReduce comparison as a Markdown table."""
    print("| data, optimizer | runner | mode | jobs | passes | total s | first pass s | later passes s "
          "(median) | same bits |")
    print("|---|---|---|---|---|---|---|---|---|")
    first = {}
    for row in rows:
        key = (row["data"], row["optimizer"])
        same = "reference" if key not in first else ("yes" if row["theta"] == first[key] else "NO")
        first.setdefault(key, row["theta"])
        print(f"| {row['data']} {row['model']}, {row['optimizer']} | {row['runner']} | {row['mode']} | "
              f"{row['jobs']} | {row['passes']} | {row['total_s']:.1f} | {row['first_pass_s']:.2f} | "
              f"{row['later_pass_s_median']:.3f} | {same} |")


def main(argv=None):
    """Command-line entry point: prints a table, optionally writes JSON."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.hadoop", description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--allreduce", action="store_true",
                        help="compare whole trainings one job per pass and with --allreduce instead")
    parser.add_argument("--all", action="store_true",
                        help="with --allreduce: also L-BFGS one job per pass on the cluster (25 jobs)")
    args = parser.parse_args(argv)
    for name in ("MRJOB_CONF", "MRTRAIN_HDFS_URL", "MRTRAIN_HDFS_USER"):
        if not os.environ.get(name):
            parser.error(f"${name} is not set: run eval \"$(scripts/hadoop-cluster env)\" first")
    if args.allreduce:
        rows = measure_allreduce(args.all)
        print_allreduce(rows)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(rows, handle, indent=2)
        return 0
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
