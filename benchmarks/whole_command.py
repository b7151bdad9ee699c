"""Issue 27's 1M × 28 targets as a user meets them: the whole ``mrtrain train`` command against Spark's fit.

Run ``python3 -m benchmarks.whole_command [--repeats N] [--spark-repeats N]``.

The problem is :mod:`benchmarks.data`'s ``higgs`` (logistic, 1M rows x 28 features, 2 partitions, l2 1e-4).
Each repeat runs ``mrtrain train DATA --model logistic --optimizer newton --l2 1e-4 --tol 1e-9 --gtol 1e-7
--runner local`` once as one job per pass (the default: one reducer, and the metrics pass) and once with
``--allreduce``, each as a new process from an empty partition cache, and takes its wall time and the CPU
seconds of the command and its children. Then Spark MLlib ``local[2]`` L-BFGS fits the same rows cached in
memory (:class:`benchmarks.systems.Spark`; its fit alone is the comparison). Every row carries the load
average (1 minute) before it ran: the machine may be shared.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import data, report
from benchmarks.allreduce import spark_row
from benchmarks.objective import Scorer, sklearn_reference

#: The options of the timed command after its dataset.
COMMAND = ["--model", "logistic", "--optimizer", "newton", "--l2", "1e-4", "--tol", "1e-9", "--gtol", "1e-7",
           "--runner", "local"]


def run_command(uri, extra):
    """One ``mrtrain train`` as a new process from an empty partition cache: (wall s, CPU s, stdout)."""
    with tempfile.TemporaryDirectory(prefix="mrtrain-whole-command-") as cache:
        env = {**os.environ, "MRTRAIN_PARTITION_CACHE_DIR": cache}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "mrtrain", "train", uri, *COMMAND, *extra, "--json"],
                              capture_output=True, text=True, env=env, check=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout.strip().splitlines()[-1]


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.whole_command",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each mode. Default: %(default)s")
    parser.add_argument("--spark-repeats", type=int, default=2,
                        help="Spark fits (0: none). Default: %(default)s")
    args = parser.parse_args(argv)
    print(f"machine: {report.describe_machine()}")
    dataset = data.ensure_dataset(data.FULL[0], partitions=2)
    rows = []
    for repeat in range(args.repeats):
        for label, extra in (("one job per pass", []), ("--allreduce", ["--allreduce"])):
            load = os.getloadavg()[0]
            wall, cpu, result = run_command(dataset.uri, extra)
            rows.append((label, wall, cpu, load))
            print(f"mrtrain, {label} (run {repeat + 1}): whole command {wall:.2f} s, CPU {cpu:.2f} s, "
                  f"load {load:.2f}", flush=True)
    if args.spark_repeats:
        X, y, _ = dataset.read_all()
        scorer = Scorer(data.FULL[0], np.array(X), y, dataset.classes)
        sklearn = sklearn_reference(scorer)
        print(f"scikit-learn newton-cholesky in memory: {sklearn['fit_s']:.2f} s", flush=True)
        for repeat in range(args.spark_repeats):
            spark = spark_row(scorer, dataset, "yes")
            print(f"Spark MLlib local[2] l-bfgs (run {repeat + 1}): fit {spark['fit_s']:.2f} s, load "
                  f"{spark['load_before']:.2f}", flush=True)
            for label, wall, _, _ in rows:
                print(f"  mrtrain {label}: {wall / spark['fit_s']:.2f} x this fit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
