"""mrtrain on every supported Python: mrjob's removed standard-library modules (``mrtrain._mrjob_compat``),
and no module of ours that warns of something about to be removed.

The other Pythons themselves (3.12, 3.13, ... in fresh venvs) are run by ``scripts/python-matrix``, which
``scripts/test`` runs before this suite; here the stand-ins are tested on this Python by hiding the real
modules from every import finder, as if they had been removed.
"""

import ast
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from mrtrain import _mrjob_compat
from mrtrain._mrjob_compat import LooseVersion

ROOT = Path(__file__).resolve().parent.parent
IRIS = ROOT / "data" / "iris.libsvm"
#: Source folder -> the package it is installed as (setup.cfg's ``package_dir``).
FOLDERS = {"mrtrain": "mrtrain", "engine": "mrtrain.engine", "mr_jobs": "mrtrain.mr_jobs",
           "storage": "mrtrain.storage"}

#: Run first in a fresh interpreter: every import finder's answer for ``pipes`` and ``distutils`` is "no
#: such module", as on a Python that removed them (and without setuptools' distutils).
HIDE = """
import sys
HIDDEN = ("pipes", "distutils")


class Hide:
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            return None
        return self.finder.find_spec(name, path, target)

    def invalidate_caches(self):
        getattr(self.finder, "invalidate_caches", lambda: None)()


sys.meta_path[:] = [Hide(finder) for finder in sys.meta_path]
"""

PROBE = HIDE + """
import json
import mrtrain
import mrjob.compat, mrjob.hadoop, mrjob.inline, mrjob.local, mrjob.util
from mrjob.compat import map_version, version_gte

from mrtrain._mrjob_compat import StandInFinder

data, model = sys.argv[1:3]
mrtrain.Trainer("softmax", l2=1e-3, optimizer="newton", runner="inline", checkpoint_dir=model).fit(data)
print(json.dumps({
    "loaders": {name: type(sys.modules[name].__spec__.loader).__name__
                for name in ("pipes", "distutils", "distutils.spawn", "distutils.version")},
    "cmd_line": mrjob.util.cmd_line(["echo", "a b", "it's"]),
    "which_sh": mrjob.util.which("sh"),
    "version_gte": [version_gte("3.4.2", "2"), version_gte("2.10.1", "2.9"), version_gte("0.20.2", "0.23")],
    "map_version": map_version("3.4.2", {"1.0": "old", "2.0": "new", "4.0": "future"}),
    "accuracy": mrtrain.FittedModel.load(model).evaluate(data, runner="inline")["accuracy"],
}))
"""

VERSIONS = ["3.4.2", "3.3.6-amzn-1", "2.10.1", "2.9", "2.7.3", "2.0", "1.0.3", "0.20.2", "0.23", "1.13++",
            "2.2beta29", "3.10a", "161", "8.02", "1996.07.12", "3.2.pl0", "2g6", "11g", "0.960923", "5.5.kw",
            "2.0b1pl0", "3.4j", "1.5.2b2", "1.5.1", "", "3.4.2.0", "3.4.2a"]


def distutils_loose_version():
    """The real ``distutils.version.LooseVersion`` (the standard library's or setuptools'), or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from distutils.version import LooseVersion as real
        except ImportError:
            return None
        if real is LooseVersion:
            return None
        return real


def compare(cls, a, b):
    """``(a < b, a <= b, a == b, a >= b, a > b)`` of ``cls(a)`` and ``cls(b)``, or the exception's type."""
    try:
        x, y = cls(a), cls(b)
        return (x < y, x <= y, x == y, x >= y, x > y, x == b, x < b)
    except TypeError:
        return TypeError


def test_loose_version_parses_and_orders_like_distutils():
    real = distutils_loose_version()
    if real is None:
        pytest.skip("no distutils on this Python to compare with")
    for version in VERSIONS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            expected = real(version)
        ours = LooseVersion(version)
        if version:
            assert ours.version == expected.version, version
            assert (str(ours), repr(ours)) == (str(expected), repr(expected))
    for a in VERSIONS[:-3]:
        for b in VERSIONS[:-3]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                expected = compare(real, a, b)
            assert compare(LooseVersion, a, b) == expected, (a, b)


def test_loose_version_orders_hadoop_versions_numerically():
    assert sorted(["3.4.2", "2.10.1", "2.9.2", "3.10.0", "0.23.1"], key=LooseVersion) == [
        "0.23.1", "2.9.2", "2.10.1", "3.4.2", "3.10.0"]
    assert LooseVersion("2.7.3-amzn-1").version == [2, 7, 3, "-", "amzn", "-", 1]
    assert LooseVersion("3.4.2") == "3.4.2" and LooseVersion("3.4.2") != LooseVersion("3.4.3")
    with pytest.raises(TypeError):
        assert LooseVersion("3.4.2") < 3


def test_install_appends_one_finder_that_serves_only_its_modules():
    def positions():
        return [i for i, f in enumerate(sys.meta_path) if isinstance(f, _mrjob_compat.StandInFinder)]

    before = positions()
    _mrjob_compat.install()
    assert positions() == before and len(before) == 1
    assert before[0] > sys.meta_path.index(importlib.machinery.PathFinder)  # asked only after the file system
    finder = _mrjob_compat.StandInFinder()
    assert finder.find_spec("json") is None and finder.find_spec("pipes.other") is None
    assert finder.find_spec("distutils").submodule_search_locations == []
    assert finder.find_spec("distutils.version").submodule_search_locations is None


@pytest.mark.skipif(importlib.util.find_spec("pipes") is None, reason="this Python has no pipes module")
def test_a_python_that_has_the_modules_keeps_its_own():
    code = ("import mrtrain, mrjob.util, mrjob.compat, sys\n"
            "loader = lambda name: type(sys.modules[name].__spec__.loader).__name__\n"
            "print(hasattr(sys.modules['pipes'], 'Template'), loader('pipes'), loader('distutils.version'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    has_template, pipes_loader, version_loader = result.stdout.split()
    assert has_template == "True" and "StandIn" not in pipes_loader and "StandIn" not in version_loader


def test_mrjob_imports_and_trains_where_pipes_and_distutils_are_gone(tmp_path):
    data, model = tmp_path / "iris", tmp_path / "model"
    subprocess.run([sys.executable, "-m", "mrtrain", "-q", "ingest", str(IRIS), str(data),
                    "--partitions", "2"], check=True, cwd=tmp_path)
    result = subprocess.run([sys.executable, "-c", PROBE, str(data), str(model)], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["loaders"] == dict.fromkeys(("pipes", "distutils", "distutils.spawn", "distutils.version"),
                                             "StandInFinder")
    assert probe["cmd_line"] == "echo 'a b' 'it'\"'\"'s'"
    assert probe["which_sh"] and Path(probe["which_sh"]).name == "sh"
    assert probe["version_gte"] == [True, True, False]
    assert probe["map_version"] == "new"
    assert probe["accuracy"] >= 0.98


def our_modules():
    """Every module of the package by its installed name, from the source tree; not ``mrtrain.__main__``
    (importing it runs the command)."""
    names = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            names.append(".".join([package, *(part for part in parts if part != "__init__")]))
    return [name for name in names if name != "mrtrain.__main__"]


def import_with_deprecations_as_errors(modules, cwd=None, pythonpath=None):
    """Import ``modules`` in a fresh interpreter run with ``-W error::DeprecationWarning:M`` for each of
    them (so a DeprecationWarning that one of them causes is an error, and one from other code is not).
    Returns the CompletedProcess."""
    flags = [arg for name in modules for arg in ("-W", f"error::DeprecationWarning:{name}")]
    code = f"import importlib\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
    env = {**os.environ, "PYTHONPATH": str(pythonpath)} if pythonpath else None
    return subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True, cwd=cwd,
                          env=env)


def test_every_module_of_ours_imports_without_a_deprecation_warning_of_its_own():
    modules = our_modules()
    assert {"mrtrain.cli", "mrtrain._mrjob_compat", "mrtrain.engine.optimizers.lbfgs",
            "mrtrain.mr_jobs.gradient", "mrtrain.storage.dataset", "mrtrain.estimators"} <= set(modules)
    result = import_with_deprecations_as_errors(modules)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_import_check_fails_a_module_that_uses_something_deprecated(tmp_path):
    package = tmp_path / "oldpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "removed_soon.py").write_text(
        "import warnings\n\n\ndef old():\n"
        "    warnings.warn('old() is deprecated', DeprecationWarning, stacklevel=2)\n")
    (package / "caller.py").write_text("from oldpkg.removed_soon import old\n\nold()\n")
    failed = import_with_deprecations_as_errors(["oldpkg.removed_soon", "oldpkg.caller"], cwd=tmp_path,
                                                pythonpath=tmp_path)
    assert failed.returncode == 1 and "DeprecationWarning: old() is deprecated" in failed.stderr
    # The same warning caused by a module not in the list is not an error.
    passed = import_with_deprecations_as_errors(["oldpkg.removed_soon"], cwd=tmp_path, pythonpath=tmp_path)
    assert passed.returncode == 0, passed.stderr


def test_every_job_script_imports_mrtrain_before_mrjob():
    """A task runs its job's file as a script (``python predict.py``): its first module-level import of
    mrjob must come after one of ``mrtrain``, whose ``__init__`` installs the stand-ins."""
    scripts = [path for path in sorted((ROOT / "mr_jobs").glob("*.py")) if "__main__" in path.read_text()]
    assert {"gradient.py", "predict.py", "allreduce_job.py"} <= {path.name for path in scripts}
    for path in scripts:
        tree = ast.parse(path.read_text())
        names = [(node.lineno, alias.name if isinstance(node, ast.Import) else node.module)
                 for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
                 for alias in node.names]
        first = {top: min((line for line, name in names if name.split(".")[0] == top), default=None)
                 for top in ("mrtrain", "mrjob")}
        assert first["mrtrain"] is not None, path.name
        assert first["mrjob"] is None or first["mrtrain"] < first["mrjob"], path.name


def test_the_local_runner_has_the_fork_server_preload_mrtrain():
    code = ("import multiprocessing, multiprocessing.forkserver as fs\n"
            "from mrtrain.launcher import preload_mrtrain_in_forkserver\n"
            "multiprocessing.set_forkserver_preload(['__main__', 'mine'])\n"
            "preload_mrtrain_in_forkserver(); preload_mrtrain_in_forkserver()\n"
            "print(fs._forkserver._preload_modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['__main__', 'mine', 'mrtrain']"


def test_the_command_loads_no_setuptools_distutils_and_no_ingest_modules_for_training():
    """The ``mrtrain`` command's imports (those of every command: training's too) take mrjob's distutils
    from the standard library (3.11) or the stand-in (3.12+), not setuptools' copy with its
    ``pkg_resources``, and leave ``ingest``'s pyarrow.compute for ``mrtrain ingest``; ``import mrtrain``
    (the Python API) leaves setuptools' finder where it was."""
    code = textwrap.dedent("""
        import json, sys
        import mrtrain.cli, mrtrain.trainer, mrtrain.fitted, distutils.spawn
        hack = sys.modules.get("_distutils_hack")
        print(json.dumps({"loaded": sorted({"pkg_resources", "setuptools", "pyarrow.compute",
                                            "mrtrain.storage.ingest"} & set(sys.modules)),
                          "distutils": str(getattr(distutils, "__file__", None)),
                          "finder": hack is not None and hack.DISTUTILS_FINDER in sys.meta_path}))
    """)
    env = {name: value for name, value in os.environ.items() if name != "SETUPTOOLS_USE_DISTUTILS"}
    found = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                      text=True, env=env).stdout)
    assert found["loaded"] == []
    assert "setuptools" not in found["distutils"]
    assert found["finder"] is False
    api = "import sys, mrtrain.trainer; h = sys.modules.get('_distutils_hack'); " \
          "print(h is None or h.DISTUTILS_FINDER in sys.meta_path)"
    assert subprocess.run([sys.executable, "-c", api], check=True, capture_output=True, text=True,
                          env=env).stdout.strip() == "True"
