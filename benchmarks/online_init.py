"""Passes to a target objective with and without the online-learning start (``init="online"``).

Run ``python3 -m benchmarks.online_init [--json OUT]`` (inline runner, about 3 minutes on 2 cores). Two
seeded logistic problems with l2 = 1e-4: dense 20,000 x 30 with features of scales 0.5-3, and sparse
20,000 x 2^16 with 20 Zipf-distributed binary features per row. Each is trained with L-BFGS to gtol 1e-7
from zeros and from the online start; the target is the better final objective times (1 + rel), and a
run's passes to target count every job, the online start's included.
"""

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mrtrain.storage.dataset import write_dataset
from mrtrain.trainer import Trainer

TARGETS = (1e-3, 1e-4, 1e-6)


def problems(seed=0):
    rng = np.random.default_rng(seed)
    n, d = 20000, 30
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ rng.normal(size=d) * 0.3 + 0.5)))).astype(float)
    yield "dense 20000 x 30", X, y
    n, d, k = 20000, 2**16, 20
    rows, cols = np.repeat(np.arange(n), k), rng.zipf(1.3, size=n * k) % d
    X = sp.csr_matrix((np.ones(n * k), (rows, cols)), shape=(n, d))
    X.sum_duplicates()
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ rng.normal(size=d) * 0.5)))).astype(float)
    yield "sparse 20000 x 2^16", X, y


def passes_to(fitted, target):
    """Passes until the first iterate at or below ``target`` (each iterate costs one pass)."""
    setup = fitted.n_passes_ - fitted.n_iter_  # passes before the first iterate's
    for iteration, value in enumerate(fitted.history_, start=1):
        if value <= target:
            return setup + iteration - 1
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, X, y in problems():
            data = str(Path(scratch) / name.split()[0])
            write_dataset(data, X, y, None, partitions=4)
            runs = {}
            for init in ("zeros", "online"):
                started = time.monotonic()
                runs[init] = (Trainer("logistic", l2=1e-4, gtol=1e-7, tol=0.0, max_iter=400,
                                      init=init).fit(data), time.monotonic() - started)
            best = min(fitted.objective_ for fitted, _ in runs.values())
            for init, (fitted, seconds) in runs.items():
                to_target = {f"passes to {rel:g}": passes_to(fitted, best * (1 + rel)) for rel in TARGETS}
                rows.append({"problem": name, "init": init, "passes": fitted.n_passes_,
                             "seconds": round(seconds, 1), **to_target})
    columns = list(rows[0])
    print(f"online start vs zeros, inline runner, {platform.processor() or platform.machine()}")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
