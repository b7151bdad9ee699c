"""The import layers, read from the source: every import statement of every module, function-level ones too.

- ``engine/`` (model math, optimizers, the optimizer loop) imports ``mrtrain.engine`` and, for the exception
  types every layer raises, ``mrtrain.storage.errors`` (which imports nothing); besides the standard
  library only numpy and scipy: no mrjob, no I/O.
- ``storage/`` (filesystems, datasets, checkpoints) imports only ``mrtrain.storage``.
- ``mr_jobs/`` (the jobs the tasks run) imports ``mrtrain.engine``, ``mrtrain.mr_jobs`` and
  ``mrtrain.storage``.

So nothing those three hold imports the driver modules of ``mrtrain/`` (the launcher, the trainer, the
CLI, ...), which are not shipped to Hadoop tasks; and ``mrtrain/__init__.py``, which tasks import, imports
only the standard library and ``mrtrain._mrjob_compat`` (shipped with it), which imports only the standard
library.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Source folder -> the package it is installed as (setup.cfg's ``package_dir``).
PACKAGES = {"engine": "mrtrain.engine", "mr_jobs": "mrtrain.mr_jobs", "storage": "mrtrain.storage"}
#: The names of ``mrtrain`` each folder's modules may import.
ALLOWED = {
    "engine": ("mrtrain.engine", "mrtrain.storage.errors"),
    "mr_jobs": ("mrtrain.engine", "mrtrain.mr_jobs", "mrtrain.storage"),
    "storage": ("mrtrain.storage",),
}
#: The libraries besides the standard library that the engine's modules may import.
ENGINE_LIBRARIES = {"numpy", "scipy"}
#: The modules beside ``mrtrain/__init__.py`` that it imports and tasks get with it.
TOP_TASK_MODULES = ("mrtrain._mrjob_compat",)


def module_name(path, folder):
    """The installed name of the module in ``path`` (a file below ``folder``)."""
    parts = path.relative_to(folder).with_suffix("").parts
    return ".".join([PACKAGES[folder.name], *(part for part in parts if part != "__init__")])


def imports(path, module):
    """``(line, name)`` of everything ``path`` imports, as absolute dotted names: ``import a.b`` gives
    ``a.b``, ``from a import b`` gives ``a.b`` (``b`` a module or a name in ``a``), relative imports are
    resolved against ``module``'s package."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def within(name, prefixes):
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def violations(folder):
    """``file:line: name`` for each import of ``mrtrain`` that the folder's modules may not make."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for line, name in imports(path, module_name(path, folder)):
            if within(name, ("mrtrain",)) and not within(name, ALLOWED[folder.name]):
                found.append(f"{path.relative_to(folder.parent)}:{line}: {name}")
    return found


@pytest.mark.parametrize("folder", sorted(PACKAGES))
def test_each_folder_imports_only_its_own_layer_and_those_below(folder):
    assert list((ROOT / folder).rglob("*.py"))
    assert violations(ROOT / folder) == []


def test_the_checker_finds_a_launcher_import_at_module_and_function_level(tmp_path):
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "math.py").write_text("import numpy as np\n\nfrom mrtrain.launcher import JobLauncher\n\n\n"
                                    "def f():\n    from mrtrain.mr_jobs import gradient\n"
                                    "    from . import models\n    from .. import trainer\n")
    assert violations(engine) == ["engine/math.py:3: mrtrain.launcher.JobLauncher",
                                  "engine/math.py:7: mrtrain.mr_jobs.gradient",
                                  "engine/math.py:9: mrtrain.trainer"]


def test_the_engine_imports_no_library_but_numpy_and_scipy():
    found = set()
    for path in (ROOT / "engine").rglob("*.py"):
        found |= {name.split(".")[0] for _, name in imports(path, module_name(path, ROOT / "engine"))}
    assert found - set(sys.stdlib_module_names) - {"mrtrain"} <= ENGINE_LIBRARIES


def test_the_package_top_imports_only_the_standard_library_and_its_compat_module():
    top = imports(ROOT / "mrtrain" / "__init__.py", "mrtrain")
    ours = {name for _, name in top if within(name, ("mrtrain",))}
    assert ours == set(TOP_TASK_MODULES)
    assert {name.split(".")[0] for _, name in top if name not in ours} <= set(sys.stdlib_module_names)
    for module in TOP_TASK_MODULES:
        path = ROOT / "mrtrain" / f"{module.rpartition('.')[2]}.py"
        assert {name.split(".")[0] for _, name in imports(path, module)} <= set(sys.stdlib_module_names)


def test_importing_every_job_loads_no_driver_module():
    jobs = sorted(module_name(path, ROOT / "mr_jobs") for path in (ROOT / "mr_jobs").glob("*.py"))
    code = (f"import importlib, json, sys\nfor name in {jobs!r}:\n    importlib.import_module(name)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('mrtrain'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert "mrtrain.mr_jobs.gradient" in loaded
    assert [name for name in loaded
            if name not in ("mrtrain", *TOP_TASK_MODULES) and not within(name, PACKAGES.values())] == []
