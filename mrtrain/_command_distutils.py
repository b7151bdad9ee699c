"""Imported first by the ``mrtrain`` command (:mod:`mrtrain.cli`): mrjob's ``distutils`` in the command's
process is the standard library's (Python 3.11) or :mod:`mrtrain._mrjob_compat`'s stand-in (3.12+), not
setuptools' copy, whose import loads ``pkg_resources``
(:func:`mrtrain._mrjob_compat.without_setuptools_distutils`). Imported for that effect alone; the Python
API (``import mrtrain``) is left as it is."""

from mrtrain._mrjob_compat import without_setuptools_distutils

without_setuptools_distutils()
