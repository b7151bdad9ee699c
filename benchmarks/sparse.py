"""Sparse benchmark: mrtrain against scikit-learn, Spark MLlib and Vowpal Wabbit on wide sparse data.

Run ``python3 -m benchmarks.sparse [--quick] [--json OUT] [--systems NAME,...] [--criteo-rows N] [--hadoop]
[--hadoop-allreduce]``.

Two seeded problems, each a training and a held-out set drawn from one hidden model:

- ``criteo``: Criteo-like click logs. 13 numeric columns (log counts) and 26 categorical ones whose
  levels follow a Zipf law (exponent 1.1) over 10^2 to 10^6 distinct values (geometrically spaced across
  the columns); the label is Bernoulli of the logistic of a hidden sparse model (5 numeric weights, a
  weight on 20% of every column's levels). Written as CSV and ingested with
  ``mrtrain ingest --categorical C1,...,C26 --hash-bits 20`` (the held-out rows with ``--like``), so the
  model has 13 + 2^20 features.
- ``bow``: bag-of-words-like rows over 10^5 words (Zipf, exponent 1.05; about 50 distinct words a row,
  value log(1 + count)), labelled by a hidden model on 10% of the words, written as libsvm and ingested
  with ``--n-features 100000``.

Every system fits logistic regression with the same l2 (mean log-loss + (l2/2)·‖w‖², intercept not
penalized) on the same rows: mrtrain (``Trainer``, L-BFGS, one reducer: local runner one job per pass,
inline runner, local runner ``--allreduce``, and with ``--systems ...,unpreconditioned`` also without its
preconditioner),
scikit-learn (``LogisticRegression(C=1/(n·l2))`` on the dataset's CSR matrix), Spark MLlib ``local[2]``
(``regParam=l2`` on the same matrix written as libsvm) and, when the ``vowpalwabbit`` package is installed,
Vowpal Wabbit (online: adaptive, normalised SGD with ``--l2`` the same l2, several passes over the same
rows written in its text format with the feature indices as names, ``-b 21`` so no two features share a
weight). Each runs in a process of its own (:mod:`benchmarks.sparse_systems`) so its peak memory is its own;
mrtrain's tasks and Vowpal Wabbit report theirs through :mod:`benchmarks.peak_rss`. Every system's
parameters are scored here the same way: the training objective (mrtrain's, on the training rows) and the
held-out log-loss and ROC AUC (Vowpal Wabbit's held-out predictions come from the model it saved).
mrtrain's bytes per pass are the ``shuffle bytes`` its map tasks count. ``--hadoop`` also times passes of
the criteo model on the running mini cluster (``scripts/hadoop-cluster start``), one job each;
``--hadoop-allreduce`` trains it there to convergence in one AllReduce job.

Datasets are cached in ``.cache/bench/sparse/`` and rebuilt only when missing; the output is Markdown on
stdout and everything in ``--json``.
"""

import argparse
import dataclasses
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

import numpy as np

from benchmarks import peak_rss, report
from benchmarks.systems import spark_unavailable_reason

log = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_DIR = os.path.join(".cache", "bench", "sparse")
N_NUMERIC, N_CATEGORICAL = 13, 26
#: Stopping rules of the other systems' optimizers (relative objective change, or their own tolerance).
TOL = 1e-6
GTOL = 1e-6
MAX_ITER = 100
#: mrtrain runs to its own default tolerance: its per-pass objectives and seconds say when it reached the
#: target, wherever it stops.
MRTRAIN_TOL = 1e-8
#: The common target: a training objective within this relative gap of the best one any system reached.
TARGET_GAP = 1e-6
VW_PASSES = 10


@dataclass(frozen=True)
class Problem:
    """One sparse benchmark problem.

    Attributes
    ----------
    name : {"criteo", "bow"}
    train_rows, test_rows : int
    dimension : int
        criteo: the hashed slots (2^hash_bits); bow: the words.
    levels : tuple of int
        criteo: the fewest and the most distinct values of a categorical column.
    l2 : float
    seed : int
    """

    name: str
    train_rows: int
    test_rows: int
    dimension: int
    levels: tuple
    l2: float
    seed: int

    @property
    def n_features(self):
        return self.dimension + (N_NUMERIC if self.name == "criteo" else 0)


FULL = (
    Problem("criteo", 100_000, 25_000, 2**20, (10**2, 10**6), 1e-4, 21),
    Problem("bow", 100_000, 25_000, 100_000, (), 1e-4, 22),
)
QUICK = (
    Problem("criteo", 3_000, 1_000, 2**12, (10, 10**4), 1e-3, 21),
    Problem("bow", 2_000, 1_000, 2_000, (), 1e-3, 22),
)
#: L-BFGS iterations of mrtrain with --quick: a smoke run of every system, not a converged comparison.
QUICK_MAX_ITER = 4


def zipf_ranks(rng, n, levels, exponent):
    """``n`` draws of ranks 0..levels-1 with probability proportional to (rank + 1)^-exponent."""
    cdf = np.cumsum(np.arange(1, levels + 1, dtype=np.float64) ** -exponent)
    return np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), levels - 1)


def criteo_rows(problem):
    """The rows of a criteo problem: numeric (n, 13), categorical level ids (n, 26), labels (n,)."""
    rng = np.random.default_rng(problem.seed)
    n = problem.train_rows + problem.test_rows
    numeric = np.log1p(np.floor(rng.lognormal(mean=1.0, sigma=1.2, size=(n, N_NUMERIC))))
    numeric_weights = np.zeros(N_NUMERIC)
    numeric_weights[rng.choice(N_NUMERIC, 5, replace=False)] = rng.normal(scale=0.3, size=5)
    eta = numeric @ numeric_weights - 1.5
    levels = np.geomspace(*problem.levels, N_CATEGORICAL).round().astype(np.int64)
    categorical = np.empty((n, N_CATEGORICAL), dtype=np.int64)
    for column, count in enumerate(levels):
        weights = rng.normal(scale=0.8, size=count) * (rng.random(count) < 0.2)
        categorical[:, column] = zipf_ranks(rng, n, count, 1.1)
        eta += weights[categorical[:, column]]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
    return numeric, categorical, y


def write_criteo_csv(path, numeric, categorical, y):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = {"label": pa.array(y.astype(np.int64))}
    columns.update({f"I{j + 1}": pa.array(numeric[:, j]) for j in range(N_NUMERIC)})
    columns.update({f"C{j + 1}": pa.array(categorical[:, j]) for j in range(N_CATEGORICAL)})
    pacsv.write_csv(pa.table(columns), path)


def bow_rows(problem):
    """The rows of a bow problem: a CSR matrix (n, words) of log(1 + count) and labels (n,)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(problem.seed)
    n, words = problem.train_rows + problem.test_rows, problem.dimension
    tokens = 40 + rng.poisson(20, size=n)
    row_of = np.repeat(np.arange(n), tokens)
    word = zipf_ranks(rng, len(row_of), words, 1.05)
    counts = sp.csr_array((np.ones(len(word)), (row_of, word)), shape=(n, words))
    counts.sum_duplicates()
    X = sp.csr_array((np.log1p(counts.data), counts.indices, counts.indptr), shape=(n, words))
    weights = rng.normal(scale=1.0, size=words) * (rng.random(words) < 0.1)
    eta = X @ weights
    eta = (eta - eta.mean()) / eta.std() * 1.5 - 0.5
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
    return X, y


def _pairs(X, row, first_index):
    """``"INDEX:VALUE ..."`` of one CSR row, indices counted from ``first_index``, values to 17 digits."""
    start, stop = X.indptr[row], X.indptr[row + 1]
    return " ".join(f"{j + first_index}:{v:.17g}" for j, v in
                    zip(X.indices[start:stop].tolist(), X.data[start:stop].tolist(), strict=True))


def write_libsvm(path, X, y):
    """``X`` (CSR) and ``y`` as a libsvm file (1-based indices)."""
    with open(path, "w", encoding="ascii") as handle:
        for i in range(X.shape[0]):
            handle.write(f"{y[i]:g} {_pairs(X, i, 1)}\n")


def write_vw(path, X, y):
    """``X`` and ``y`` in Vowpal Wabbit's text format: ``±1 |f INDEX:VALUE ...`` (integer names)."""
    with open(path, "w", encoding="ascii") as handle:
        for i in range(X.shape[0]):
            handle.write(f"{'1' if y[i] > 0 else '-1'} |f {_pairs(X, i, 0)}\n")


def _mrtrain(*args):
    """Run the ``mrtrain`` command; returns its seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mrtrain", "-q", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def ensure_problem(problem, cache_dir=CACHE_DIR):
    """The problem's datasets (made once): ``{"train", "test", "train_libsvm", "train_vw", "test_vw",
    "ingest_s"}``, the paths of the mrtrain datasets and of the other systems' copies of the same rows (the
    copies are written when a system first needs them: :func:`ensure_copies`)."""
    from mrtrain.storage.dataset import Dataset

    fields = "-".join(str(value) for value in (problem.name, problem.train_rows, problem.test_rows,
                                                problem.dimension, *problem.levels, problem.seed))
    root = os.path.join(cache_dir, fields)
    paths = {name: os.path.join(root, name) for name in ("train", "test")}
    paths.update({name: os.path.join(root, f"{name}.{ext}") for name, ext in
                  (("train_libsvm", "libsvm"), ("train_vw", "vw"), ("test_vw", "vw"))})
    info_path = os.path.join(root, "ingest.json")
    if os.path.exists(info_path):
        with open(info_path, encoding="utf-8") as handle:
            return {**paths, **json.load(handle)}
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    n = problem.train_rows
    log.info("generating %s", root)
    if problem.name == "criteo":
        numeric, categorical, y = criteo_rows(problem)
        for part, rows in (("train", slice(0, n)), ("test", slice(n, None))):
            write_criteo_csv(os.path.join(root, f"{part}.csv"), numeric[rows], categorical[rows], y[rows])
        columns = ",".join(f"C{j + 1}" for j in range(N_CATEGORICAL))
        bits = int(np.log2(problem.dimension))
        ingest_s = _mrtrain("ingest", os.path.join(root, "train.csv"), paths["train"], "--categorical",
                            columns, "--hash-bits", str(bits), "--partitions", "2")
        _mrtrain("ingest", os.path.join(root, "test.csv"), paths["test"], "--like", paths["train"],
                 "--partitions", "1")
    else:
        X, y = bow_rows(problem)
        write_libsvm(paths["train_libsvm"], X[:n], y[:n])
        write_libsvm(os.path.join(root, "test.libsvm"), X[n:], y[n:])
        ingest_s = _mrtrain("ingest", paths["train_libsvm"], paths["train"], "--n-features",
                            str(problem.dimension), "--partitions", "2")
        _mrtrain("ingest", os.path.join(root, "test.libsvm"), paths["test"], "--n-features",
                 str(problem.dimension), "--partitions", "1")
    X_train, y_train, _ = Dataset.open(paths["train"]).read_all()
    train = Dataset.open(paths["train"])
    info = {"ingest_s": ingest_s, "nnz": int(X_train.nnz), "rows": int(X_train.shape[0]),
            "positive_rate": float(y_train.mean()), "dataset_bytes": sum(p.bytes for p in train.partitions)}
    with open(info_path, "w", encoding="utf-8") as handle:
        json.dump(info, handle)
    return {**paths, **info}


def ensure_copies(paths, names):
    """Write the other systems' copies of the rows named in ``names`` (``train_libsvm``, ``train_vw``,
    ``test_vw``) that do not exist yet, from the mrtrain datasets."""
    import scipy.sparse as sp

    from mrtrain.storage.dataset import Dataset

    for name in names:
        if os.path.exists(paths[name]):
            continue
        X, y, _ = Dataset.open(paths["test" if name.startswith("test") else "train"]).read_all()
        log.info("writing %s", paths[name])
        temporary = paths[name] + ".tmp"
        if name == "train_libsvm":
            write_libsvm(temporary, sp.csr_array(X), y)
        else:
            write_vw(temporary, X, y)
        os.replace(temporary, paths[name])


class Scorer:
    """The training objective and held-out metrics of any parameter vector (coefficients, intercept)."""

    def __init__(self, problem, paths):
        from mrtrain.storage.dataset import Dataset

        self.l2 = problem.l2
        self.X, self.y, _ = Dataset.open(paths["train"]).read_all()
        self.X_test, self.y_test, _ = Dataset.open(paths["test"]).read_all()

    def objective(self, theta):
        eta = self.X @ theta[:-1] + theta[-1]
        loss = np.mean(np.logaddexp(0.0, eta) - self.y * eta)
        return float(loss + 0.5 * self.l2 * theta[:-1] @ theta[:-1])

    def held_out(self, probabilities):
        from sklearn.metrics import log_loss, roc_auc_score

        return {"test_log_loss": float(log_loss(self.y_test, probabilities, labels=[0.0, 1.0])),
                "test_auc": float(roc_auc_score(self.y_test, probabilities))}

    def score(self, theta):
        eta = self.X_test @ theta[:-1] + theta[-1]
        return {"objective": self.objective(theta), **self.held_out(1.0 / (1.0 + np.exp(-eta)))}


def run_child(system, spec, tmp):
    """Run one system in its own process (:mod:`benchmarks.sparse_systems`); its result and parameters."""
    spec = {**spec, "theta_path": os.path.join(tmp, f"{system}-theta.npy"),
            "result_path": os.path.join(tmp, f"{system}-result.json")}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-m", "benchmarks.sparse_systems", system, json.dumps(spec)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    with open(spec["result_path"], encoding="utf-8") as handle:
        result = json.load(handle)
    return result, np.load(spec["theta_path"], allow_pickle=False)


def task_conf(path, rss_log, runner="local", base=None):
    """An mrjob config whose ``task_python_bin`` runs every task under :mod:`benchmarks.peak_rss`."""
    conf = {"runners": {}}
    if base:
        with open(base, encoding="utf-8") as handle:
            conf = json.load(handle)
    options = conf["runners"].setdefault(runner, {})
    python = options.get("python_bin", sys.executable)
    options["task_python_bin"] = [sys.executable, "-I", "-S", peak_rss.__file__, rss_log, python]
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(conf, handle)
    return path


def run_mrtrain(problem, paths, scorer, tmp, *, reducers, label, runner="local", data=None, base_conf=None,
                max_iter=MAX_ITER, precondition=True, allreduce=False):
    """mrtrain's row: the fit, its passes, bytes per pass, and the driver's and the tasks' peak memory."""
    rss_log = os.path.join(tmp, f"{label}.rss")
    # The inline runner runs its tasks in this process: no task_python_bin, no task peaks.
    conf = (base_conf if runner == "inline"
            else task_conf(os.path.join(tmp, f"{label}.mrjob.json"), rss_log, runner, base_conf))
    spec = {"data": data or paths["train"], "l2": problem.l2, "tol": MRTRAIN_TOL, "gtol": GTOL,
            "max_iter": max_iter, "runner": runner, "reducers": reducers, "conf_path": conf,
            "precondition": precondition, "allreduce": allreduce}
    result, theta = run_child("mrtrain", spec, tmp)
    peaks = peak_rss.read_log(rss_log)
    # An AllReduce job's passes go over TCP, not through a shuffle: its one job's counter says nothing.
    pass_bytes = [] if allreduce else result["pass_bytes"]
    return {"system": label, **result, **scorer.score(theta), "load_s": 0.0,
            "per_pass_s": result["fit_s"] / result["passes"],
            "bytes_per_pass": statistics.median(pass_bytes) if pass_bytes else None,
            "bytes_per_pass_max": max(pass_bytes, default=None),
            "mapper_peak_rss_bytes": max(peaks.get("mapper", []), default=None),
            "reducer_peak_rss_bytes": max(peaks.get("reducer", []), default=None),
            "theta_sha256": _digest(theta)}


def _digest(theta):
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(theta, dtype="<f8").tobytes()).hexdigest()


def seconds_to_target(row, target):
    """When ``row``'s system first had a training objective <= ``target``, in seconds from the start of its
    fit, or None if it never did. mrtrain's rows know every pass's objective and seconds (the seconds
    before its first optimizer pass, the statistics pass and job set-up, count in full); the other systems
    only their final objective, so theirs is the whole fit or None."""
    objectives = row.get("pass_objectives")
    if objectives:
        reached = [k for k, value in enumerate(objectives) if value <= target]
        if not reached:
            return None
        return row["fit_s"] - sum(row["pass_s"][reached[0] + 1 :])
    return row["fit_s"] if row.get("objective") is not None and row["objective"] <= target else None


def run_sklearn(problem, paths, scorer, tmp):
    spec = {"data": paths["train"], "l2": problem.l2, "tol": TOL, "max_iter": 1000}
    result, theta = run_child("sklearn", spec, tmp)
    return {"system": "scikit-learn lbfgs (in memory)", **result, **scorer.score(theta)}


def run_spark(problem, paths, scorer, tmp):
    reason = spark_unavailable_reason()
    if reason:
        return {"system": "Spark MLlib local[2] l-bfgs", "skipped": reason}
    ensure_copies(paths, ["train_libsvm"])
    spec = {"libsvm": paths["train_libsvm"], "n_features": problem.n_features, "l2": problem.l2, "tol": TOL,
            "max_iter": MAX_ITER}
    result, theta = run_child("spark", spec, tmp)
    return {"system": "Spark MLlib local[2] l-bfgs", **result, **scorer.score(theta)}


def vw_unavailable_reason():
    """None when the ``vowpalwabbit`` package imports, else why Vowpal Wabbit cannot run here."""
    try:
        import vowpalwabbit  # noqa: F401
    except ImportError as error:
        return f"the vowpalwabbit package is not installed (pip install vowpalwabbit): {error}"
    return None


def run_vw(problem, paths, scorer, tmp):
    """Vowpal Wabbit through ``python3 -m vowpalwabbit`` (the package's command line), under
    :mod:`benchmarks.peak_rss`: training passes, then predictions of the held-out rows."""
    system = f"Vowpal Wabbit SGD, {VW_PASSES} passes"
    reason = vw_unavailable_reason()
    if reason:
        return {"system": system, "skipped": reason}
    ensure_copies(paths, ["train_vw", "test_vw"])
    model, predictions = os.path.join(tmp, "vw.model"), os.path.join(tmp, "vw.predictions")
    rss_log = os.path.join(tmp, "vw.rss")
    vw = [sys.executable, "-I", "-S", peak_rss.__file__, rss_log, sys.executable, "-m", "vowpalwabbit",
          "--quiet", "-b", "21"]
    started = time.perf_counter()
    subprocess.run(vw + ["-d", paths["train_vw"], "--loss_function", "logistic", "--l2", repr(problem.l2),
                         "--passes", str(VW_PASSES), "--holdout_off", "-c", "-k", "--cache_file",
                         os.path.join(tmp, "vw.cache"), "-f", model], check=True)
    fit_s = time.perf_counter() - started
    subprocess.run(vw + ["-t", "-i", model, "-d", paths["test_vw"], "--link", "logistic", "-p", predictions],
                   check=True)
    probabilities = np.loadtxt(predictions, ndmin=1)
    (peak, *_) = peak_rss.read_log(rss_log)["command"]
    return {"system": system, "fit_s": fit_s, "passes": VW_PASSES, "driver_peak_rss_bytes": peak,
            **scorer.held_out(np.clip(probabilities, 1e-15, 1 - 1e-15))}


def run_hadoop(problem, paths, scorer, tmp, passes, allreduce=False):
    """The criteo model on the running mini cluster (``--runner hadoop``, one reducer): ``passes`` passes
    one job each, or with ``allreduce`` a whole training (to the stopping rule) in one AllReduce job."""
    from mrtrain.storage.dataset import MANIFEST_NAME
    from mrtrain.storage.filesystem import get_filesystem, join

    for name in ("MRJOB_CONF", "MRTRAIN_HDFS_URL", "MRTRAIN_HDFS_USER"):
        if not os.environ.get(name):
            return {"system": "mrtrain hadoop lbfgs", "skipped": f"${name} is not set: run "
                    "eval \"$(scripts/hadoop-cluster env)\" with the cluster running"}
    base = f"{os.environ['MRTRAIN_HDFS_URL']}/user/{os.environ['MRTRAIN_HDFS_USER']}/tmp/" \
           f"mrtrain-sparse-bench-{os.getpid()}"
    fs = get_filesystem(base)
    try:
        for name in os.listdir(paths["train"]):
            if name == MANIFEST_NAME or name.endswith(".parquet"):
                with open(os.path.join(paths["train"], name), "rb") as handle:
                    fs.write_bytes(join(base, name), handle.read())
        label = "mrtrain hadoop lbfgs" + (" --allreduce" if allreduce else "")
        row = run_mrtrain(problem, paths, scorer, tmp, reducers=1, label=label, runner="hadoop", data=base,
                          base_conf=os.environ["MRJOB_CONF"], max_iter=MAX_ITER if allreduce else passes - 1,
                          allreduce=allreduce)
    finally:
        fs.delete(base, recursive=True)
    row["later_pass_s_median"] = statistics.median(row["pass_s"][1:]) if len(row["pass_s"]) > 1 else None
    return row


def _mib(value):
    return "–" if value is None else f"{value / 2**20:.0f}"


def _num(value, fmt="{:.2f}"):
    return "–" if value is None else fmt.format(value)


def problem_table(section):
    """One problem's Markdown: a line describing it, then one row per system."""
    problem, data = section["problem"], section["data"]
    best = min((row["objective"] for row in section["systems"] if row.get("objective") is not None),
               default=None)
    lines = [
        f"**{problem['name']}**: {data['rows']:,} training rows, {section['test_rows']:,} held out, "
        f"{problem['n_features']:,} features, {data['nnz'] / data['rows']:.1f} stored values a row, "
        f"{data['positive_rate']:.1%} positive, l2 = {problem['l2']:g}; mrtrain ingest "
        f"{data['ingest_s']:.1f} s; best training objective f* = {_num(best, '{:.9f}')}",
        "",
        "| system | load s | fit s | s to target | iters | passes | s/pass | MiB per pass (max) | "
        "(f − f*)/f* | held-out log-loss | held-out AUC | driver peak MiB | task peak MiB (map / reduce) |",
        "|" + "---|" * 13,
    ]
    for row in section["systems"]:
        if row.get("skipped"):
            lines.append(f"| {row['system']} | skipped: {row['skipped']} |" + " |" * 11)
            continue
        gap = None if row.get("objective") is None or best is None else (row["objective"] - best) / best
        to_target = None if best is None else seconds_to_target(row, best * (1 + TARGET_GAP))
        shuffled = "–" if row.get("bytes_per_pass") is None else (
            f"{row['bytes_per_pass'] / 2**20:.1f} ({row['bytes_per_pass_max'] / 2**20:.1f})")
        tasks = "–"
        if row.get("mapper_peak_rss_bytes"):
            tasks = f"{_mib(row['mapper_peak_rss_bytes'])} / {_mib(row.get('reducer_peak_rss_bytes'))}"
        elif row.get("jvm_peak_rss_bytes"):
            tasks = f"JVM {_mib(row['jvm_peak_rss_bytes'])}"
        lines.append(
            f"| {row['system']} | {_num(row.get('load_s'))} | {row['fit_s']:.2f} | "
            f"{'not reached' if to_target is None else f'{to_target:.2f}'} | "
            f"{_num(row.get('iterations'), '{}')} | {_num(row.get('passes'), '{}')} | "
            f"{_num(row.get('per_pass_s'))} | {shuffled} | {_num(gap, '{:+.1e}')} | "
            f"{row['test_log_loss']:.5f} | {row['test_auc']:.4f} | "
            f"{_mib(row.get('driver_peak_rss_bytes'))} | {tasks} |"
        )
    return "\n".join(lines)


def render(results):
    machine = results["machine"]
    parts = [f"Command: `{results['command']}`",
             f"Machine: {machine['nproc']} cores, {machine['cpu']}, {machine['ram_gib']} GiB; load average "
             f"{results['load_average_start']} at the start, {results['load_average_end']} at the end"]
    parts += [problem_table(section) for section in results["problems"]]
    trained = results.get("hadoop_allreduce")
    if trained and trained.get("skipped"):
        parts.append(f"Hadoop --allreduce: skipped: {trained['skipped']}")
    elif trained:
        criteo = next((section for section in results["problems"] if section["problem"]["name"] == "criteo"),
                      None)
        best = None if criteo is None else min(row["objective"] for row in criteo["systems"]
                                               if row.get("objective") is not None)
        gap = "" if best is None else f", (f − f*)/f* {(trained['objective'] - best) / best:+.1e}"
        parts.append(
            f"Hadoop mini cluster, criteo ({trained['n_features']:,} features), L-BFGS, `--allreduce` (one "
            f"job): {trained['iterations']} iterations, {trained['passes']} passes, "
            f"{trained['stop_reason']}, "
            f"fit {trained['fit_s']:.1f} s, median s/pass {statistics.median(trained['pass_s']):.2f}, "
            f"objective {trained['objective']:.9f}{gap}, held-out AUC {trained['test_auc']:.4f}, map task "
            f"peak {_mib(trained['mapper_peak_rss_bytes'])} MiB, driver peak "
            f"{_mib(trained['driver_peak_rss_bytes'])} MiB")
    hadoop = results.get("hadoop")
    if hadoop:
        if hadoop.get("skipped"):
            parts.append(f"Hadoop: skipped: {hadoop['skipped']}")
        else:
            each = ", ".join(f"{s:.1f}" for s in hadoop["pass_s"])
            parts.append(
                f"Hadoop mini cluster, criteo ({hadoop['n_features']:,} features), L-BFGS, one reducer: "
                f"{hadoop['passes']} passes, s/pass {each} (median after the first "
                f"{_num(hadoop['later_pass_s_median'])}), {hadoop['bytes_per_pass'] / 2**20:.1f} MiB through "
                f"the shuffle per pass (max {hadoop['bytes_per_pass_max'] / 2**20:.1f}), map task peak "
                f"{_mib(hadoop['mapper_peak_rss_bytes'])} MiB, reduce task peak "
                f"{_mib(hadoop['reducer_peak_rss_bytes'])} MiB, driver peak "
                f"{_mib(hadoop['driver_peak_rss_bytes'])} MiB")
    return "\n\n".join(parts)


#: The systems a run can compare (``--systems``), in the order of the tables.
SYSTEMS = ("local", "inline", "allreduce", "unpreconditioned", "sklearn", "spark", "vw")


def run_problem(problem, quick, tmp, cache_dir, systems, use_spark):
    paths = ensure_problem(problem, cache_dir)
    scorer = Scorer(problem, paths)
    max_iter = QUICK_MAX_ITER if quick else MAX_ITER
    runs = {
        "local": lambda: run_mrtrain(problem, paths, scorer, tmp, reducers=1, label="mrtrain local lbfgs",
                                     max_iter=max_iter),
        "inline": lambda: run_mrtrain(problem, paths, scorer, tmp, reducers=1, label="mrtrain inline lbfgs",
                                      runner="inline", max_iter=max_iter),
        "allreduce": lambda: run_mrtrain(problem, paths, scorer, tmp, reducers=1, max_iter=max_iter,
                                         label="mrtrain local lbfgs --allreduce", allreduce=True),
        "unpreconditioned": lambda: run_mrtrain(problem, paths, scorer, tmp, reducers=1, max_iter=max_iter,
                                                label="mrtrain local lbfgs --no-precondition",
                                                precondition=False),
        "sklearn": lambda: run_sklearn(problem, paths, scorer, tmp),
        "spark": lambda: (run_spark(problem, paths, scorer, tmp) if use_spark else
                          {"system": "Spark MLlib local[2] l-bfgs",
                           "skipped": "not requested (--quick leaves Spark out; --spark yes runs it)"}),
        "vw": lambda: run_vw(problem, paths, scorer, tmp),
    }
    rows = []
    for system in SYSTEMS:
        if system in systems:
            log.info("%s: %s", problem.name, system)
            rows.append(runs[system]())
    data = {key: paths[key] for key in ("ingest_s", "nnz", "rows", "positive_rate", "dataset_bytes")}
    return {"problem": {**asdict(problem), "n_features": problem.n_features}, "data": data,
            "test_rows": problem.test_rows, "systems": rows}


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.sparse", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small problems (2^12 hashed slots, 2,000 words) for the test suite")
    parser.add_argument("--json", help="write the full results to this JSON file")
    parser.add_argument("--spark", choices=("auto", "yes", "no"), default=None,
                        help="run Spark MLlib. Default: auto (no with --quick)")
    parser.add_argument("--hadoop", action="store_true",
                        help="also time passes of the criteo model on the running mini cluster")
    parser.add_argument("--hadoop-passes", type=int, default=4, help="Default: %(default)s")
    parser.add_argument("--hadoop-allreduce", action="store_true",
                        help="also train the criteo model to convergence on the mini cluster, --allreduce")
    parser.add_argument("--problems", default="criteo,bow", metavar="NAME[,NAME]",
                        help="the problems to run (criteo, bow; empty for none). Default: %(default)s")
    parser.add_argument("--cache-dir", default=CACHE_DIR, help="dataset cache. Default: %(default)s")
    parser.add_argument("--systems", default="local,inline,allreduce,sklearn,spark,vw", metavar="NAME[,NAME]",
                        help=f"the systems to compare, of {', '.join(SYSTEMS)} (unpreconditioned: mrtrain "
                        "--no-precondition, slow: it needs the 100 iterations). Default: %(default)s; "
                        "--quick leaves spark out")
    parser.add_argument("--criteo-rows", type=int, metavar="N",
                        help="training rows of the criteo problem (held out: N/4). Default: 100,000 "
                        "(3,000 with --quick)")
    args = parser.parse_args(argv)
    names = [name for name in args.problems.split(",") if name]
    if not set(names) <= {"criteo", "bow"}:
        parser.error(f"--problems takes criteo and bow. Got {args.problems!r}.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("mrjob", "mrtrain", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    systems = [name for name in args.systems.split(",") if name]
    if not set(systems) <= set(SYSTEMS):
        parser.error(f"--systems takes {', '.join(SYSTEMS)}. Got {args.systems!r}.")
    use_spark = (args.spark or ("no" if args.quick else "auto")) != "no"
    if args.spark == "yes" and spark_unavailable_reason():
        parser.error(f"--spark yes, but {spark_unavailable_reason()}")
    problems = QUICK if args.quick else FULL
    if args.criteo_rows:
        problems = tuple(dataclasses.replace(problem, train_rows=args.criteo_rows,
                                             test_rows=args.criteo_rows // 4)
                         if problem.name == "criteo" else problem for problem in problems)
    command = " ".join(["python3", "-m", "benchmarks.sparse", *(sys.argv[1:] if argv is None else argv)])
    results = {"command": command, "machine": report.describe_machine(),
               "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="mrtrain-sparse-bench-") as tmp:
        results["problems"] = [run_problem(problem, args.quick, tmp, args.cache_dir, systems, use_spark)
                               for problem in problems if problem.name in names]
        if args.hadoop:
            criteo = problems[0]
            paths = ensure_problem(criteo, args.cache_dir)
            row = run_hadoop(criteo, paths, Scorer(criteo, paths), tmp, args.hadoop_passes)
            results["hadoop"] = {**row, "n_features": criteo.n_features}
        if args.hadoop_allreduce:
            criteo = problems[0]
            paths = ensure_problem(criteo, args.cache_dir)
            row = run_hadoop(criteo, paths, Scorer(criteo, paths), tmp, 0, allreduce=True)
            results["hadoop_allreduce"] = {**row, "n_features": criteo.n_features}
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print(render(results))
    if args.json:
        report.write_json(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
