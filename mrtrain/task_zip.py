"""The zip Hadoop tasks import mrtrain (and mrjob) from, built once per training.

Cluster nodes do not have mrtrain installed: a Hadoop task puts a zip on its ``PYTHONPATH`` (mrjob's
``py_files``) and imports from it. Python's ``zipimport`` never writes bytecode, so a zip of ``.py`` files
is compiled again by every task of every pass: measured on the 2-core benchmark machine (Python 3.11,
load 5), a task's ``import mrtrain.mr_jobs.gradient`` took 1.1–1.3 s from source zips and 0.55–0.6 s from
zips that hold the bytecode too. :func:`task_zip` therefore stores next to every ``name.py`` its
``name.pyc``, compiled by the driver's Python as an *unchecked hash-based* pyc (PEP 552: no timestamp, so
the archive stays byte-for-byte reproducible, and ``zipimport`` loads it without re-reading the source). A
task whose Python is another version finds a bad magic number in the ``.pyc`` and compiles the ``.py``
beside it, as before: correct on every Python, fast where the nodes run the driver's.

With ``with_mrjob`` the zip also holds the ``mrjob`` package the driver runs, so the launcher passes
``--no-bootstrap-mrjob``: mrjob no longer zips and uploads its own library (without bytecode) for every job.
"""

import importlib
import io
import zipfile
from importlib._bootstrap_external import _code_to_hash_pyc
from importlib.util import source_hash
from pathlib import Path

#: The subpackages of ``mrtrain`` that tasks import (the driver modules of ``mrtrain/`` stay on the driver).
TASK_PACKAGES = ("engine", "mr_jobs", "storage")
#: The modules beside ``mrtrain/__init__.py`` that it imports, so tasks do too.
TASK_MODULES = ("_mrjob_compat.py",)
#: The fixed timestamp of every entry (zip's earliest), for reproducible archives.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def mrtrain_files():
    """``(source path, name in the zip)`` of the ``mrtrain`` modules tasks import.

    ``mrtrain/__init__.py``, the :data:`TASK_MODULES` beside it and the :data:`TASK_PACKAGES`, under the
    names they have when installed (``mrtrain/engine/...``), wherever they live in a source checkout; not
    the driver modules beside ``__init__.py`` (the launcher, the trainer, the CLI), which no task imports.
    """
    import mrtrain

    top = Path(mrtrain.__file__).parent
    files = [(top / name, f"mrtrain/{name}") for name in ("__init__.py", *TASK_MODULES)]
    for name in TASK_PACKAGES:
        root = Path(importlib.import_module(f"mrtrain.{name}").__file__).parent
        files += [(source, f"mrtrain/{name}/{source.relative_to(root).as_posix()}")
                  for source in root.rglob("*.py")]
    return files


def mrjob_files():
    """``(source path, name in the zip)`` of the ``.py`` files of the ``mrjob`` package the driver runs."""
    import mrjob

    root = Path(mrjob.__file__).parent
    return [(source, f"mrjob/{source.relative_to(root).as_posix()}") for source in root.rglob("*.py")]


def compiled(source, name):
    """The unchecked hash-based ``.pyc`` of ``source`` (bytes of the file stored as ``name``)."""
    code = compile(source, name, "exec", dont_inherit=True)
    return bytes(_code_to_hash_pyc(code, source_hash(source), checked=False))


def task_zip(*, with_mrjob=False, bytecode=False):
    """The zip of the modules Hadoop tasks import, as bytes (byte-for-byte reproducible for one Python).

    Parameters
    ----------
    with_mrjob : bool
        Also hold the driver's ``mrjob`` package (:func:`mrjob_files`).
    bytecode : bool
        Store beside every ``.py`` its unchecked hash-based ``.pyc`` for this Python (:func:`compiled`),
        named with a trailing ``c`` as ``zipimport`` looks for it. Code objects name their file
        ``<zip name>/<path>`` as seen from the task's working directory (``mrtrain-code.zip/...``).

    Returns
    -------
    bytes
    """
    files = mrtrain_files() + (mrjob_files() if with_mrjob else [])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for source, name in sorted(files, key=lambda pair: pair[1]):
            data = source.read_bytes()
            entries = [(name, data)]
            if bytecode:
                entries.append((f"{name}c", compiled(data, f"mrtrain-code.zip/{name}")))
            for entry, payload in entries:
                info = zipfile.ZipInfo(entry, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, payload)
    return buffer.getvalue()
