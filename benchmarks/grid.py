"""Cost of a penalty grid with k-fold cross-validation against one model, and against Spark's CrossValidator.

Run ``python3 -m benchmarks.grid [--quick] [--runner local|hadoop] [--penalties 20] [--folds 5]
[--allreduce] [--no-spark] [--json FILE]``. On the higgs problem (1M x 28 logistic; ``--quick``: 20k
rows) it trains, on the chosen runner with map-only jobs:

1. one model at the problem's l2;
2. the grid: ``--penalties`` l2 values log-spaced over [1e-6, 1e-1] times ``--folds`` folds, plus the refits
   (``penalties x (folds + 1)`` models), all in the same passes (:mod:`mrtrain.grid_training`);
3. Spark MLlib's ``CrossValidator`` (``parallelism=2``, ``local[2]``) over the same l2 values and folds, with
   log-loss as the metric, on the same Parquet files (``--no-spark`` skips it).

It prints a Markdown table: seconds, passes (data passes of mrtrain; Spark does not count them), models
trained, the chosen l2 and the ratio of each grid's time and passes to the one model's. Every run starts
with a cold partition cache. The load average at the start is printed with the machine.
"""

import argparse
import json
import os
import time

import numpy as np

from benchmarks.data import FULL, QUICK, ensure_dataset
from benchmarks.report import describe_machine
from benchmarks.systems import cold_partition_cache
from mrtrain.storage.dataset import MANIFEST_NAME, Dataset
from mrtrain.storage.filesystem import get_filesystem, join
from mrtrain.trainer import Trainer

#: The l2 range of the grid, in log10.
GRID_LOG10 = (-6.0, -1.0)


def grid_values(n):
    return [float(v) for v in np.logspace(*GRID_LOG10, n)]


def hdfs_copy(dataset):
    """The dataset copied to the mini cluster's HDFS (``MRTRAIN_HDFS_URL``, set by scripts/hadoop-cluster)."""
    base = (f"{os.environ['MRTRAIN_HDFS_URL']}/user/{os.environ['MRTRAIN_HDFS_USER']}/tmp/"
            f"mrtrain-bench-grid-{os.path.basename(dataset.uri)}")
    fs = get_filesystem(base)
    for name in [MANIFEST_NAME] + [os.path.basename(part.uri) for part in dataset.partitions]:
        if not fs.exists(join(base, name)):
            with open(os.path.join(dataset.uri, name), "rb") as handle:
                fs.write_bytes(join(base, name), handle.read())
    return Dataset.open(base)


def run_mrtrain(dataset, runner, l2, allreduce=False, **grid):
    with cold_partition_cache():
        started = time.perf_counter()
        fitted = Trainer("logistic", l2=l2, runner=runner, reducers=0, max_iter=200, allreduce=allreduce,
                         **grid).fit(dataset.uri)
        seconds = time.perf_counter() - started
    models = 1 if not grid else len(l2) * (grid["cv"] + 1)
    system = f"mrtrain {runner}" + (" --allreduce" if allreduce else "") + (" grid" if grid else " one model")
    return {"system": system, "seconds": seconds, "passes": fitted.n_passes_, "models": models,
            "l2": fitted.l2}


def run_spark(dataset, values, folds):
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.functions import array_to_vector
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    from benchmarks.systems import Spark

    spark = Spark()
    try:
        uri = dataset.uri if "://" in dataset.uri else "file://" + os.path.abspath(dataset.uri)
        frame = spark.session.read.parquet(uri)
        frame = frame.select(array_to_vector("features").alias("features"), "label").cache()
        frame.count()
        estimator = LogisticRegression(elasticNetParam=0.0, standardization=False, tol=1e-8, maxIter=200)
        grid = ParamGridBuilder().addGrid(estimator.regParam, values).build()
        evaluator = MulticlassClassificationEvaluator(metricName="logLoss")
        started = time.perf_counter()
        model = CrossValidator(estimator=estimator, estimatorParamMaps=grid, evaluator=evaluator,
                               numFolds=folds, parallelism=2, seed=0).fit(frame)
        seconds = time.perf_counter() - started
        best = int(np.argmin(model.avgMetrics))
        return {"system": "Spark MLlib CrossValidator local[2]", "seconds": seconds, "passes": None,
                "models": len(values) * folds + 1, "l2": values[best]}
    finally:
        spark.stop()


def render(rows, machine):
    one = rows[0]
    lines = ["| system | models | seconds | passes | chosen l2 | time / one model | passes / one model |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        passes = "-" if row["passes"] is None else str(row["passes"])
        pass_ratio = "-" if row["passes"] is None else f"{row['passes'] / one['passes']:.2f}"
        lines.append(f"| {row['system']} | {row['models']} | {row['seconds']:.1f} | {passes} | "
                     f"{row['l2']:.3g} | {row['seconds'] / one['seconds']:.2f} | {pass_ratio} |")
    lines.append("")
    lines.append(f"Machine: {machine['cpu']}, {machine['nproc']} cores; load average at the start "
                 f"{machine['load_average']}.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the 20,000-row higgs data")
    parser.add_argument("--runner", choices=("local", "hadoop", "inline"), default="local")
    parser.add_argument("--penalties", type=int, default=20)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--spark-only", action="store_true", help="only Spark's CrossValidator")
    parser.add_argument("--allreduce", action="store_true",
                        help="also both trainings with --allreduce (one job serving every pass)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    problem = next(p for p in (QUICK if args.quick else FULL) if p.name == "higgs")
    dataset = ensure_dataset(problem)
    if args.runner == "hadoop":
        dataset = hdfs_copy(dataset)
    machine = describe_machine()
    values = grid_values(args.penalties)
    if args.spark_only:
        row = run_spark(ensure_dataset(problem), values, args.folds)
        print(f"| {row['system']} | {row['models']} | {row['seconds']:.1f} | - | {row['l2']:.3g} |")
        print(f"load average at the start {machine['load_average']}, at the end {os.getloadavg()}")
        return
    rows = [run_mrtrain(dataset, args.runner, problem.l2),
            run_mrtrain(dataset, args.runner, values, cv=args.folds)]
    if args.allreduce:
        rows += [run_mrtrain(dataset, args.runner, problem.l2, allreduce=True),
                 run_mrtrain(dataset, args.runner, values, allreduce=True, cv=args.folds)]
    if not args.no_spark:
        rows.append(run_spark(ensure_dataset(problem), values, args.folds))
    print(render(rows, machine))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"machine": machine, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
