"""The systems under test, each trained on the same rows to the common target.

Every runner returns one table row: ``system``, ``load_s`` (getting the data where the system computes
on it), ``fit_s`` (training until the system's own stopping rule), ``to_target_s`` (until its objective
first came within the target), ``iterations``, ``passes`` (over the data), ``per_pass_s``, ``objective``
(mrtrain's objective at the system's coefficients), ``accuracy`` and ``reached``.
"""

import contextlib
import os
import shutil
import tempfile
import time

import numpy as np

from mrtrain.storage import partition_cache as partition_cache_module
from mrtrain.trainer import Trainer

#: Stopping rules: tight enough that every system can get within 1e-6 of the optimum.
TOL = 1e-9
GTOL = 1e-7


@contextlib.contextmanager
def cold_partition_cache():
    """Point the partition cache at a new empty directory for the block (so a run reads its Parquet as
    a first run would), then restore the setting and remove the directory."""
    previous = os.environ.get(partition_cache_module.ROOT_ENV)
    with tempfile.TemporaryDirectory(prefix="mrtrain-bench-cache-") as cache:
        os.environ[partition_cache_module.ROOT_ENV] = cache
        try:
            yield cache
        finally:
            if previous is None:
                os.environ.pop(partition_cache_module.ROOT_ENV)
            else:
                os.environ[partition_cache_module.ROOT_ENV] = previous


def _row(system, scorer, params, *, load_s, fit_s, to_target_s, iterations, passes, **extra):
    value = scorer.value(params)
    return {
        "system": system, "load_s": load_s, "fit_s": fit_s, "to_target_s": to_target_s,
        "iterations": iterations, "passes": passes,
        "per_pass_s": fit_s / passes if passes else None, "objective": value,
        "accuracy": scorer.accuracy(params), "reached": scorer.reached(value), **extra,
    }


def run_mrtrain(scorer, dataset, *, runner, optimizer, max_iter=100, conf_path=None, label=None, reducers=1,
                partition_cache=True, allreduce=False):
    """Train with mrtrain's :class:`mrtrain.trainer.Trainer`; time to target from its per-pass
    callback.

    Every run starts with an empty partition cache of its own, so its first pass reads, hashes and
    decodes the Parquet partitions like a first training on a node does.

    Returns
    -------
    dict
        The table row, plus ``theta`` (the fitted parameters) and ``trace`` (seconds, objective per pass).
    """
    trace = []

    def record(progress):
        trace.append((time.perf_counter() - started, progress.objective, progress.passes))

    trainer = Trainer(scorer.problem.model, optimizer=optimizer, l2=scorer.problem.l2, max_iter=max_iter,
                      tol=TOL, gtol=GTOL, runner=runner, conf_path=conf_path, reducers=reducers,
                      partition_cache=partition_cache, allreduce=allreduce, callback=record)
    with cold_partition_cache():
        started = time.perf_counter()
        fitted = trainer.fit(dataset.uri)
        fit_s = time.perf_counter() - started
    theta = np.append(np.ravel(fitted.coef_), np.ravel(fitted.intercept_))
    hit = next(((s, p) for s, value, p in trace if scorer.reached(value)), (None, None))
    return _row(label or f"mrtrain {runner} {optimizer}", scorer, theta, load_s=0.0, fit_s=fit_s,
                to_target_s=hit[0], iterations=fitted.n_iter_, passes=fitted.n_passes_,
                passes_to_target=hit[1], stop_reason=fitted.stop_reason_, theta=theta.tolist())


def run_sklearn(scorer, dataset):
    """scikit-learn ``LogisticRegression(lbfgs)`` (``Ridge(sparse_cg)`` for linear: its lbfgs solver is
    only for positive coefficients) on the dataset read into memory."""
    from sklearn.linear_model import LogisticRegression, Ridge

    problem = scorer.problem
    started = time.perf_counter()
    X, y, _ = dataset.read_all()
    load_s = time.perf_counter() - started
    n = len(y)
    started = time.perf_counter()
    if problem.model == "logistic":
        fitted = LogisticRegression(C=1.0 / (n * problem.l2), solver="lbfgs", tol=1e-10, max_iter=1000)
        fitted.fit(X, y)
        theta = np.append(fitted.coef_[0], fitted.intercept_[0])
        iterations = int(fitted.n_iter_[0])
    else:
        fitted = Ridge(alpha=n * problem.l2, solver="sparse_cg", tol=1e-12, max_iter=1000).fit(X, y)
        theta = np.append(fitted.coef_, fitted.intercept_)
        iterations = None if fitted.n_iter_ is None else int(np.max(fitted.n_iter_))
    fit_s = time.perf_counter() - started
    solver = "lbfgs" if problem.model == "logistic" else "sparse_cg"
    return _row(f"scikit-learn {solver} (in memory)", scorer, theta, load_s=load_s, fit_s=fit_s,
                to_target_s=fit_s, iterations=iterations, passes=None)


def spark_unavailable_reason():
    """None when pyspark and a Java runtime are present, else why Spark MLlib cannot run here."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'mrtrain[bench]')"
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return "no Java runtime (java on PATH or JAVA_HOME) for Spark"
    return None


class Spark:
    """A ``local[2]`` Spark session, started once (its start-up time is reported on its own)."""

    def __init__(self, cores=2):
        from pyspark.sql import SparkSession

        started = time.perf_counter()
        self.session = (
            SparkSession.builder.master(f"local[{cores}]").appName("mrtrain-bench")
            .config("spark.driver.memory", "6g").config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false").config("spark.sql.shuffle.partitions", cores)
            .getOrCreate()
        )
        self.session.sparkContext.setLogLevel("ERROR")
        self.startup_s = time.perf_counter() - started

    def stop(self):
        """Stop the session."""
        self.session.stop()

    def run(self, scorer, dataset):
        """MLlib ``LogisticRegression`` / ``LinearRegression`` (regParam=l2, elasticNetParam=0,
        standardization=False) on the dataset's Parquet files, cached in memory before the fit.

        Time to target is the fit time scaled by the share of iterations its objective history took to
        reach the target (Spark reports no per-iteration times).
        """
        from pyspark.ml.classification import LogisticRegression
        from pyspark.ml.functions import array_to_vector
        from pyspark.ml.regression import LinearRegression

        problem = scorer.problem
        started = time.perf_counter()
        # A local dataset as a file:// URI: with HADOOP_CONF_DIR set a bare path means the cluster's HDFS.
        uri = dataset.uri if "://" in dataset.uri else "file://" + os.path.abspath(dataset.uri)
        frame = self.session.read.parquet(uri)
        frame = frame.select(array_to_vector("features").alias("features"), "label").cache()
        frame.count()
        load_s = time.perf_counter() - started
        estimator = LogisticRegression if problem.model == "logistic" else LinearRegression
        settings = {"regParam": problem.l2, "elasticNetParam": 0.0, "standardization": False,
                    "tol": TOL, "maxIter": 1000}
        if problem.model == "linear":
            settings["solver"] = "l-bfgs"
        started = time.perf_counter()
        fitted = estimator(**settings).fit(frame)
        fit_s = time.perf_counter() - started
        frame.unpersist()
        theta = np.append(fitted.coefficients.toArray(), fitted.intercept)
        row = _row("Spark MLlib local[2] l-bfgs", scorer, theta, load_s=load_s, fit_s=fit_s,
                   to_target_s=None, iterations=fitted.summary.totalIterations, passes=None,
                   startup_s=self.startup_s)
        history = list(fitted.summary.objectiveHistory)
        if abs(history[-1] - row["objective"]) <= 1e-9 * abs(row["objective"]):
            reached_at = next((i for i, value in enumerate(history) if scorer.reached(value)), None)
            if reached_at is not None:
                row["to_target_s"] = fit_s * reached_at / max(len(history) - 1, 1)
        elif row["reached"]:
            row["to_target_s"] = fit_s  # its history is on another scale: the whole fit is an upper bound
        return row
