"""Tree ensembles on YARN (issue 23): seconds per level, one job per pass against ``--allreduce``, and the
bytes each histogram pass sends through the shuffle.

``python3 -m benchmarks.tree_yarn [--rows 20000] [--partitions 2] [--trees 2] [--depth 3] [--mode ...]``
(the Hadoop cluster running and its environment loaded: ``eval "$(scripts/hadoop-cluster env)"``) writes
``benchmarks/tree_data.py``'s data (``rows`` rows × 28 features, 5% NaN in one column) to HDFS and trains
the same ``gbt`` once per mode (:data:`MODES`): one job per pass with ``--reducers`` 1 (the CLI's default),
0 (map-only: the driver adds the partitions' vectors) or 2 (the vector cut into 2 shards, one reducer
each), and ``--allreduce``. Every mode's trees are checked bitwise against the first mode's.

Per pass it records the driver's seconds for the pass (job start to summed vector) and, for jobs, the
job's counters: mrtrain's own ``shuffle bytes`` (the records the map tasks wrote, each vector in
:mod:`mrtrain.mr_jobs.protocols`'s sparse form where that is shorter), Hadoop's ``Map output bytes``,
``Map output materialized bytes`` and ``Reduce shuffle bytes`` (absent from map-only jobs, whose map
output goes straight to HDFS), and what the same records would take dense (every vector as the base64 of
all its float64s): the ratio is what the sparse emission saves. *Level* passes are the histogram passes
after the bins pass and the base score pass; the medians are over them. ``--runner inline`` (or ``local``)
trains on a local copy instead, no cluster needed: the bytes per pass are the same, the seconds are not
YARN's.
"""

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np

from benchmarks import tree_data
from mrtrain import tree_training
from mrtrain.launcher import JobLauncher
from mrtrain.storage.dataset import Dataset, write_dataset
from mrtrain.storage.filesystem import get_filesystem, join
from mrtrain.training.run import RunOptions, TrainingRun
from mrtrain.tree_training import TreeConfig, fit_in_run

log = logging.getLogger("benchmarks.tree_yarn")

#: name -> (reducers, allreduce).
MODES = {
    "job per pass, --reducers 1": (1, False),
    "job per pass, --reducers 0": (0, False),
    "job per pass, --reducers 2": (2, False),
    "allreduce": (1, True),
}
#: Hadoop's counters of the shuffle, in its "Map-Reduce Framework" group.
HADOOP_BYTES = ("Map output bytes", "Map output materialized bytes", "Reduce shuffle bytes")


def dense_record_bytes(length, partitions, shards):
    """Bytes of the records of one pass if every vector crossed dense: per partition and shard, the key,
    the tag, the base64 of the shard's float64s and the newline."""
    total = 0
    for shard, piece in enumerate(np.array_split(np.arange(length), shards)):
        body = 4 * ((8 * len(piece) + 2) // 3)
        total += sum(len(f"{shard}\t{p}\t") + body + 1 for p in range(partitions))
    return total


def framework_counters(counters):
    """``{name: bytes}`` of :data:`HADOOP_BYTES` summed over a job's steps (names missing when absent)."""
    found = {}
    for step in counters:
        for group, values in step.items():
            if group.strip() != "Map-Reduce Framework":
                continue
            for name in HADOOP_BYTES:
                if name in values:
                    found[name] = found.get(name, 0) + int(values[name])
    return found


class PassRecorder:
    """Wraps :func:`mrtrain.tree_training._pass` while a training runs: the seconds, the vector's length and
    (for jobs) the counters of every pass."""

    def __init__(self, partitions):
        self.partitions = partitions
        self.rows = []
        self._original = None

    def __enter__(self):
        self._original = tree_training._pass

        def timed(passes, job, state, map_only=False, length=None):
            started = time.perf_counter()
            result = self._original(passes, job, state, map_only=map_only, length=length)
            row = {"job": job.__name__, "seconds": time.perf_counter() - started,
                   "phase": state.header().get("phase") if hasattr(state, "header") else None}
            if not map_only:
                row["length"] = len(result)
            if isinstance(passes, JobLauncher):
                counters = passes.last_counters
                row["shuffle bytes"] = int(sum(int(s.get("mrtrain", {}).get("shuffle bytes", 0))
                                               for s in counters))
                row.update(framework_counters(counters))
                if not map_only:
                    row["dense bytes"] = dense_record_bytes(len(result), self.partitions,
                                                            1 if passes.reducers == 0 else passes.reducers)
            self.rows.append(row)
            return result

        tree_training._pass = timed
        return self

    def __exit__(self, *exc_info):
        tree_training._pass = self._original


def train(uri, config, reducers, allreduce, partitions, runner="hadoop"):
    """One training: ``(model, rows of PassRecorder, wall seconds)``."""
    options = RunOptions(runner=runner, reducers=reducers, allreduce=allreduce,
                         allreduce_tasks=partitions if allreduce else None)
    started = time.perf_counter()
    with PassRecorder(partitions) as recorder:
        model = fit_in_run(TrainingRun(Dataset.open(uri), options), config)
    return model, recorder.rows, time.perf_counter() - started


def summary(rows):
    """Figures of one training's passes: the bins and base passes, the first level pass (with
    ``--allreduce``: starting the AllReduce job and waiting for its tasks) and medians over the later level
    passes."""
    levels = rows[2:]
    out = {"passes": len(rows), "bins pass s": rows[0]["seconds"], "base pass s": rows[1]["seconds"],
           "first level s": levels[0]["seconds"],
           "later levels s (median)": statistics.median(r["seconds"] for r in levels[1:]),
           "vector length (median)": statistics.median(r["length"] for r in levels)}
    for key in ("shuffle bytes", "dense bytes", *HADOOP_BYTES):
        values = [r[key] for r in levels if key in r]
        if values:
            out[f"{key} (median)"] = statistics.median(values)
    return out


def table(results):
    """The Markdown table of ``{mode: summary}``."""
    keys = ["load before", "load after", "wall s", "passes", "bins pass s", "base pass s", "first level s",
            "later levels s (median)", "vector length (median)", "shuffle bytes (median)",
            "dense bytes (median)", *(f"{k} (median)" for k in HADOOP_BYTES), "same trees"]
    lines = ["| mode | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, row in results.items():
        cells = [(f"{row[k]:.2f}" if isinstance(row[k], float) and row[k] < 1000 else f"{row[k]:.0f}"
                  if isinstance(row[k], float) else str(row[k])) if k in row else "–" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bits(model):
    return {k: np.ascontiguousarray(v).tobytes() for k, v in model.ensemble.to_arrays().items()}


def cpu_model():
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.tree_yarn",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--trees", type=int, default=2)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--max-bins", type=int, default=255)
    parser.add_argument("--mode", action="append", choices=sorted(MODES), help="repeatable; default: all")
    parser.add_argument("--runner", default="hadoop", choices=["hadoop", "local", "inline"],
                        help="hadoop (default); inline or local: the same bytes per pass, on a local dataset "
                        "(no cluster needed)")
    parser.add_argument("--json", help="also write every pass's figures to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.runner == "hadoop":
        base = f"{os.environ['MRTRAIN_HDFS_URL']}/user/{os.environ['MRTRAIN_HDFS_USER']}/tmp/" \
               f"mrtrain-tree-yarn-{uuid.uuid4().hex[:8]}"
    else:
        base = os.path.abspath(tempfile.mkdtemp(prefix="mrtrain-tree-yarn-"))
    X, y = tree_data.generate(args.rows)
    config = TreeConfig(n_trees=args.trees, max_depth=args.depth, max_bins=args.max_bins, l2=1.0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    print(f"commit {commit}; {cpu_model()}, {os.cpu_count()} cores; {args.rows} rows x 28, "
          f"{args.partitions} partitions, runner {args.runner}; gbt {args.trees} trees, depth {args.depth}, "
          f"{args.max_bins} bins", flush=True)
    results, every, reference = {}, {}, None
    try:
        uri = join(base, "d")
        write_dataset(uri, X, y, partitions=args.partitions, missing=True)
        for name in args.mode or list(MODES):
            reducers, allreduce = MODES[name]
            load = os.getloadavg()
            model, rows, wall = train(uri, config, reducers, allreduce, args.partitions, args.runner)
            same = reference is None or bits(model) == reference
            reference = reference or bits(model)
            results[name] = {"wall s": wall, **summary(rows), "same trees": same,
                             "load before": load[0], "load after": os.getloadavg()[0]}
            every[name] = rows
            print(name, json.dumps({k: round(v, 2) if isinstance(v, float) else v
                                    for k, v in results[name].items()}), flush=True)
    finally:
        get_filesystem(base).delete(base, recursive=True)
    print(table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"commit": commit, "summary": results, "passes": every}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
