"""Per-pass overhead of the runners: a gradient pass over three tiny partitions, where nearly all the time
is process start, imports, mrjob's bookkeeping (working directories, input splits, sort) and not reading or
computing.

``python3 -m benchmarks.overhead [--passes 7] [--repeats 3]`` prints, for each configuration, the median
seconds of a pass and its overhead over the inline runner's pass. The configurations run interleaved
(inline, then each local variant, repeated), so a busy machine's load falls on all of them alike; the load
average is printed before and after.
"""

import argparse
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
#: ``name -> (runner, launcher options)``; ``warm_tasks=False`` is the local runner before the task server.
CONFIGURATIONS = {
    "inline": ("inline", {"reducers": 1}),
    "local, warm task server, 1 reducer": ("local", {"reducers": 1}),
    "local, warm task server, map-only": ("local", {"reducers": 0}),
    "local, a Python per task, 1 reducer": ("local", {"reducers": 1, "warm_tasks": False}),
    "local, a Python per task, map-only": ("local", {"reducers": 0, "warm_tasks": False}),
}


def task_import_seconds(env_extra, repeats=5):
    """Median seconds for a fresh Python to import the gradient job (a task's fixed start-up cost)."""
    env = {**os.environ, **env_extra}
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mrtrain.mr_jobs.gradient"], check=True, env=env)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _tiny_dataset(directory):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4))
    y = (rng.random(150) < 0.5).astype(float)
    return write_dataset(os.path.join(directory, "tiny"), X, y, partitions=3)


def pass_times(runner, passes=5, **options):
    """Wall seconds of each of ``passes`` gradient passes over 3 partitions of 50 rows on ``runner``, after
    one pass not timed (the launcher's start: the task server's imports, the partition cache), and the
    vector of the last pass."""
    with tempfile.TemporaryDirectory(prefix="mrtrain-overhead-") as tmp:
        dataset = _tiny_dataset(tmp)
        times = []
        with JobLauncher(dataset, SPEC, runner=runner, **options) as launcher:
            vector = launcher.sum_vector(MRGradient, np.zeros((1, 5)), {"hessian": 0})
            for _ in range(passes):
                started = time.perf_counter()
                vector = launcher.sum_vector(MRGradient, np.zeros((1, 5)), {"hessian": 0})
                times.append(time.perf_counter() - started)
    return times, vector


def pass_seconds(runner, passes=5, **options):
    """Median wall seconds of one gradient pass over 3 partitions of 50 rows on ``runner``."""
    return statistics.median(pass_times(runner, passes, **options)[0])


def compare(passes=5, repeats=3, configurations=CONFIGURATIONS):
    """Median pass seconds of each configuration, interleaved ``repeats`` times, and whether every
    configuration's vector is bitwise the inline runner's.

    Returns
    -------
    dict
        ``{"seconds": {name: median}, "bitwise_equal": bool, "load": (before, after)}``.
    """
    load_before = os.getloadavg()[0]
    times = {name: [] for name in configurations}
    vectors = {}
    for _ in range(repeats):
        for name, (runner, options) in configurations.items():
            run_times, vectors[name] = pass_times(runner, passes, **options)
            times[name] += run_times
    reference = next(iter(vectors.values()))
    return {
        "seconds": {name: statistics.median(values) for name, values in times.items()},
        "bitwise_equal": all(vector.tobytes() == reference.tobytes() for vector in vectors.values()),
        "load": (load_before, os.getloadavg()[0]),
    }


def measure(passes=5):
    """The overhead table of ``benchmarks.run``: pass time per runner and a task's import time with each
    distutils.

    Returns
    -------
    dict
    """
    pythonpath = {"PYTHONPATH": ROOT}
    result = {
        "local_pass_s": pass_seconds("local", passes),
        "local_pass_s_python_per_task": pass_seconds("local", passes, warm_tasks=False),
        "inline_pass_s": pass_seconds("inline", passes),
        "task_import_s_setuptools_distutils": task_import_seconds(pythonpath),
    }
    if sys.version_info < (3, 12):  # the standard library has distutils up to 3.11
        stdlib = {**pythonpath, "SETUPTOOLS_USE_DISTUTILS": "stdlib"}
        result["task_import_s_stdlib_distutils"] = task_import_seconds(stdlib)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.overhead",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=7,
                        help="timed passes per launcher. Default: %(default)s")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds over the configurations. Default: %(default)s")
    args = parser.parse_args(argv)
    result = compare(args.passes, args.repeats)
    inline = result["seconds"]["inline"]
    print(f"load average (1 min): {result['load'][0]:.2f} before, {result['load'][1]:.2f} after; "
          f"{args.repeats} x {args.passes} passes each; vectors bitwise equal: {result['bitwise_equal']}")
    print("| configuration | s / pass (median) | overhead over inline |")
    print("|---|---|---|")
    for name, seconds in result["seconds"].items():
        print(f"| {name} | {seconds:.3f} | {seconds - inline:+.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
