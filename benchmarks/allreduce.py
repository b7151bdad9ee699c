"""``train --allreduce`` on the local runner against one job per pass and Spark MLlib, with a pass profile.

Run ``python3 -m benchmarks.allreduce [--json OUT] [--repeats N] [--spark auto|yes|no]``.

The problem is :mod:`benchmarks.data`'s ``higgs`` (logistic, 1M rows x 28 features, 2 partitions, l2 1e-4)
with the target of :mod:`benchmarks.run`: scikit-learn's optimum f* + 1e-6·|f*|. mrtrain trains with
Newton and L-BFGS on the local runner, one map-only job per pass (``--reducers 0``) and with
``--allreduce``, each from an empty partition cache; Spark MLlib ``local[2]`` L-BFGS trains on the same
Parquet rows cached in memory (its fit alone is the comparison: its load is reported apart). Every row
carries the load average (1 minute) before and after it ran: the machine may be shared.

The profile splits a training's wall time into: *start* (AllReduce: starting the job and waiting for every
task to connect; one job per pass: none), *passes* (the driver's wall time inside each pass: sending the
points, the tasks' work, receiving and adding the vectors; for one job per pass the whole job), of which
*task compute* is the model arithmetic of the largest partition at the pass's points and Hessians, timed
in this process on one BLAS thread from the decoded rows (tasks run in parallel, one partition each), and
*driver step* (everything outside the passes: the optimizer, checkpoints, logging). *wire and wait* is
passes minus task compute: messages, task scheduling and, on the first pass, reading the partitions.
"""

import argparse
import json
import logging
import os
import statistics
import sys
import time

import numpy as np

from benchmarks import data, report
from benchmarks.objective import Scorer, sklearn_reference
from benchmarks.systems import Spark, run_mrtrain, spark_unavailable_reason
from mrtrain.allreduce import AllReduceSession
from mrtrain.engine.registry import make_model
from mrtrain.launcher import JobLauncher
from mrtrain.mr_jobs.partition_job import single_threaded_blas

log = logging.getLogger(__name__)

#: (label, Trainer settings) of the mrtrain runs.
RUNS = (
    ("newton, one job per pass", {"optimizer": "newton", "reducers": 0}),
    ("newton, allreduce", {"optimizer": "newton", "allreduce": True}),
    ("lbfgs, one job per pass", {"optimizer": "lbfgs", "reducers": 0}),
    ("lbfgs, allreduce", {"optimizer": "lbfgs", "allreduce": True}),
)


class PassTimer:
    """Times every pass (and the AllReduce job's start) of the trainings run while it is active."""

    def __init__(self):
        self.passes = []
        self.start_s = 0.0
        self._saved = []

    def _wrap(self, owner, name, record):
        original = getattr(owner, name)

        def timed(instance, *args, **kwargs):
            started = time.perf_counter()
            try:
                return original(instance, *args, **kwargs)
            finally:
                record(time.perf_counter() - started, args)

        self._saved.append((owner, name, original))
        setattr(owner, name, timed)

    def __enter__(self):
        def on_pass(seconds, args):
            thetas, task = args[1], args[2]
            self.passes.append((seconds, int(np.shape(thetas)[0]), int(task.get("hessian", 0))))

        def on_open(seconds, _):
            self.start_s += seconds

        self._wrap(AllReduceSession, "open", on_open)
        self._wrap(AllReduceSession, "sum_vector", on_pass)
        self._wrap(JobLauncher, "sum_vector", on_pass)
        return self

    def __exit__(self, *_):
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)


class ComputeTimer:
    """Seconds of the model arithmetic on the largest partition at ``m`` points with ``hessian`` Hessians."""

    def __init__(self, dataset, problem):
        largest = max(dataset.partitions, key=lambda part: part.rows)
        from mrtrain.storage.dataset import read_partition

        self.X, y, self.w = read_partition(largest.uri, expected_sha256=largest.sha256,
                                           n_features=problem.features)
        self.model = make_model(problem.model, problem.features, classes=dataset.classes)
        self.y = self.model.encode_labels(y)
        self._seconds = {}

    def __call__(self, m, hessian):
        if (m, hessian) not in self._seconds:
            thetas = np.random.default_rng(0).normal(scale=0.1, size=(m, self.model.n_params))
            times = []
            for _ in range(3):
                started = time.perf_counter()
                with single_threaded_blas():
                    self.model.partial_sums(self.X, self.y, self.w, thetas, hessian=hessian).to_vector()
                times.append(time.perf_counter() - started)
            self._seconds[m, hessian] = min(times)
        return self._seconds[m, hessian]


def profile(row, timer, compute, allreduce):
    """The row's time split: start, passes, task compute, wire and wait, driver step (seconds)."""
    pass_s = [seconds for seconds, _, _ in timer.passes]
    start_s = timer.start_s if allreduce else 0.0
    if pass_s:
        pass_s[0] -= start_s  # the first AllReduce pass starts the job
    task_s = [compute(m, hessian) for _, m, hessian in timer.passes]
    passes_total = sum(pass_s)
    later = pass_s[1:] or pass_s
    later_task = task_s[1:] or task_s
    return {
        "start_s": start_s,
        "passes_s": passes_total,
        "first_pass_s": pass_s[0] if pass_s else None,
        "later_pass_s_median": statistics.median(later) if later else None,
        "later_task_compute_s_median": statistics.median(later_task) if later_task else None,
        "task_compute_s": sum(task_s),
        "wire_and_wait_s": passes_total - sum(task_s),
        "driver_step_s": row["fit_s"] - passes_total - start_s,
    }


def measure(repeats, cache_dir):
    """Every mrtrain run ``repeats`` times; ``(scorer, dataset, reference row, rows)``, rows with profiles."""
    problem = data.FULL[0]
    dataset = data.ensure_dataset(problem, partitions=2, cache_dir=cache_dir)
    X, y, _ = dataset.read_all()
    scorer = Scorer(problem, np.array(X), y, dataset.classes)
    reference = sklearn_reference(scorer)
    compute = ComputeTimer(dataset, problem)
    rows = []
    for repeat in range(repeats):
        for label, settings in RUNS:
            log.info("higgs: mrtrain local %s (run %d)", label, repeat + 1)
            load_before = os.getloadavg()[0]
            with PassTimer() as timer:
                row = run_mrtrain(scorer, dataset, runner="local", label=f"mrtrain local {label}", **settings)
            row.update(profile(row, timer, compute, settings.get("allreduce", False)),
                       run=repeat + 1, load_before=load_before, load_after=os.getloadavg()[0])
            rows.append(row)
    return scorer, dataset, reference, rows


def spark_row(scorer, dataset, use_spark):
    """Spark MLlib's row (started after every mrjob run), or one saying why it did not run."""
    reason = "not requested (--spark no)" if use_spark == "no" else spark_unavailable_reason()
    if reason is not None:
        if use_spark == "yes":
            raise RuntimeError(f"--spark yes, but {reason}")
        return {"system": "Spark MLlib local[2] l-bfgs", "skipped": reason}
    load_before = os.getloadavg()[0]
    spark = Spark()
    try:
        row = spark.run(scorer, dataset)
    finally:
        spark.stop()
    row.update(load_before=load_before, load_after=os.getloadavg()[0])
    return row


def _cell(value, fmt="{:.2f}"):
    return "–" if value is None else fmt.format(value)


def render(results):
    """The Markdown table and the comparison with Spark."""
    spark = results["spark"]
    spark_fit = spark.get("fit_s")
    lines = [
        "| system | run | fit s | to target s | passes (to target) | s/pass after the first | job start s | "
        "driver step s | task compute s | wire and wait s | ÷ Spark fit (to target) | load before → after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        ratio = row["to_target_s"] / spark_fit if spark_fit and row["to_target_s"] else None
        lines.append(
            f"| {row['system']} | {row['run']} | {row['fit_s']:.2f} | {_cell(row['to_target_s'])} | "
            f"{row['passes']} ({_cell(row.get('passes_to_target'), '{}')}) | "
            f"{_cell(row['later_pass_s_median'], '{:.3f}')} | {row['start_s']:.2f} | "
            f"{row['driver_step_s']:.2f} | {row['task_compute_s']:.2f} | {row['wire_and_wait_s']:.2f} | "
            f"{_cell(ratio)} | {row['load_before']:.1f} → {row['load_after']:.1f} |"
        )
    if spark_fit:
        lines.append(
            f"| {spark['system']} (load {spark['load_s']:.2f} s, not counted) | 1 | {spark_fit:.2f} | "
            f"{_cell(spark['to_target_s'])} | {spark['iterations']} iterations | – | – | – | – | – | 1.00 | "
            f"{spark['load_before']:.1f} → {spark['load_after']:.1f} |"
        )
    else:
        lines.append(f"| {spark['system']} | – | skipped: {spark['skipped']} |")
    machine = results["machine"]
    lines.append("")
    lines.append(f"Machine: {machine['nproc']} cores, {machine['cpu']}, {machine['ram_gib']} GiB RAM; Python "
                 f"{machine['python']}, numpy {machine['numpy']}, mrjob {machine['mrjob']}, pyspark "
                 f"{machine['pyspark']}; target f* + 1e-6·|f*| with f* = {results['optimum']:.12f}.")
    return "\n".join(lines)


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.allreduce",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the full results to this JSON file")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every mrtrain setting. Default: 1")
    parser.add_argument("--spark", choices=("auto", "yes", "no"), default="auto",
                        help="run Spark MLlib local[2]. Default: %(default)s")
    parser.add_argument("--cache-dir", default=data.CACHE_DIR, help="dataset cache. Default: %(default)s")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be an int >= 1. Got {args.repeats} instead.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("mrjob", "mrtrain", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    machine = report.describe_machine()
    scorer, dataset, reference, rows = measure(args.repeats, args.cache_dir)
    spark = spark_row(scorer, dataset, args.spark)
    results = {"command": report.command_line(), "machine": machine, "optimum": scorer.optimum,
               "target": scorer.target, "reference": reference, "rows": rows, "spark": spark}
    print(render(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
