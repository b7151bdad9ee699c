"""mrtrain on each other supported Python this machine has: a fresh venv, ``pip install .``, then the
``mrtrain`` command on small data with the inline and local runners.

``scripts/python-matrix [VERSION ...]`` runs this module; ``scripts/test`` runs it before the pytest suite,
which runs on the default ``python3`` (so that version is left out here). For each version of
:data:`SUPPORTED` (or those given), other than this interpreter's:

1. find an interpreter: ``pythonX.Y`` on ``PATH``, pyenv's ``versions/X.Y.*`` (newest first), or one that
   ``uv python find`` reports (already installed; nothing is downloaded). None: the version is skipped
   with the reason printed;
2. create a venv in a temporary directory and ``pip install .`` from a clean copy of the source
   (``pyproject.toml``, ``setup.cfg``, ``README.md`` and the package folders), so neither a stale
   ``build/`` of the checkout is installed nor the checkout written to;
3. import every installed module of ours in a fresh interpreter with ``-W error::DeprecationWarning:M``
   for each module ``M`` (those needing an optional extra that is not installed are listed as skipped);
4. in a scratch directory, with relative paths and the venv's ``mrtrain`` command: ingest the shipped Iris
   data (dense), a sparse libsvm file and a CSV with categorical columns (both generated, seeded); train
   (``--optimizer newton``), evaluate and predict each with the inline and the local runner (local: map-only,
   ``--reducers 0``), Iris once more with ``--allreduce`` on the local runner, and two iterations on Iris
   with the local runner from ``python -c`` under the ``forkserver`` start method. Checks: the runners'
   models and predictions are bitwise the same, the accuracy reaches :data:`MIN_ACCURACY` and equals the
   predictions' share of correct labels, and each model matches this interpreter's own inline training
   (when it can import mrtrain) to 1e-9 of the largest parameter.

Prints a line per step with its seconds and closes with ``python-matrix: N passed, N failed, N skipped``
(N counts versions); exits 1 if any version failed.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The Python versions mrtrain supports (setup.cfg's python_requires and classifiers, the README).
SUPPORTED = ("3.11", "3.12", "3.13", "3.14")
#: What ``pip install .`` needs of the checkout.
SOURCE = ("pyproject.toml", "setup.cfg", "README.md", "mrtrain", "engine", "mr_jobs", "storage")
#: Modules that need an optional extra, by the top-level name whose absence skips them.
OPTIONAL = {"sklearn": "the sklearn extra", "matplotlib": "the report extra"}
#: Lowest training accuracy accepted per dataset (Iris: 0.987 in the README's demo).
MIN_ACCURACY = {"iris": 0.98, "sparse": 0.95, "categorical": 0.95}
#: Tolerance between this interpreter's model and another Python's, relative to the model's largest
#: parameter (different numpy builds may add in another order: differences of ~1e-13 of it are seen;
#: parameters that are 0 in exact arithmetic come out as ~1e-20 either way).
RTOL = 1e-9
#: Training options per dataset.
TRAIN = {
    "iris": ["--model", "softmax", "--optimizer", "newton", "--l2", "0.001"],
    "sparse": ["--model", "logistic", "--optimizer", "newton", "--l2", "0.01"],
    "categorical": ["--model", "logistic", "--optimizer", "newton", "--l2", "0.01"],
}

#: Run by the venv's Python: every module of the installed package by name, not ``mrtrain.__main__``.
LIST_MODULES = """
import json, mrtrain
from pathlib import Path
top = Path(mrtrain.__file__).parent
names = []
for path in sorted(top.rglob("*.py")):
    parts = path.relative_to(top).with_suffix("").parts
    names.append(".".join(["mrtrain", *(part for part in parts if part != "__init__")]))
print(json.dumps([name for name in names if name != "mrtrain.__main__"]))
"""
#: Run by the venv's Python with ``-W error::DeprecationWarning:M`` per module: import them all.
IMPORT_MODULES = """
import importlib, json, sys
skipped = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in json.loads(sys.argv[2]):
            raise
        skipped[name] = error.name.split(".")[0]
print(json.dumps(skipped))
"""
#: Run by the venv's Python in the scratch directory: a predictions directory's labels, predicted labels
#: and a hash of its columns' bits.
READ_PREDICTIONS = """
import hashlib, json, sys
import numpy as np
import pyarrow.parquet as pq
manifest = json.load(open(sys.argv[1] + "/_predictions.json"))
digest, right, rows = hashlib.sha256(), 0, 0
for part in manifest["partitions"]:
    table = pq.read_table(sys.argv[1] + "/" + part["file"])
    for column in table.column_names:
        values = table.column(column).combine_chunks()
        flat = values.flatten() if hasattr(values, "flatten") else values
        digest.update(column.encode() + np.asarray(flat.to_numpy(zero_copy_only=False), float).tobytes())
    right += int(np.sum(table.column("label").to_numpy() == table.column("prediction").to_numpy()))
    rows += table.num_rows
print(json.dumps({"rows": rows, "right": right, "sha256": digest.hexdigest()}))
"""

#: Run by the venv's Python in the scratch directory: the local runner from ``python -c`` under the
#: ``forkserver`` start method (Python 3.14's default on Linux), whose pool workers import only what the
#: fork server preloaded (:func:`mrtrain.launcher.preload_mrtrain_in_forkserver`).
FORKSERVER = """
import multiprocessing
multiprocessing.set_start_method("forkserver")
import mrtrain
fitted = mrtrain.Trainer("softmax", l2=0.001, optimizer="newton", max_iter=2, runner="local").fit("iris")
print(fitted.n_iter_)
"""


class StepFailed(Exception):
    """A command or a check failed; the message says which and how."""


def log(message):
    print(f"python-matrix: {message}", flush=True)


def interpreter_version(python):
    """``"X.Y"`` of ``python`` if it runs and has venv and ensurepip, else None."""
    try:
        result = subprocess.run(
            [python, "-c", "import ensurepip, sys, venv; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def find_python(version):
    """An interpreter of ``version`` ("X.Y") with venv and ensurepip, or None; see the module docstring."""
    candidates = [shutil.which(f"python{version}")]
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = [path for path in versions.glob(f"{version}.*") if path.name[len(version) + 1:].isdigit()]
    for path in sorted(found, key=lambda path: int(path.name[len(version) + 1:]), reverse=True):
        candidates.append(str(path / "bin" / f"python{version}"))
    uv = shutil.which("uv")
    if uv:
        result = subprocess.run([uv, "python", "find", version], capture_output=True, text=True)
        candidates.append(result.stdout.strip() if result.returncode == 0 else None)
    for candidate in candidates:
        if candidate and interpreter_version(candidate) == version:
            return candidate
    return None


def run(command, cwd, timeout=900, env=None):
    """Run ``command`` in ``cwd``; its stdout, or :class:`StepFailed` with the end of its stderr."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode != 0:
        shown = " ".join(str(arg) for arg in command)
        raise StepFailed(f"`{shown}` (in {cwd}) exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result.stdout


def last_json(output):
    return json.loads(output.strip().splitlines()[-1])


def write_sparse(path, rows=400, features=300, nnz=8, seed=0):
    """A libsvm file: each row ``nnz`` random features of value 1..3, its label the sign of a fixed linear
    score (so a linear model fits it)."""
    rng = random.Random(seed)
    weights = [rng.uniform(-1, 1) for _ in range(features)]
    lines = []
    for _ in range(rows):
        row = {index: rng.choice((1, 2, 3)) for index in rng.sample(range(features), nnz)}
        label = int(sum(weights[index] * value for index, value in row.items()) > 0)
        lines.append(f"{label} " + " ".join(f"{index + 1}:{row[index]}" for index in sorted(row)))
    path.write_text("\n".join(lines) + "\n")


def write_categorical(path, rows=300, seed=0):
    """A CSV with a numeric column ``x``, categorical ``color`` and ``size`` and a label that they decide."""
    rng = random.Random(seed)
    effect = {"red": 2.0, "green": -1.5, "blue": 0.0, "S": -1.0, "M": 0.0, "L": 1.5}
    lines = ["x,color,size,label"]
    for _ in range(rows):
        x, color, size = round(rng.uniform(-2, 2), 3), rng.choice(("red", "green", "blue")), rng.choice("SML")
        lines.append(f"{x},{color},{size},{int(x + effect[color] + effect[size] > 0)}")
    path.write_text("\n".join(lines) + "\n")


def make_data(scratch):
    """The three source files in ``scratch``; the ``ingest`` arguments of each dataset (relative)."""
    shutil.copy(ROOT / "data" / "iris.libsvm", scratch / "iris.libsvm")
    write_sparse(scratch / "sparse.libsvm")
    write_categorical(scratch / "categorical.csv")
    return {
        "iris": ["iris.libsvm", "iris", "--dense", "--partitions", "2"],
        "sparse": ["sparse.libsvm", "sparse", "--partitions", "2"],
        "categorical": ["categorical.csv", "categorical", "--categorical", "color,size", "--partitions", "2"],
    }


def model_of(trained):
    """The coefficients and intercept of ``train --json`` output, flattened."""
    flat = []
    for key in ("coefficients", "intercept"):
        value = trained[key] if isinstance(trained[key], list) else [trained[key]]
        while value and isinstance(value[0], list):
            value = [item for row in value for item in row]
        flat += value
    return flat


def reference_models(scratch):
    """This interpreter's inline models of the three datasets (``{name: flat list}``), or None when it
    cannot import mrtrain."""
    if subprocess.run([sys.executable, "-c", "import mrtrain.cli"], capture_output=True).returncode != 0:
        return None
    command = [sys.executable, "-m", "mrtrain", "-q"]
    models = {}
    for name, ingest in make_data(scratch).items():
        ingest = [str(scratch / ingest[0]), str(scratch / ingest[1]), *ingest[2:]]  # absolute: not the check
        run(command + ["ingest", *ingest], scratch)
        train = ["train", ingest[1], *TRAIN[name], "--runner", "inline", "--no-metrics",
                 "--checkpoint-dir", str(scratch / f"{name}-reference"), "--json"]
        trained = last_json(run(command + train, scratch))
        models[name] = model_of(trained)
    return models


def check_close(name, got, expected):
    scale = max(abs(value) for value in expected)
    differences = [abs(a - b) for a, b in zip(got, expected, strict=False)]
    if len(got) != len(expected) or max(differences) > RTOL * scale:
        raise StepFailed(f"{name}: model differs from this interpreter's by more than {RTOL} of its largest "
                         f"parameter:\n"
                         f"  got      {got}\n  expected {expected}")


def smoke(venv, scratch, reference):
    """Step 4 of the module docstring in ``scratch`` with the venv at ``venv``."""
    mrtrain = [str(venv / "bin" / "mrtrain"), "-q"]
    python = str(venv / "bin" / "python")
    for name, ingest in make_data(scratch).items():
        run(mrtrain + ["ingest", *ingest], scratch)
        runs = [("inline", []), ("local", ["--reducers", "0"])]
        if name == "iris":
            runs.append(("local", ["--allreduce"]))
        seen = {}
        for runner, extra in runs:
            label = f"{name}-{runner}" + ("-allreduce" if "--allreduce" in extra else "")
            model_dir = label
            started = time.perf_counter()
            train = ["train", name, *TRAIN[name], "--runner", runner, *extra, "--no-metrics",
                     "--checkpoint-dir", model_dir, "--json"]
            trained = last_json(run(mrtrain + train, scratch))
            evaluate = ["evaluate", name, "--model-dir", model_dir, "--runner", runner, "--json"]
            evaluated = last_json(run(mrtrain + evaluate, scratch))["metrics"]
            run(mrtrain + ["predict", name, "--model-dir", model_dir, "--output", f"{label}-predictions",
                           "--runner", runner, "--json"], scratch)
            predicted = last_json(run([python, "-c", READ_PREDICTIONS, f"{label}-predictions"], scratch))
            if not trained["converged"]:
                raise StepFailed(f"{label}: did not converge: {trained['stop_reason']}")
            if evaluated["accuracy"] < MIN_ACCURACY[name]:
                raise StepFailed(f"{label}: accuracy {evaluated['accuracy']} < {MIN_ACCURACY[name]}")
            if predicted["rows"] != evaluated["n"] or predicted["right"] != round(evaluated["accuracy"] *
                                                                                 evaluated["n"]):
                raise StepFailed(f"{label}: predictions {predicted} disagree with evaluate's {evaluated}")
            model = model_of(trained)
            if seen and (model, predicted["sha256"]) != next(iter(seen.values())):
                raise StepFailed(f"{label}: model or predictions not bitwise those of {next(iter(seen))}")
            seen[label] = (model, predicted["sha256"])
            if reference:
                check_close(label, model, reference[name])
            log(f"  {label}: {trained['iterations']} iterations, accuracy {evaluated['accuracy']:.4f}, "
                f"{predicted['rows']} predictions ({time.perf_counter() - started:.1f} s)")
    started = time.perf_counter()
    iterations = last_json(run([python, "-c", FORKSERVER], scratch))
    if iterations != 2:
        raise StepFailed(f"forkserver: {iterations} iterations, expected 2")
    log(f"  iris-local from `python -c` under the forkserver start method: 2 iterations "
        f"({time.perf_counter() - started:.1f} s)")


def check_imports(python, scratch):
    """Step 3 of the module docstring; the modules skipped, ``{module: missing top-level name}``."""
    modules = last_json(run([python, "-c", LIST_MODULES], scratch))
    if len(modules) < 50 or "mrtrain._mrjob_compat" not in modules:
        raise StepFailed(f"the installed package lists only {modules}")
    flags = [arg for name in modules for arg in ("-W", f"error::DeprecationWarning:{name}")]
    command = [python, *flags, "-c", IMPORT_MODULES, json.dumps(modules), json.dumps(list(OPTIONAL))]
    return last_json(run(command, scratch))


def check_version(version, python, work, reference):
    """Steps 2-4 for one Python; raises :class:`StepFailed`."""
    started = time.perf_counter()
    source = work / "source"
    if not source.exists():
        source.mkdir()
        for name in SOURCE:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(ROOT / name, source / name)
    venv = work / f"venv-{version}"
    run([python, "-m", "venv", venv], work)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--root-user-action=ignore"]
    run(pip + ["."], source)
    log(f"  venv and pip install . ({time.perf_counter() - started:.1f} s)")
    scratch = work / f"scratch-{version}"
    scratch.mkdir()
    started = time.perf_counter()
    skipped = check_imports(str(venv / "bin" / "python"), scratch)
    notes = "".join(f"; skipped {module} ({name} is not installed: {OPTIONAL[name]})"
                    for module, name in skipped.items())
    log(f"  every module imports with -W error::DeprecationWarning for ours{notes} "
        f"({time.perf_counter() - started:.1f} s)")
    smoke(venv, scratch, reference)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("versions", nargs="*", metavar="VERSION",
                        help=f"versions to run (default: {', '.join(SUPPORTED)}, less this interpreter's)")
    args = parser.parse_args(argv)
    own = "{}.{}".format(*sys.version_info[:2])
    versions = args.versions or [version for version in SUPPORTED if version != own]
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mrtrain-python-matrix-") as temporary:
        work = Path(temporary)
        started = time.perf_counter()
        (work / "reference").mkdir()
        try:
            reference = reference_models(work / "reference")
        except StepFailed as error:
            counts["failed"] += 1
            reference = None
            log(f"reference models FAILED: {error}")
        made = f"Python {own}, inline runner" if reference else "none (this Python cannot import mrtrain)"
        log(f"reference models: {made} ({time.perf_counter() - started:.1f} s)")
        for version in versions:
            python = find_python(version)
            if python is None:
                counts["skipped"] += 1
                log(f"Python {version}: skipped: no python{version} with venv and ensurepip here (looked on "
                    f"PATH, in pyenv's versions and in uv's installed Pythons; install one, e.g. `pyenv "
                    f"install {version}`, to include it)")
                continue
            log(f"Python {version}: {python}")
            started = time.perf_counter()
            try:
                check_version(version, python, work, reference)
            except (StepFailed, subprocess.TimeoutExpired) as error:
                counts["failed"] += 1
                log(f"Python {version}: FAILED after {time.perf_counter() - started:.1f} s: {error}")
            else:
                counts["passed"] += 1
                log(f"Python {version}: passed ({time.perf_counter() - started:.1f} s)")
    log(f"{time.perf_counter() - began:.1f} s in all")
    print(f"python-matrix: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped",
          flush=True)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
