"""The map task's throughput and peak memory, against a plain in-memory numpy gradient on the same rows.

A fresh Python process does what one gradient map task does with one partition: import the job module,
``read_partition`` (read the bytes, check the sha256, decode the Parquet) — or, as on every pass after the
first, memory-map the partition from the node's partition cache — encode the labels and compute
``Model.partial_sums`` at ``m`` points, with Hessians at the first ``HESSIAN`` of them (a Newton pass asks
for 1). It reports each phase's seconds, its peak resident memory, and the peak after the imports (the
baseline: an idle task), so ``(peak - baseline) / partition bytes`` is what a partition costs. The
reference is the textbook numpy computation of the same sums on the same rows already in memory
(``eta = X @ W.T + b``, ``np.logaddexp``, ``1 / (1 + exp(-eta))``, ``G.T @ X``), timed in this process.
Both run BLAS on one thread: a map task's sums do (one task per core), and so the reference gets the
same share of the machine.

Run as ``python3 -m benchmarks.mapper URI SHA256 KIND N_FEATURES CLASSES M HESSIAN [CACHE_ROOT]`` it is
that task (reading from the partition cache at ``CACHE_ROOT`` if given).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

#: The repository root, so the task process imports this checkout's packages.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _task(uri, sha256, kind, n_features, classes, m, hessian, cache_root=None):
    started = time.perf_counter()
    import mrtrain.mr_jobs.gradient  # noqa: F401  (what the task imports)
    from mrtrain.engine.registry import make_model
    from mrtrain.mr_jobs.partition_job import single_threaded_blas
    from mrtrain.storage.filesystem import get_filesystem
    from mrtrain.storage.partition_cache import PartitionCache

    if cache_root is None:
        from mrtrain.storage.dataset import read_partition  # a cache hit never imports pyarrow

    imported = time.perf_counter()
    baseline = _peak_rss_bytes()
    if cache_root is None:
        X, y_raw, w = read_partition(uri, expected_sha256=sha256, n_features=n_features)
    else:
        X, y_raw, w = PartitionCache(cache_root).get(sha256, uri, get_filesystem(uri).stat(uri), n_features)
    read = time.perf_counter()
    model = make_model(kind, n_features, classes=classes)
    y = model.encode_labels(y_raw)
    thetas = np.random.default_rng(0).normal(scale=0.1, size=(m, model.n_params))
    labels = time.perf_counter()
    with single_threaded_blas():
        model.partial_sums(X, y, w, thetas, hessian=hessian).to_vector()
    done = time.perf_counter()
    peak = _peak_rss_bytes()
    return {"rows": len(y), "import_s": imported - started, "read_decode_s": read - imported,
            "labels_s": labels - read, "sums_s": done - labels, "baseline_rss_bytes": baseline,
            "peak_rss_bytes": peak, **({} if cache_root else _read_breakdown(uri))}


def _peak_rss_bytes():
    """This process's peak resident memory (VmHWM; ru_maxrss would include the parent's before exec)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _read_breakdown(uri):
    """The phases of ``read_partition`` timed once more, after it (warm page cache and allocator)."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mrtrain.storage.filesystem import get_filesystem

    started = time.perf_counter()
    data = get_filesystem(uri).read_bytes(uri)
    read = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    hashed = time.perf_counter()
    pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)
    decoded = time.perf_counter()
    return {"warm_read_bytes_s": read - started, "warm_sha256_s": hashed - read,
            "warm_parquet_decode_s": decoded - hashed}


def map_task(partition, kind, n_features, classes, m, hessian, cache_root=None):
    """Run one map task's work on ``partition`` in a fresh process; its phase times and peak memory."""
    command = [sys.executable, "-m", "benchmarks.mapper", partition.uri, partition.sha256, kind,
               str(n_features), json.dumps(classes), str(m), str(int(hessian)), *filter(None, [cache_root])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(output)


def raw_numpy_sums(X, y, thetas, kind, hessian):
    """The same sums in plain numpy: loss (m,), gradient (m, d + 1), Hessians (hessian, d + 1, d + 1)."""
    eta = X @ thetas[:, :-1].T + thetas[:, -1]
    if kind == "logistic":
        loss = (np.logaddexp(0.0, eta) - y[:, None] * eta).sum(axis=0)
        p = 1.0 / (1.0 + np.exp(-eta))
        g = p - y[:, None]
    else:
        g = eta - y[:, None]
        loss = 0.5 * (g * g).sum(axis=0)
    grad = np.concatenate([g.T @ X, g.sum(axis=0)[:, None]], axis=1)
    hess = None
    if hessian:
        h = p * (1.0 - p) if kind == "logistic" else np.ones_like(g)
        Xa = np.concatenate([X, np.ones((len(X), 1))], axis=1)
        hess = np.stack([Xa.T @ (Xa * h[:, [j]]) for j in range(hessian)])
    return loss, grad, hess


def best_seconds(func, repeats=3):
    """The fastest of ``repeats`` timed calls of ``func()``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(dataset, kind, m, hessian, label, cached=False):
    """Mapper rows/s (read + decode + sums, fresh process, no interpreter start) vs raw numpy rows/s.

    ``m`` points with Hessians at the first ``int(hessian)`` (``True`` is 1: a Newton pass). ``cached``:
    the task finds the partition in its partition cache (put there beforehand), as on passes after the
    first.

    Returns
    -------
    dict
        One row of the mapper table.
    """
    hessian = int(hessian)
    partition = dataset.partitions[0]
    with tempfile.TemporaryDirectory(prefix="mrtrain-bench-cache-") as cache_root:
        if cached:
            from mrtrain.storage.dataset import read_partition
            from mrtrain.storage.filesystem import get_filesystem
            from mrtrain.storage.partition_cache import PartitionCache

            source = (partition.uri, get_filesystem(partition.uri).stat(partition.uri))
            PartitionCache(cache_root).put(partition.sha256, *source, *read_partition(partition.uri))
        tasks = [map_task(partition, kind, dataset.n_features, dataset.classes, m, hessian,
                          cache_root if cached else None) for _ in range(3)]
    task = min(tasks, key=lambda t: t["read_decode_s"] + t["sums_s"])
    X, y, _ = dataset.read_partition(0)
    X = np.array(X, dtype=np.float64)
    y = (y == max(dataset.classes)).astype(np.float64) if kind == "logistic" else np.array(y)
    thetas = np.random.default_rng(0).normal(scale=0.1, size=(m, X.shape[1] + 1))
    from mrtrain.mr_jobs.partition_job import single_threaded_blas

    with single_threaded_blas():
        raw_s = best_seconds(lambda: raw_numpy_sums(X, y, thetas, kind, hessian))
    mapper_s = task["read_decode_s"] + task["labels_s"] + task["sums_s"]
    rows = task["rows"]
    return {
        "case": label, "source": "partition cache" if cached else "Parquet", "rows": rows,
        "partition_bytes": partition.bytes, "points": m, "hessian": hessian,
        **task, "mapper_rows_per_s": rows / mapper_s, "raw_numpy_rows_per_s": rows / raw_s,
        "ratio": raw_s / mapper_s,
        "peak_over_partition": (task["peak_rss_bytes"] - task["baseline_rss_bytes"]) / partition.bytes,
    }


if __name__ == "__main__":
    uri, sha, kind_arg, d_arg, classes_arg, m_arg, hessian_arg, *cache_arg = sys.argv[1:]
    print(json.dumps(_task(uri, sha, kind_arg, int(d_arg), json.loads(classes_arg), int(m_arg),
                           int(hessian_arg), *cache_arg)))
