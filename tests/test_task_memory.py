"""A gradient map task's peak memory on a wide sparse partition, beyond the modules it imports.

A task process imports its modules (mrjob, numpy, scipy.sparse, pyarrow, mrtrain) before any data, the same
amount whatever the data; what the data costs on top is bounded here by what the task cannot do without, for a
partition of ``F`` bytes on disk that decodes to ``D`` bytes (int32 column indices and float64 values per
stored value, int32 row offsets and float64 labels per row) and ``m`` parameter points of ``p`` parameters
(``P = 8 m p`` bytes):

- the parameter points: ``P``;
- the gradient sums: the sparse product ``gs @ X`` and the rows of sums it is copied into, ``2 P``. The
  record that carries the sums is built once the product is freed and takes about twice its length to
  build; here it is short (the rows touch 2^16 of the 2^20 features, as hashed categorical data touch a
  minority of their slots), so it fits in the product's place;
- the decoded partition ``D`` (from the partition cache: its memory-mapped entry) and, when it is read
  from the Parquet file, the file's bytes ``F`` and the decoder's working memory for one column, at most
  ``D`` again;
- a fixed allowance, :data:`FIXED_ALLOWANCE`, for what is not data: code pages first touched by the
  decoding and the sparse products, and memory the allocators keep.

So the extra peak must stay below ``F + 2 D + 3 P + FIXED_ALLOWANCE`` (``D + 3 P + FIXED_ALLOWANCE`` from the
cache). Each term is needed; an extra copy of the parameter points or of the gradient (``P``), or a module the
read imports for nothing, breaks the bound. Measured as the peak resident memory (``VmHWM``) of two fresh
processes: one that only imports (the baseline), one that also runs the task. (Not ``ru_maxrss``: a process
started from this one inherits its peak through ``fork`` and ``exec``.)
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.sparse import csr_array

from mrtrain.storage.dataset import write_dataset

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")

D_FEATURES = 2**20
ROWS = 20_000
STORED_PER_ROW = 40
#: The rows' features are multiples of 16: 2^16 distinct ones.
TOUCHED_EVERY = 16
POINTS = 4
MIB = 2**20
#: Memory of a task that is not data (see the module docstring).
FIXED_ALLOWANCE = 24 * MIB

IMPORTS = """
import sys
import scipy.sparse
import mrtrain.mr_jobs.gradient
import mrtrain.storage.dataset
"""

TASK = """
import os
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.mr_jobs.protocols import TaggedVectorProtocol

task, params, line = sys.argv[1:4]
job = MRGradient(["--task", task, "--params", params])
job.mapper_init_load_task()
protocol = TaggedVectorProtocol()
with open(os.devnull, "wb") as sink:
    for key, value in job.mapper_partition_sums(None, line):
        sink.write(protocol.write(key, value))
        sink.write(b"\\n")
"""

PEAK = """
with open("/proc/self/status") as status:
    print(next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:")))
"""


def peak_bytes(code, *args, env=None):
    """The peak resident memory (bytes) of a fresh Python process running ``code``, and its stderr."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          check=True, timeout=120)
    return int(done.stdout.split()[-1]), done.stderr


@pytest.fixture(scope="module")
def wide_partition(tmp_path_factory):
    """One csr partition of ROWS rows over 2^20 features, the task file and POINTS parameter points."""
    root = tmp_path_factory.mktemp("task-memory")
    rng = np.random.default_rng(0)
    columns = np.sort(rng.integers(0, D_FEATURES // TOUCHED_EVERY, size=(ROWS, STORED_PER_ROW)), axis=1)
    columns = columns * TOUCHED_EVERY
    X = csr_array((rng.uniform(0.1, 2.0, size=ROWS * STORED_PER_ROW), columns.ravel(),
                   np.arange(0, ROWS * STORED_PER_ROW + 1, STORED_PER_ROW)), shape=(ROWS, D_FEATURES))
    y = rng.integers(0, 2, size=ROWS).astype(float)
    dataset = write_dataset(str(root / "data"), X, y, partitions=1)
    part = dataset.partitions[0]
    p = D_FEATURES + 1
    np.save(root / "params.npy", rng.normal(scale=0.01, size=(POINTS, p)))
    spec = {"kind": "logistic", "n_features": D_FEATURES, "classes": [0.0, 1.0], "fit_intercept": True}
    line = f"{part.index}\t{part.uri}\t{part.sha256}\t{part.rows}\t{part.bytes}"
    return {"root": root, "dataset": dataset, "line": line, "spec": spec, "p": p}


def task_file(partition, cache):
    path = partition["root"] / f"task-{cache}.json"
    path.write_text(json.dumps({"model": partition["spec"], "shards": 1, "partition_cache": cache,
                                "has_weight": False, "hessian": 0}))
    return str(path)


@pytest.mark.parametrize("cache", [False, True], ids=["parquet", "partition-cache"])
def test_a_map_task_holds_the_partition_the_points_and_two_gradients_at_most(wide_partition, cache, tmp_path):
    part = wide_partition["dataset"].partitions[0]
    decoded = part.nnz * (4 + 8) + (part.rows + 1) * 4 + part.rows * 8
    points = POINTS * wide_partition["p"] * 8
    reading = 0 if cache else part.bytes + decoded
    bound = reading + decoded + 3 * points + FIXED_ALLOWANCE

    env = {**os.environ, "MRTRAIN_PARTITION_CACHE_DIR": str(tmp_path / "cache"), "OPENBLAS_NUM_THREADS": "1"}
    args = (task_file(wide_partition, cache), str(wide_partition["root"] / "params.npy"),
            wide_partition["line"])
    if cache:  # the first task reads the Parquet file and caches the partition, the second maps the cache
        peak_bytes(IMPORTS + TASK + PEAK, *args, env=env)
    baseline, _ = peak_bytes(IMPORTS + PEAK, env=env)
    peak, counters = peak_bytes(IMPORTS + TASK + PEAK, *args, env=env)
    assert ("partitions from cache" in counters) == cache
    extra = peak - baseline
    assert 0 < extra <= bound, (
        f"peak beyond the imports {extra / MIB:.1f} MiB; bound {bound / MIB:.1f} MiB = reading "
        f"{reading / MIB:.1f} + decoded {decoded / MIB:.1f} + 3 x points {points / MIB:.1f} + "
        f"{FIXED_ALLOWANCE / MIB:.0f}"
    )
