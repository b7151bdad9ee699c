"""One installed name, ``mrtrain``: a non-editable install into a fresh virtual environment puts nothing
else on the import path, exports the public API, trains on the inline and local runners, and the zip
shipped to Hadoop tasks holds the same package under the same names, less the driver modules."""

import io
import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import mrtrain
from mrtrain.launcher import package_zip
from mrtrain.task_zip import task_zip

ROOT = Path(__file__).resolve().parent.parent
GENERIC_NAMES = ("engine", "storage", "scripts", "mr_jobs")

PROBE = """
import importlib.util, json, sys
import mrtrain
result = {"file": mrtrain.__file__, "version": mrtrain.__version__, "all": sorted(mrtrain.__all__),
          "generic": {name: importlib.util.find_spec(name) is not None for name in GENERIC_NAMES}}
fitted = mrtrain.Trainer("softmax", l2=0.01, optimizer="newton", runner=sys.argv[2]).fit(sys.argv[1])
result["iterations"] = fitted.n_iter_
result["accuracy"] = fitted.evaluate(sys.argv[1], runner=sys.argv[2])["accuracy"]
print(json.dumps(result))
""".replace("GENERIC_NAMES", repr(GENERIC_NAMES))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv (dependencies from this interpreter's site-packages) with ``pip install .`` of mrtrain.

    Yields the venv's python, its site-packages, the names the install added there and the venv.
    """
    base = tmp_path_factory.mktemp("venv")
    env_dir = base / "env"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    before = set(os.listdir(site))
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", str(ROOT)],
        check=True, capture_output=True, text=True, cwd=base,
    )
    return python, site, sorted(set(os.listdir(site)) - before), env_dir


def test_mrtrain_is_the_only_top_level_name_installed(installed):
    _, site, added, _ = installed
    assert [name for name in added if not name.endswith(".dist-info")] == ["mrtrain"], added
    package = site / "mrtrain"
    for name in ("engine", "mr_jobs", "storage"):
        assert (package / name / "__init__.py").is_file()
    assert (package / "cli.py").is_file() and not (package / "scripts").exists()


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_installed_package_trains_and_shadows_nothing(installed, tmp_path, runner):
    python, site, _, _ = installed
    data = tmp_path / "iris"
    subprocess.run([python, "-m", "mrtrain", "-q", "ingest", str(ROOT / "data" / "iris.libsvm"), str(data),
                    "--partitions", "3"], check=True, cwd=tmp_path)
    output = subprocess.run([python, "-c", PROBE, str(data), runner], check=True, capture_output=True,
                            text=True, cwd=tmp_path).stdout
    result = json.loads(output.strip().splitlines()[-1])
    assert Path(result["file"]).is_relative_to(site)
    assert result["version"] == mrtrain.__version__
    assert result["all"] == ["BernoulliNB", "Dataset", "FittedModel", "GaussianNB",
                             "GradientBoostingClassifier", "GradientBoostingRegressor", "KMeans",
                             "LinearRegression", "LinearSVC",
                             "LogisticRegression", "MLPClassifier", "MultinomialNB", "PoissonRegressor",
                             "RandomForestClassifier", "RandomForestRegressor", "Trainer", "__version__",
                             "ingest"]
    assert result["generic"] == dict.fromkeys(GENERIC_NAMES, False)
    assert result["accuracy"] >= 0.95


def test_console_script_is_installed(installed):
    *_, env_dir = installed
    script = env_dir / "bin" / "mrtrain"
    assert script.is_file()
    assert "from mrtrain.cli import main" in script.read_text()


def test_importing_mrtrain_does_not_import_the_driver():
    """A map task imports ``mrtrain.mr_jobs...`` and so ``mrtrain``: that must not load mrjob's runners."""
    code = ("import json, sys, mrtrain\n"
            "loaded = [m for m in sys.modules if m.startswith(('mrjob', 'pyarrow', 'mrtrain.'))]\n"
            "print(json.dumps(sorted(loaded)))")
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert json.loads(output) == ["mrtrain._mrjob_compat"]


def test_hadoop_task_zip_holds_the_package_under_its_installed_names():
    names = zipfile.ZipFile(io.BytesIO(package_zip())).namelist()
    assert [name for name in names if name.count("/") == 1] == [  # no driver module
        "mrtrain/__init__.py", "mrtrain/_mrjob_compat.py"]
    assert {name.split("/")[1] for name in names if name.count("/") > 1} == {"engine", "mr_jobs", "storage"}
    assert "mrtrain/mr_jobs/gradient.py" in names and "mrtrain/engine/optimizers/lbfgs.py" in names
    assert all(name.startswith("mrtrain/") for name in names)
    assert package_zip() == package_zip()  # reproducible


TASK_IMPORT = """
import json, sys
import mrtrain.mr_jobs.gradient, mrjob.job
print(json.dumps([mrtrain.mr_jobs.gradient.__file__, mrjob.job.__file__, sys.dont_write_bytecode]))
"""


def _import_from(archive, tmp_path):
    path = tmp_path / "mrtrain-code.zip"
    path.write_bytes(archive)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(path), "SETUPTOOLS_USE_DISTUTILS": "stdlib"}
    # PYTHONPATH comes before site-packages, as in a Hadoop task: the zip's mrtrain and mrjob win
    output = subprocess.run([sys.executable, "-c", TASK_IMPORT], check=True, capture_output=True,
                            text=True, env=env, cwd=tmp_path).stdout
    return json.loads(output)


def test_hadoop_task_zip_holds_mrjob_and_bytecode_the_tasks_load(tmp_path):
    """Tasks import mrtrain and mrjob from the launcher's zip without compiling: every ``.py`` has its
    ``.pyc`` beside it, and zipimport loads that (``__file__`` names it); reproducible byte for byte."""
    archive = task_zip(with_mrjob=True, bytecode=True)
    names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
    sources = [name for name in names if name.endswith(".py")]
    assert "mrjob/job.py" in sources and "mrtrain/mr_jobs/gradient.py" in sources
    assert sorted(names) == sorted(sources + [f"{name}c" for name in sources])
    assert {name.split("/")[0] for name in names} == {"mrtrain", "mrjob"}
    assert archive == task_zip(with_mrjob=True, bytecode=True)
    gradient, job, _ = _import_from(archive, tmp_path)
    assert gradient == str(tmp_path / "mrtrain-code.zip" / "mrtrain/mr_jobs/gradient.pyc")
    assert job == str(tmp_path / "mrtrain-code.zip" / "mrjob/job.pyc")


def test_a_task_python_of_another_version_compiles_the_sources_beside_the_bytecode(tmp_path):
    """A ``.pyc`` with another Python's magic number is passed over for its ``.py``: the zip serves tasks
    whatever Python the nodes run."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(task_zip(with_mrjob=True, bytecode=True))) as source, \
            zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, b"\x00\x00\r\n" + data[4:] if info.filename.endswith(".pyc") else data)
    gradient, job, _ = _import_from(buffer.getvalue(), tmp_path)
    assert gradient.endswith("mrtrain-code.zip/mrtrain/mr_jobs/gradient.py")
    assert job.endswith("mrtrain-code.zip/mrjob/job.py")
