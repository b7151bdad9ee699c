"""Costs of the compose cluster of docker-hadoop/: image build (cold and warm), start, seconds per pass.

Run from the repository root with a Docker engine (``scripts/docker-cluster engine start``)::

    python3 -m benchmarks.docker [--cold] [--json docker.json]

``--cold`` first removes the image and its base image, so the build includes making the base
(``debootstrap`` where Docker Hub cannot be reached) and every layer; without it the build is the warm,
cached one. Then the cluster is started from nothing (fresh volumes), Iris is ingested into its HDFS and a
softmax model is trained with Newton on YARN; the seconds of each pass are the trainer's own progress
lines. The cluster is removed at the end. Compare with ``python3 -m benchmarks.hadoop`` for the
single-machine cluster.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(ROOT / "scripts" / "docker-cluster")
PASS_SECONDS = re.compile(r"^iter\s+\d+\s.*\s(\d+(?:\.\d+)?)s$")
HDFS = "hdfs://namenode:8020/user/root"
TRAIN = ["mrtrain", "train", f"{HDFS}/iris", "--model", "softmax", "--optimizer", "newton", "--l2", "0.01",
         "--max-iter", "4", "--runner", "hadoop", "--no-metrics"]


def timed(*command):
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return time.monotonic() - started, result


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="remove the image and its base first")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    rows = {}
    subprocess.run([SCRIPT, "down"], check=True, capture_output=True)
    if args.cold:
        image = "mrtrain-hadoop:3.4.2"
        base = os.environ.get("MRTRAIN_BASE_IMAGE", "debian:bookworm")
        subprocess.run(["docker", "rmi", "-f", image, base], capture_output=True, check=False)
        subprocess.run(["docker", "image", "prune", "-f"], capture_output=True, check=False)
        rows["image build, cold (base image included)"] = timed(SCRIPT, "build")[0]
    rows["image build, warm"] = timed(SCRIPT, "build")[0]
    seconds, result = timed(SCRIPT, "up")
    ready = re.search(r"cluster ready in (\d+\.\d+) s", result.stdout)
    rows["cluster start (containers to ready)"] = float(ready.group(1)) if ready else seconds
    try:
        timed(SCRIPT, "run", "--", "mrtrain", "ingest", "/work/data/iris.libsvm", f"{HDFS}/iris",
              "--partitions", "4")
        seconds, result = timed(SCRIPT, "run", "--", *TRAIN)
        passes = [float(m.group(1)) for line in result.stderr.splitlines()
                  if (m := PASS_SECONDS.match(line.strip()))]
        rows["seconds per pass (median)"] = statistics.median(passes)
        rows["passes"] = len(passes)
        rows["training, wall"] = seconds
    finally:
        subprocess.run([SCRIPT, "down"], check=True, capture_output=True)

    machine = f"{cpu_model()}, {len(os.sched_getaffinity(0))} cores"
    print(f"compose cluster (docker-hadoop/) on {machine}")
    print(f"{'what':44} {'value':>10}")
    for name, value in rows.items():
        print(f"{name:44} {value:>10.1f}" if isinstance(value, float) else f"{name:44} {value:>10}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "figures": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
