"""Stand-ins for the standard-library modules that mrjob 0.7.4 imports and newer Pythons removed.

mrjob 0.7.4 (its last release) imports ``pipes`` (removed in Python 3.13), ``distutils.spawn`` and
``distutils.version`` (``distutils`` was removed in Python 3.12). :func:`install` appends a finder to the
*end* of ``sys.meta_path`` that serves these modules only when no other finder has them: where the real
module exists (Python 3.11's standard library, or setuptools' ``distutils`` where setuptools is installed
and its ``distutils-precedence.pth`` offers it), the real one loads and the stand-in is never made. Each
stand-in holds only what mrjob uses:

- ``pipes.quote``: :func:`shlex.quote`, which ``pipes.quote`` always was;
- ``distutils.spawn.find_executable``: :func:`shutil.which` (mrjob calls it only where ``shutil.which``
  is missing, which no Python 3 is; unlike distutils' it returns only executable files);
- ``distutils.version.LooseVersion``: :class:`LooseVersion`, distutils' parsing and ordering (mrjob
  compares Hadoop versions with it), without its deprecation warning.

So other code that imports ``pipes`` or ``distutils`` on a Python that lacks them finds only these names
(``pipes.Template`` or ``distutils.core`` stay missing, as without mrtrain).

``mrtrain/__init__.py`` calls :func:`install`. Every process that imports mrjob for mrtrain imports a
``mrtrain`` module first: the ``mrtrain`` command and ``python -m mrtrain``, the Python API and the
estimators, the inline runner (in the driver), and every task of the local and hadoop runners, whose job
scripts (``mrtrain/mr_jobs/*.py``) import ``mrtrain.mr_jobs...`` before mrjob; Hadoop tasks get this file
in the package zip (:func:`mrtrain.launcher.package_zip`). Code of your own that imports mrjob before any
``mrtrain`` module on Python 3.12+ must ``import mrtrain`` first.

This module imports only the standard library (Hadoop tasks import it).
"""

import importlib.machinery
import re
import shlex
import shutil
import sys


class LooseVersion:
    """distutils' ``LooseVersion``: a version string split into numbers (compared as numbers) and runs of
    lowercase letters (compared as strings), dots dropped; ``"3.4.2"`` -> ``[3, 4, 2]``,
    ``"2.7.3-amzn-1"`` -> ``[2, 7, 3, '-', 'amzn', '-', 1]``. Compares with another ``LooseVersion`` or a
    string; like distutils' (and Python's list ordering), comparing a number with a string where two
    versions first differ raises :class:`TypeError`.

    Parameters
    ----------
    vstring : str, optional
        The version string; without it, call :meth:`parse` before comparing.
    """

    component_re = re.compile(r"(\d+ | [a-z]+ | \.)", re.VERBOSE)

    def __init__(self, vstring=None):
        if vstring:
            self.parse(vstring)

    def parse(self, vstring):
        """Set ``vstring`` and ``version`` (the list of components) from ``vstring``."""
        self.vstring = vstring
        components = [part for part in self.component_re.split(vstring) if part and part != "."]
        for i, part in enumerate(components):
            try:
                components[i] = int(part)
            except ValueError:
                pass
        self.version = components

    def __str__(self):
        return self.vstring

    def __repr__(self):
        return f"LooseVersion ('{self}')"

    def _cmp(self, other):
        if isinstance(other, str):
            other = LooseVersion(other)
        elif not isinstance(other, LooseVersion):
            return NotImplemented
        return (self.version > other.version) - (self.version < other.version)

    def __eq__(self, other):
        c = self._cmp(other)
        return c if c is NotImplemented else c == 0

    def __lt__(self, other):
        c = self._cmp(other)
        return c if c is NotImplemented else c < 0

    def __le__(self, other):
        c = self._cmp(other)
        return c if c is NotImplemented else c <= 0

    def __gt__(self, other):
        c = self._cmp(other)
        return c if c is NotImplemented else c > 0

    def __ge__(self, other):
        c = self._cmp(other)
        return c if c is NotImplemented else c >= 0


def find_executable(executable, path=None):
    """``distutils.spawn.find_executable``: the path of ``executable`` on ``path`` (default ``$PATH``), or
    None; :func:`shutil.which`, so only an executable file counts."""
    return shutil.which(executable, path=path)


#: What each stand-in module holds; ``distutils`` is a package (its submodules are the other two).
STAND_INS = {
    "pipes": {"quote": shlex.quote},
    "distutils": {},
    "distutils.spawn": {"find_executable": find_executable},
    "distutils.version": {"LooseVersion": LooseVersion},
}
_PACKAGES = {"distutils"}


class StandInFinder:
    """The meta path finder (and loader) of the :data:`STAND_INS` modules; last on ``sys.meta_path``, so
    it is asked only for modules no other finder has."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in STAND_INS:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname in _PACKAGES)

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module):
        module.__doc__ = f"mrtrain's stand-in for the removed standard-library module {module.__name__}."
        module.__dict__.update(STAND_INS[module.__name__])


def install():
    """Append a :class:`StandInFinder` to ``sys.meta_path`` unless one is there. Idempotent; imports
    nothing: a stand-in is made only when something imports a module no other finder has."""
    if not any(isinstance(finder, StandInFinder) for finder in sys.meta_path):
        sys.meta_path.append(StandInFinder())


def without_setuptools_distutils():
    """For the ``mrtrain`` command's own process: mrjob's ``distutils`` from the standard library (Python
    3.11) or :class:`StandInFinder` (3.12+) instead of setuptools' copy, which setuptools'
    ``distutils-precedence.pth`` offers first and whose import loads ``pkg_resources`` (about 0.1 s of CPU
    per command, for two names mrjob hardly uses). Removes setuptools' finder from ``sys.meta_path`` if
    ``distutils`` is not imported yet; nothing otherwise. The tasks get the same with
    ``SETUPTOOLS_USE_DISTUTILS=stdlib``."""
    if "distutils" in sys.modules:
        return
    shim = sys.modules.get("_distutils_hack")
    finder = getattr(shim, "DISTUTILS_FINDER", None)
    if finder is not None and finder in sys.meta_path:
        sys.meta_path.remove(finder)
