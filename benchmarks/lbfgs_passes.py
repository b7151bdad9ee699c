"""Seconds per pass of issue 27's case, 20k x 28 logistic with L-BFGS, as whole ``mrtrain train`` commands.

``python3 -m benchmarks.lbfgs_passes [--max-iter 6] [--mode ...]`` (a Hadoop cluster's environment loaded:
``MRTRAIN_HDFS_URL``, ``MRTRAIN_HDFS_USER`` and ``MRJOB_CONF``; on the single-machine cluster
``eval "$(scripts/hadoop-cluster env)"``, on the compose cluster the client container has them, see
``scripts/docker-cluster run``) writes ``benchmarks/yarn_breakdown.py``'s 20k x 28 logistic data (2
partitions) to HDFS and trains it with ``mrtrain train --model logistic --optimizer lbfgs --runner hadoop
--no-metrics`` once per mode (:data:`MODES`), printing the trainer's own seconds of each pass (its
``iter`` lines): the first pass (for ``--allreduce``: starting the job and waiting for its tasks), the
median of the later ones, and the command's wall time. The modes run one after another; the load average
is printed before and after each. ``--allreduce-address`` is passed on to mrtrain (its default, this host's
address toward the ResourceManager, also works on the compose cluster).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np

from benchmarks import yarn_breakdown
from mrtrain.storage.dataset import write_dataset
from mrtrain.storage.filesystem import get_filesystem

#: name -> (extra ``mrtrain train`` arguments, extra hadoop-runner jobconf of the mrjob config).
MODES = {
    "job per pass, uber": ([], {}),  # the default: uber mode for small passes (mrtrain.uber)
    "job per pass, no uber": ([], {"mapreduce.job.ubertask.enable": "false"}),
    "allreduce": (["--allreduce"], {}),
}
ITER_SECONDS = re.compile(r"^iter\s+\d+\s.*\s(\d+(?:\.\d+)?)s$")


def conf_with(jobconf, directory):
    """A copy of ``$MRJOB_CONF`` with ``jobconf`` added to the hadoop runner's (None: no change)."""
    return yarn_breakdown.conf_with(jobconf, directory) if jobconf else None


def train(uri, max_iter, extra, conf, allreduce_address=None):
    """``(seconds of each pass, wall seconds)`` of one ``mrtrain train``."""
    command = ["mrtrain", "train", uri, "--model", "logistic", "--optimizer", "lbfgs", "--max-iter",
               str(max_iter), "--runner", "hadoop", "--no-metrics", *extra]
    if conf:
        command += ["--conf-path", conf]
    if "--allreduce" in extra and allreduce_address:
        command += ["--allreduce-address", allreduce_address]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    seconds = [float(m.group(1)) for line in result.stderr.splitlines()
               if (m := ITER_SECONDS.match(line.strip()))]
    return seconds, wall


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.lbfgs_passes",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-iter", type=int, default=6)
    parser.add_argument("--mode", action="append", choices=sorted(MODES), help="repeatable; default: all")
    parser.add_argument("--allreduce-address", default=None,
                        help="mrtrain's --allreduce-address for the --allreduce mode. Default: mrtrain's")
    args = parser.parse_args(argv)
    base = f"{os.environ['MRTRAIN_HDFS_URL']}/user/{os.environ['MRTRAIN_HDFS_USER']}/tmp/" \
           f"mrtrain-lbfgs-passes-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(0)  # yarn_breakdown's data
    X = rng.normal(size=(20_000, 28))
    y = (X @ rng.normal(size=28) + rng.normal(size=20_000) > 0).astype(float)
    address = args.allreduce_address
    rows = {}
    try:
        write_dataset(base, X, y, partitions=2)
        with tempfile.TemporaryDirectory(prefix="mrtrain-lbfgs-passes-") as tmp:
            for name in args.mode or list(MODES):
                extra, jobconf = MODES[name]
                load = os.getloadavg()[0]
                seconds, wall = train(base, args.max_iter, extra, conf_with(jobconf, tmp), address)
                rows[name] = {"load before": load, "load after": os.getloadavg()[0], "passes": len(seconds),
                              "first pass s": seconds[0],
                              "later passes s (median)": statistics.median(seconds[1:]),
                              "wall s": wall}
                print(name, json.dumps({k: round(v, 2) for k, v in rows[name].items()}), flush=True)
    finally:
        get_filesystem(base).delete(base, recursive=True)
    keys = list(next(iter(rows.values())))
    print("| mode | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[k]:.2f}" if isinstance(row[k], float) else str(row[k])
                                          for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
