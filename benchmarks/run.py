"""Benchmark mrtrain against scikit-learn and Spark MLlib.

Run ``python3 -m benchmarks.run [--quick] [--json OUT]``.

For every problem of :mod:`benchmarks.data`, scikit-learn fixes the optimum at matching regularization;
then each system trains on the same rows until its own stopping rule, and the table shows load and fit
time, time to the target (objective within 1e-6 relative of the optimum), passes, final objective and
accuracy. Then the map task against raw numpy, its peak memory, and the local runner's per-pass overhead.
The table goes to stdout as Markdown, everything to ``--json``.
"""

import argparse
import json
import logging
import os
import sys
import tempfile

import numpy as np

from benchmarks import data, mapper, overhead, report
from benchmarks.objective import Scorer, sklearn_reference
from benchmarks.systems import Spark, run_mrtrain, run_sklearn, spark_unavailable_reason

log = logging.getLogger(__name__)

#: Passes allowed to gradient descent in the full run (it is not expected to reach the target).
GD_MAX_ITER = 150


def _conf(tmp, name, local_options):
    """An mrjob config file (JSON) with ``local_options`` for the local runner; its path."""
    path = os.path.join(tmp, f"{name}.mrjob.conf")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"runners": {"local": local_options}}, handle)
    return path


def mrtrain_runs(problem, quick, tmp, cache_dir):
    """``(label, dataset, keyword arguments)`` of the mrtrain runs for ``problem``."""
    dataset = data.ensure_dataset(problem, partitions=2, cache_dir=cache_dir)
    map_only = {"runner": "local", "reducers": 0}
    allreduce = {"runner": "local", "allreduce": True}
    if quick:
        runs = [("mrtrain local newton", dataset, {"runner": "local", "optimizer": "newton"}),
                ("mrtrain local newton, map-only", dataset, {**map_only, "optimizer": "newton"}),
                ("mrtrain local newton, allreduce", dataset, {**allreduce, "optimizer": "newton"})]
        return runs + [(f"mrtrain inline {opt}", dataset, {"runner": "inline", "optimizer": opt})
                       for opt in ("lbfgs", "newton")]
    runs = [(f"mrtrain {runner} {opt}", dataset, {"runner": runner, "optimizer": opt})
            for runner in ("local", "inline") for opt in ("lbfgs", "newton")]
    runs += [(f"mrtrain local {opt}, {mode}", dataset, {**options, "optimizer": opt})
             for mode, options in (("map-only", map_only), ("allreduce", allreduce))
             for opt in ("lbfgs", "newton")]
    if problem.name != "higgs":
        return runs
    lbfgs = {"runner": "local", "optimizer": "lbfgs"}
    return runs + [
        ("mrtrain local gd", dataset, {"runner": "local", "optimizer": "gd", "max_iter": GD_MAX_ITER}),
        ("lever: local lbfgs, no partition cache", dataset, {**lbfgs, "partition_cache": False}),
        ("lever: local lbfgs, float32 storage",
         data.ensure_dataset(problem, dtype="float32", partitions=2, cache_dir=cache_dir), lbfgs),
        ("lever: local lbfgs, 8 partitions",
         data.ensure_dataset(problem, partitions=8, cache_dir=cache_dir), lbfgs),
        ("lever: local lbfgs, num_cores 1", dataset,
         {**lbfgs, "conf_path": _conf(tmp, "cores1", {"num_cores": 1})}),
    ]


def run_problem(problem, quick, tmp, cache_dir):
    """mrtrain and scikit-learn on one problem: ``(scorer, dataset, section of the report)``."""
    dataset = data.ensure_dataset(problem, partitions=2, cache_dir=cache_dir)
    X, y, _ = dataset.read_all()
    scorer = Scorer(problem, np.array(X), y, dataset.classes)
    rows = [sklearn_reference(scorer)]
    for label, ds, settings in mrtrain_runs(problem, quick, tmp, cache_dir):
        log.info("%s: %s", problem.name, label)
        rows.append(run_mrtrain(scorer, ds, label=label, **settings))
    rows.append(run_sklearn(scorer, dataset))
    section = {"problem": vars(problem), "dataset": dataset.uri, "partitions": len(dataset.partitions),
               "optimum": scorer.optimum, "target": scorer.target, "systems": rows}
    return scorer, dataset, section


def add_spark_rows(runs, use_spark):
    """Append Spark's row to every problem's section, or a row saying why Spark did not run.

    Spark starts only after every mrjob run: the local runner forks the driver process, and forked copies
    of a process holding a py4j gateway reset its connection when they exit.
    """
    reason = "not requested (--spark no; --quick leaves Spark out)" if use_spark == "no" else (
        spark_unavailable_reason())
    spark = None
    if reason is None:
        try:
            spark = Spark()
        except Exception as error:  # noqa: BLE001  (any failure to start Spark is reported, not raised)
            reason = f"Spark failed to start: {type(error).__name__}: {str(error).splitlines()[0]}"
    if spark is None and use_spark == "yes":
        raise RuntimeError(f"--spark yes, but {reason}")
    try:
        for scorer, dataset, section in runs:
            if spark is None:
                section["systems"].append({"system": "Spark MLlib local[2] l-bfgs", "skipped": reason,
                                           "reached": None})
            else:
                log.info("%s: Spark MLlib", scorer.problem.name)
                section["systems"].append(spark.run(scorer, dataset))
    finally:
        if spark is not None:
            spark.stop()


def mapper_rows(quick, cache_dir):
    """Mapper throughput for the L-BFGS pass (4 points) and the Newton pass (3 points, a Hessian at the
    first), reading Parquet (first pass) and from the partition cache (later passes)."""
    problems = data.QUICK if quick else data.FULL
    higgs, wide = problems[0], problems[1]
    higgs64 = data.ensure_dataset(higgs, cache_dir=cache_dir)
    wide64 = data.ensure_dataset(wide, cache_dir=cache_dir)
    cases = [("higgs float64, 2 partitions", higgs64, 4, 0, cached) for cached in (False, True)]
    cases += [("higgs float64, 2 partitions", higgs64, 3, 1, True),
              ("wide float64, 2 partitions", wide64, 4, 0, True)]
    if not quick:
        cases += [
            ("higgs float64, 2 partitions", higgs64, 3, 1, False),
            ("wide float64, 2 partitions", wide64, 4, 0, False),
            ("wide float64, 2 partitions", wide64, 3, 1, True),
            ("higgs float32, 2 partitions",
             data.ensure_dataset(higgs, dtype="float32", cache_dir=cache_dir), 4, 0, True),
            ("higgs float64, 8 partitions",
             data.ensure_dataset(higgs, partitions=8, cache_dir=cache_dir), 4, 0, True),
        ]
    return [mapper.measure(ds, "logistic", m, hessian, label, cached=cached)
            for label, ds, m, hessian, cached in cases]


def summarize(problems, mapper_table):
    """The assignment's targets, as measured."""
    summary = {}
    for result in problems:
        rows = {row["system"]: row for row in result["systems"]}
        name = result["problem"]["name"]
        spark = rows.get("Spark MLlib local[2] l-bfgs", {})
        local = [row for label, row in rows.items()
                 if label.startswith("mrtrain local") and row.get("to_target_s")]
        if local and spark.get("to_target_s"):
            best = min(local, key=lambda row: row["to_target_s"])
            with_load = spark["load_s"] + spark["to_target_s"]
            summary[f"{name}: best mrtrain local time-to-target / Spark"] = (
                f"{best['to_target_s'] / spark['to_target_s']:.2f} against Spark's fit alone, "
                f"{best['to_target_s'] / with_load:.2f} against its load + fit ({best['system']}: "
                f"{best['to_target_s']:.1f} s, from Parquet on disk; Spark: {spark['to_target_s']:.1f} s "
                f"on cached rows, {with_load:.1f} s with reading and caching them)")
        for label in ("mrtrain local newton", "mrtrain local lbfgs"):
            if label in rows:
                row = rows[label]
                summary[f"{name}: {label} passes (iterations)"] = (
                    f"{row['passes']} ({row['iterations']}), to target {row.get('passes_to_target')}")
        pairs = [(rows[f"mrtrain local {opt}"], rows[f"mrtrain inline {opt}"]) for opt in ("lbfgs", "newton")
                 if f"mrtrain local {opt}" in rows and f"mrtrain inline {opt}" in rows]
        if pairs:
            summary[f"{name}: local == inline bitwise"] = all(a["theta"] == b["theta"] for a, b in pairs)
        pairs = [(rows[f"mrtrain local {opt}"], rows[f"mrtrain local {opt}, allreduce"])
                 for opt in ("lbfgs", "newton") if f"mrtrain local {opt}, allreduce" in rows]
        if pairs:
            summary[f"{name}: allreduce == one job per pass bitwise"] = all(
                a["theta"] == b["theta"] for a, b in pairs
            )
    for row in mapper_table:
        kind = "Newton pass" if row["hessian"] else "L-BFGS pass"
        key = f"mapper/raw numpy rows/s, {row['case']}, {kind}, from {row['source']}"
        summary[key] = f"{row['ratio']:.2f}"
    return summary


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, for the test suite (< 60 s)")
    parser.add_argument("--json", help="write the full results to this JSON file")
    parser.add_argument("--spark", choices=("auto", "yes", "no"), default=None,
                        help="run Spark MLlib. Default: auto (no with --quick)")
    parser.add_argument("--cache-dir", default=data.CACHE_DIR, help="dataset cache. Default: %(default)s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("mrjob", "mrtrain", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    use_spark = args.spark or ("no" if args.quick else "auto")
    if use_spark == "yes" and spark_unavailable_reason():
        parser.error(f"--spark yes, but {spark_unavailable_reason()}")
    machine = report.describe_machine()
    with tempfile.TemporaryDirectory(prefix="mrtrain-bench-") as tmp:
        runs = [run_problem(problem, args.quick, tmp, args.cache_dir)
                for problem in (data.QUICK if args.quick else data.FULL)]
    mapper_table = mapper_rows(args.quick, args.cache_dir)
    overhead_table = overhead.measure(passes=2 if args.quick else 5)
    add_spark_rows(runs, use_spark)
    problems = [section for _, _, section in runs]
    results = {
        "command": report.command_line(), "machine": machine, "problems": problems,
        "mapper": mapper_table, "overhead": overhead_table,
    }
    results["summary"] = summarize(problems, mapper_table)
    print(report.render(results))
    if args.json:
        report.write_json(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
