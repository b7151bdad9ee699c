"""The MLP on scikit-learn's digits replicated with noise to 500k rows: mrtrain against Spark's MLPC.

Run ``python3 -m benchmarks.mlp [--rows N] [--layers 64,32] [--max-iter N] [--no-spark]`` (full size: about
ten minutes on 2 idle cores). The digits (8x8 pixels scaled to [0, 1]) are split 70/30 with a seeded
stratified split; the training rows are repeated with Gaussian pixel noise (sigma ``--noise``) to
``--rows`` rows, written once as a dense dataset (64 MiB partitions) under ``.cache/bench``, and the
untouched 30% are the held-out rows. Both systems train the same architecture full-batch with L-BFGS for
``--max-iter`` iterations without a penalty (Spark's ``MultilayerPerceptronClassifier`` has none): mrtrain
on the local runner with map-only jobs (tanh hidden layers), Spark ``local[2]`` on the same Parquet files,
cached in memory first (its hidden layers are sigmoid; ``blockSize`` 128). Prints one line per system:
seconds, iterations, data passes (mrtrain's jobs; Spark's jobs during the fit, each gradient evaluation
being one), held-out accuracy, and the machine's load average before and after each run.
"""

import argparse
import os
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from benchmarks.data import CACHE_DIR
from benchmarks.systems import Spark, spark_unavailable_reason
from mrtrain.storage.dataset import Dataset, write_dataset
from mrtrain.trainer import Trainer


def digits_split(seed=0):
    """``(X_train, X_test, y_train, y_test)``: digits pixels / 16, a stratified 70/30 split."""
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y.astype(float), test_size=0.3, random_state=seed, stratify=y)


def replicated(X, y, rows, noise, seed=0):
    """``rows`` rows: ``X``'s rows in turn (cycled), each plus Gaussian noise of standard deviation
    ``noise``."""
    rng = np.random.default_rng(seed)
    index = np.arange(rows) % len(y)
    return X[index] + rng.normal(scale=noise, size=(rows, X.shape[1])), y[index]


def ensure_dataset(X_train, y_train, rows, noise):
    """The replicated training dataset, written once and reused."""
    uri = os.path.join(CACHE_DIR, f"digits-{rows}-noise{noise:g}")
    if not os.path.exists(os.path.join(uri, "_dataset.json")):
        os.makedirs(CACHE_DIR, exist_ok=True)
        X, y = replicated(X_train, y_train, rows, noise)
        write_dataset(uri, X, y, partition_size_mb=64)
    return Dataset.open(uri)


def run_mrtrain(dataset, X_test, y_test, layers, max_iter):
    trainer = Trainer("mlp", layers=layers, max_iter=max_iter, tol=0.0, gtol=0.0, runner="local", reducers=0,
                      seed=0)
    started = time.perf_counter()
    fitted = trainer.fit(dataset.uri)
    seconds = time.perf_counter() - started
    accuracy = float(np.mean(fitted.predict(X_test) == y_test))
    return {"system": "mrtrain local (tanh)", "seconds": seconds, "iterations": fitted.n_iter_,
            "passes": fitted.n_passes_, "accuracy": accuracy}


def run_spark(spark, dataset, X_test, y_test, layers, max_iter):
    from pyspark.ml.classification import MultilayerPerceptronClassifier
    from pyspark.ml.functions import array_to_vector
    from pyspark.ml.linalg import Vectors

    session = spark.session
    uri = "file://" + os.path.abspath(dataset.uri)
    frame = session.read.parquet(uri).select(array_to_vector("features").alias("features"), "label").cache()
    frame.count()
    context = session.sparkContext
    context.setJobGroup("mlpc-fit", "MultilayerPerceptronClassifier.fit")
    estimator = MultilayerPerceptronClassifier(layers=[X_test.shape[1], *layers, 10], maxIter=max_iter,
                                               tol=0.0, seed=0, solver="l-bfgs", blockSize=128)
    started = time.perf_counter()
    fitted = estimator.fit(frame)
    seconds = time.perf_counter() - started
    jobs = len(context.statusTracker().getJobIdsForGroup("mlpc-fit"))
    context.setJobGroup("other", "other")
    frame.unpersist()
    test = session.createDataFrame([(Vectors.dense(row),) for row in X_test], ["features"])
    predicted = np.array([row.prediction for row in fitted.transform(test).select("prediction").collect()])
    return {"system": "Spark MLPC local[2] (sigmoid)", "seconds": seconds,
            "iterations": fitted.summary().totalIterations, "passes": jobs,
            "accuracy": float(np.mean(predicted == y_test)), "startup_s": spark.startup_s}


def with_load(run, *args):
    """``run(*args)``'s row with the machine's 1-minute load average before and after it."""
    start = os.getloadavg()[0]
    row = run(*args)
    return {**row, "load_start": start, "load_end": os.getloadavg()[0]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--layers", default="64,32")
    parser.add_argument("--max-iter", type=int, default=40)
    parser.add_argument("--no-spark", action="store_true")
    args = parser.parse_args(argv)
    layers = [int(size) for size in args.layers.split(",")]
    X_train, X_test, y_train, y_test = digits_split()
    dataset = ensure_dataset(X_train, y_train, args.rows, args.noise)
    rows = sum(part.rows for part in dataset.partitions)
    print(f"digits x{args.rows / len(y_train):.0f} with noise {args.noise:g}: {rows} rows, "
          f"{len(dataset.partitions)} partitions; layers {layers}; {args.max_iter} L-BFGS iterations; "
          f"held-out {len(y_test)} rows")
    results = [with_load(run_mrtrain, dataset, X_test, y_test, layers, args.max_iter)]
    reason = None if not args.no_spark else "--no-spark"
    reason = reason or spark_unavailable_reason()
    if reason is None:
        spark = Spark()
        try:
            results.append(with_load(run_spark, spark, dataset, X_test, y_test, layers, args.max_iter))
        finally:
            spark.stop()
    else:
        print(f"Spark skipped: {reason}")
    for row in results:
        print(f"{row['system']}: {row['seconds']:.1f} s, {row['iterations']} iterations, {row['passes']} "
              f"passes, held-out accuracy {row['accuracy']:.4f}"
              + (f" (session start-up {row['startup_s']:.1f} s not included)" if "startup_s" in row else "")
              + f"; load average {row['load_start']:.1f} at the start, {row['load_end']:.1f} at the end")


if __name__ == "__main__":
    main()
