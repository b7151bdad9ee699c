"""k-means on the higgs data (1M x 28): mrtrain against scikit-learn's KMeans and Spark MLlib's KMeans.

Run ``python3 -m benchmarks.kmeans [--k K] [--max-iter N] [--tol T] [--quick] [--no-spark]`` (full size:
about two minutes on 2 cores). Every system gets the same ``k``, ``max_iter``, ``tol`` and seed:

- mrtrain: the local runner with map-only jobs (``reducers=0``), k-means|| with 2 steps, then Lloyd passes;
  every run starts with an empty partition cache, so its first pass reads the Parquet partitions;
- scikit-learn: ``KMeans(algorithm="lloyd", n_init=1)`` in memory, with its k-means++ initialisation (it
  has no k-means||); "load" is reading the dataset into a numpy array;
- Spark MLlib: ``KMeans(initMode="k-means||", initSteps=2)`` on ``local[2]``; "load" is reading the same
  Parquet files and caching them as vectors, "fit" the fit alone (its session start-up is printed apart).

Each system's ``tol`` means what it means there: mrtrain stops when the largest squared centre move is at
most ``tol`` times the features' mean variance, scikit-learn when the sum of the squared moves is, Spark when
every centre moved less than ``tol`` (Euclidean, absolute). The inertia of every system's final centres is
computed here, by one function (:func:`inertia`), on all rows in float64.

Prints a Markdown table preceded by the machine line and the load average (``os.getloadavg``) at the start
and at the end: other work on the machine slows the figures.
"""

import argparse
import os
import time

import numpy as np
from sklearn.cluster import KMeans

from benchmarks.data import FULL, QUICK, ensure_dataset
from benchmarks.report import describe_machine
from benchmarks.systems import Spark, cold_partition_cache, spark_unavailable_reason
from mrtrain.trainer import Trainer

#: Rows per block of :func:`inertia`.
BLOCK_ROWS = 65536


def inertia(X, centers):
    """``Σᵢ minⱼ ‖xᵢ − cⱼ‖²`` in float64, from the differences (no ``‖x‖² − 2x·c + ‖c‖²`` cancellation).

    Parameters
    ----------
    X : ndarray of shape (n, d)
    centers : ndarray of shape (k, d)

    Returns
    -------
    float
    """
    centers = np.asarray(centers, dtype=np.float64)
    total = 0.0
    for start in range(0, X.shape[0], BLOCK_ROWS):
        block = np.asarray(X[start:start + BLOCK_ROWS], dtype=np.float64)
        nearest = np.full(block.shape[0], np.inf)
        for center in centers:
            np.minimum(nearest, np.square(block - center).sum(axis=1), out=nearest)
        total += float(nearest.sum())
    return total


def run_mrtrain(dataset, args):
    """mrtrain's local runner, map-only, from an empty partition cache: ``(row, centres)``."""
    with cold_partition_cache():
        started = time.perf_counter()
        fitted = Trainer("kmeans", k=args.k, seed=args.seed, max_iter=args.max_iter, tol=args.tol,
                         runner="local", reducers=0).fit(dataset.uri)
        fit_s = time.perf_counter() - started
    row = {"system": "mrtrain local, map-only (k-means\\|\\|)", "load_s": None, "fit_s": fit_s,
           "iterations": fitted.n_iter_, "passes": fitted.n_passes_, "stop": fitted.stop_reason_}
    return row, fitted.coef_


def run_sklearn(dataset, args):
    """scikit-learn in memory: ``(row, centres, X)``; X is reused to score every system."""
    started = time.perf_counter()
    X, _, _ = dataset.read_all()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    fitted = KMeans(args.k, init="k-means++", n_init=1, random_state=args.seed, algorithm="lloyd",
                    max_iter=args.max_iter, tol=args.tol).fit(X)
    fit_s = time.perf_counter() - started
    stop = "max_iter reached" if fitted.n_iter_ >= args.max_iter else "converged"
    row = {"system": "scikit-learn lloyd, in memory (k-means++)", "load_s": load_s, "fit_s": fit_s,
           "iterations": int(fitted.n_iter_), "passes": None, "stop": stop}
    return row, fitted.cluster_centers_, X


def run_spark(spark, dataset, args):
    """Spark MLlib on ``local[2]``, the Parquet partitions read and cached first: ``(row, centres)``."""
    from pyspark.ml.clustering import KMeans as SparkKMeans
    from pyspark.ml.functions import array_to_vector

    started = time.perf_counter()
    # A local dataset as a file:// URI: with HADOOP_CONF_DIR set a bare path means the cluster's HDFS.
    uri = dataset.uri if "://" in dataset.uri else "file://" + os.path.abspath(dataset.uri)
    frame = spark.session.read.parquet(uri).select(array_to_vector("features").alias("features")).cache()
    frame.count()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    fitted = SparkKMeans(k=args.k, maxIter=args.max_iter, tol=args.tol, seed=args.seed, initMode="k-means||",
                         initSteps=2).fit(frame)
    fit_s = time.perf_counter() - started
    iterations = fitted.summary.numIter
    frame.unpersist()
    stop = "max_iter reached" if iterations >= args.max_iter else "converged"
    row = {"system": "Spark MLlib local[2] (k-means\\|\\|)", "load_s": load_s, "fit_s": fit_s,
           "iterations": iterations, "passes": None, "stop": stop, "startup_s": spark.startup_s}
    return row, np.array([center.tolist() for center in fitted.clusterCenters()])


def table(rows):
    """The Markdown table: one row per system, inertia relative to the lowest."""
    best = min(row["inertia"] for row in rows)
    lines = ["| system | load s | fit s | iterations | passes | stop | inertia | vs lowest |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        load = "–" if row["load_s"] is None else f"{row['load_s']:.2f}"
        passes = "–" if row["passes"] is None else str(row["passes"])
        lines.append(f"| {row['system']} | {load} | {row['fit_s']:.2f} | {row['iterations']} | {passes} | "
                     f"{row['stop']} | {row['inertia']:.6e} | {row['inertia'] / best - 1:+.2e} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="the 20,000-row higgs data")
    parser.add_argument("--no-spark", action="store_true", help="leave Spark MLlib out")
    args = parser.parse_args(argv)
    problem = next(p for p in (QUICK if args.quick else FULL) if p.name == "higgs")
    dataset = ensure_dataset(problem)
    machine = describe_machine()
    load_before = os.getloadavg()
    results = [run_mrtrain(dataset, args)]
    row, centers, X = run_sklearn(dataset, args)
    results.append((row, centers))
    skipped = "--no-spark" if args.no_spark else spark_unavailable_reason()
    if skipped is None:
        spark = Spark()
        try:
            results.append(run_spark(spark, dataset, args))
        finally:
            spark.stop()
    rows = []
    for row, centers in results:
        row["inertia"] = inertia(X, centers)
        rows.append(row)
    load_after = os.getloadavg()
    print(f"higgs {problem.rows:,} × {problem.features}, 2 partitions; k = {args.k}, max_iter = "
          f"{args.max_iter}, tol = {args.tol:g}, seed = {args.seed}")
    print(f"Machine: {machine['nproc']} cores, {machine['cpu']}, {machine['ram_gib']} GiB RAM; Python "
          f"{machine['python']}, numpy {machine['numpy']}, scikit-learn {machine['scikit_learn']}, pyspark "
          f"{machine['pyspark']}; load average (1, 5, 15 min) "
          f"{', '.join(f'{v:.2f}' for v in load_before)} at the start, "
          f"{', '.join(f'{v:.2f}' for v in load_after)} at the end")
    if skipped is not None:
        print(f"Spark MLlib skipped: {skipped}")
    else:
        print(f"Spark session start-up (not in the table): {results[-1][0]['startup_s']:.2f} s")
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
