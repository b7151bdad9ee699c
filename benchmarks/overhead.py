"""Per-pass overhead of the runners: a gradient pass over three tiny partitions, where nearly all the time
is process start, imports, mrjob's bookkeeping (working directories, input splits, sort) and not reading or
computing."""

import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.mapper import ROOT
from mrtrain.launcher import JobLauncher
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.storage.dataset import write_dataset

SPEC = {"kind": "logistic", "n_features": 4, "classes": [0.0, 1.0], "fit_intercept": True}


def task_import_seconds(env_extra, repeats=5):
    """Median seconds for a fresh Python to import the gradient job (a task's fixed start-up cost)."""
    env = {**os.environ, **env_extra}
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mrtrain.mr_jobs.gradient"], check=True, env=env)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def pass_seconds(runner, passes=5):
    """Median wall seconds of one gradient pass over 3 partitions of 50 rows on ``runner``."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4))
    y = (rng.random(150) < 0.5).astype(float)
    with tempfile.TemporaryDirectory(prefix="mrtrain-overhead-") as tmp:
        dataset = write_dataset(os.path.join(tmp, "tiny"), X, y, partitions=3)
        times = []
        with JobLauncher(dataset, SPEC, runner=runner) as launcher:
            for _ in range(passes):
                started = time.perf_counter()
                launcher.sum_vector(MRGradient, np.zeros((1, 5)), {"hessian": 0})
                times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(passes=5):
    """The overhead table: pass time per runner and a task's import time with each distutils.

    Returns
    -------
    dict
    """
    pythonpath = {"PYTHONPATH": ROOT}
    result = {
        "local_pass_s": pass_seconds("local", passes),
        "inline_pass_s": pass_seconds("inline", passes),
        "task_import_s_setuptools_distutils": task_import_seconds(pythonpath),
    }
    if sys.version_info < (3, 12):  # the standard library has distutils up to 3.11
        stdlib = {**pythonpath, "SETUPTOOLS_USE_DISTUTILS": "stdlib"}
        result["task_import_s_stdlib_distutils"] = task_import_seconds(stdlib)
    return result
