"""The systems of :mod:`benchmarks.sparse`, each trained in a process of its own so that its peak memory is
its own: ``python3 -m benchmarks.sparse_systems SYSTEM SPEC_JSON`` writes one JSON object to the spec's
``result_path`` (not stdout, which Spark's JVM shares).

SYSTEM is one of:

- ``mrtrain``: :class:`mrtrain.trainer.Trainer` (logistic, L-BFGS) on the spec's dataset with the
  spec's runner, reducers and mrjob config, from an empty partition cache. Reports the fit's seconds,
  iterations, passes, each pass's seconds and the bytes its map tasks emitted (the ``shuffle bytes``
  counter the launcher adds up), and the driver's peak resident memory (this process's ``VmHWM``); the
  tasks' peaks come from the ``task_python_bin`` wrapper (:mod:`benchmarks.peak_rss`) set in the config.
- ``sklearn``: ``LogisticRegression(solver="lbfgs", C=1/(n·l2))`` on the dataset's CSR matrix in memory.
- ``spark``: Spark MLlib ``LogisticRegression`` (``regParam=l2``, no standardization) in ``local[2]`` on
  the same rows written as a libsvm file, read and cached before the fit; the peak memory is the Python
  driver's and the JVM's (its ``VmHWM`` read before the session stops).

The fitted parameters (coefficients, then the intercept) go to the spec's ``theta_path`` (``.npy``), which
:mod:`benchmarks.sparse` scores on the training and held-out rows.
"""

import json
import os
import sys
import tempfile
import time

import numpy as np


def peak_rss_bytes(pid="self"):
    """The peak resident memory of process ``pid`` so far (``VmHWM``), in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def run_mrtrain(spec):
    """One mrtrain training (see the module docstring); returns its JSON-ready result."""
    from mrtrain.launcher import JobLauncher
    from mrtrain.storage import partition_cache
    from mrtrain.trainer import Trainer

    pass_seconds, pass_bytes = [], []
    run = JobLauncher.run

    def counting(self, *args, **kwargs):
        records = run(self, *args, **kwargs)
        pass_bytes.append(self.last_shuffle_bytes)
        return records

    trainer = Trainer("logistic", optimizer="lbfgs", l2=spec["l2"], tol=spec["tol"], gtol=spec["gtol"],
                      max_iter=spec["max_iter"], runner=spec["runner"], reducers=spec["reducers"],
                      conf_path=spec.get("conf_path"), precondition=spec.get("precondition", True),
                      allreduce=spec.get("allreduce", False),
                      callback=lambda progress: pass_seconds.append(progress.seconds))
    baseline = peak_rss_bytes()
    with tempfile.TemporaryDirectory(prefix="mrtrain-bench-cache-") as cache:
        os.environ[partition_cache.ROOT_ENV] = cache
        JobLauncher.run = counting
        try:
            started = time.perf_counter()
            fitted = trainer.fit(spec["data"])
            fit_s = time.perf_counter() - started
        finally:
            JobLauncher.run = run
    np.save(spec["theta_path"], fitted.theta_, allow_pickle=False)
    return {"fit_s": fit_s, "iterations": fitted.n_iter_, "passes": fitted.n_passes_,
            "stop_reason": fitted.stop_reason_, "pass_s": pass_seconds, "pass_bytes": pass_bytes,
            "pass_objectives": fitted.pass_records_["pass_objectives"],
            "driver_peak_rss_bytes": peak_rss_bytes(), "driver_baseline_rss_bytes": baseline}


def run_sklearn(spec):
    """scikit-learn's L-BFGS on the CSR matrix read into memory."""
    from sklearn.linear_model import LogisticRegression

    from mrtrain.storage.dataset import Dataset

    started = time.perf_counter()
    X, y, _ = Dataset.open(spec["data"]).read_all()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    fitted = LogisticRegression(C=1.0 / (len(y) * spec["l2"]), solver="lbfgs", tol=spec["tol"],
                                max_iter=spec["max_iter"]).fit(X, y)
    fit_s = time.perf_counter() - started
    np.save(spec["theta_path"], np.append(fitted.coef_[0], fitted.intercept_[0]), allow_pickle=False)
    return {"load_s": load_s, "fit_s": fit_s, "iterations": int(fitted.n_iter_[0]),
            "driver_peak_rss_bytes": peak_rss_bytes()}


def _descendants(pid):
    """The ids of the processes descending from ``pid`` (read from /proc)."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def run_spark(spec):
    """Spark MLlib's L-BFGS in ``local[2]`` on the rows as a libsvm file."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.sql import SparkSession

    started = time.perf_counter()
    session = (
        SparkSession.builder.master("local[2]").appName("mrtrain-sparse-bench")
        .config("spark.driver.memory", "6g").config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false").getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    startup_s = time.perf_counter() - started
    try:
        started = time.perf_counter()
        frame = (session.read.format("libsvm").option("numFeatures", spec["n_features"])
                 .load("file://" + os.path.abspath(spec["libsvm"])).repartition(2).cache())
        frame.count()
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        fitted = LogisticRegression(regParam=spec["l2"], elasticNetParam=0.0, standardization=False,
                                    tol=spec["tol"], maxIter=spec["max_iter"]).fit(frame)
        fit_s = time.perf_counter() - started
        theta = np.append(fitted.coefficients.toArray(), fitted.intercept)
        iterations = fitted.summary.totalIterations
        jvm = [peak_rss_bytes(pid) for pid in _descendants(os.getpid()) if _is_java(pid)]
    finally:
        session.stop()
    np.save(spec["theta_path"], theta, allow_pickle=False)
    return {"startup_s": startup_s, "load_s": load_s, "fit_s": fit_s, "iterations": iterations,
            "driver_peak_rss_bytes": peak_rss_bytes(), "jvm_peak_rss_bytes": max(jvm, default=None)}


def _is_java(pid):
    try:
        with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as handle:
            return handle.read().strip() == "java"
    except OSError:
        return False


SYSTEMS = {"mrtrain": run_mrtrain, "sklearn": run_sklearn, "spark": run_spark}


def main(argv):
    system, spec = argv[1], json.loads(argv[2])
    result = SYSTEMS[system](spec)
    with open(spec["result_path"], "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
