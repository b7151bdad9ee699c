"""mrtrain: train machine-learning models as iterative MapReduce jobs (mrjob) on Hadoop.

The public API::

    import mrtrain

    mrtrain.ingest("data/iris.libsvm", "iris")                 # -> a Parquet dataset directory
    fitted = mrtrain.Trainer("softmax", l2=1e-3).fit("iris")   # one MapReduce job per data pass
    fitted.evaluate("iris")                                    # metrics, by the evaluate job

``ingest``, :class:`Dataset`, :class:`Trainer`, :class:`FittedModel`, ``__version__``, and the
scikit-learn estimators :class:`LogisticRegression`, :class:`LinearRegression`, :class:`PoissonRegressor`,
:class:`LinearSVC`, :class:`MultinomialNB`, :class:`BernoulliNB`, :class:`GaussianNB`, :class:`KMeans` and
:class:`MLPClassifier`, and the tree ensembles' :class:`GradientBoostingClassifier`,
:class:`GradientBoostingRegressor`, :class:`RandomForestClassifier` and :class:`RandomForestRegressor`
(these need scikit-learn: ``pip install mrtrain[sklearn]``). Everything lives
under this one top-level name: ``mrtrain.engine`` (model math, optimizers, the optimizer loop),
``mrtrain.mr_jobs`` (the mrjob jobs), ``mrtrain.storage`` (filesystems, datasets, checkpoints), and beside
this file the driver application that launches the jobs: ``mrtrain.launcher`` (runs a job on any mrjob
runner), ``mrtrain.trainer`` and ``mrtrain.fitted`` (training; evaluate and predict), the modules they
use, and ``mrtrain.cli`` (the ``mrtrain`` command, also ``python -m mrtrain``).

The exports are imported on first use: a map task imports ``mrtrain.mr_jobs...`` and so this module, and
must not pay for the driver's imports (mrjob's runners, pyarrow) on every pass. Hadoop tasks get this file,
``mrtrain._mrjob_compat`` and the three subpackages, not the driver modules beside them
(:func:`mrtrain.launcher.package_zip`).

Importing this module installs :mod:`mrtrain._mrjob_compat`'s stand-ins for the standard-library modules
that mrjob imports and Python 3.12 and 3.13 removed, before any mrtrain module imports mrjob.
"""

import importlib

from mrtrain import _mrjob_compat

_mrjob_compat.install()

__version__ = "0.2.0"

_EXPORTS = {
    "ingest": "mrtrain.storage.ingest",
    "Dataset": "mrtrain.storage.dataset",
    "Trainer": "mrtrain.trainer",
    "FittedModel": "mrtrain.fitted",
    "LogisticRegression": "mrtrain.estimators",
    "LinearRegression": "mrtrain.estimators",
    "PoissonRegressor": "mrtrain.estimators",
    "LinearSVC": "mrtrain.estimators",
    "MultinomialNB": "mrtrain.estimators",
    "BernoulliNB": "mrtrain.estimators",
    "GaussianNB": "mrtrain.estimators",
    "KMeans": "mrtrain.estimators",
    "MLPClassifier": "mrtrain.mlp_estimator",
    "GradientBoostingClassifier": "mrtrain.tree_estimators",
    "GradientBoostingRegressor": "mrtrain.tree_estimators",
    "RandomForestClassifier": "mrtrain.tree_estimators",
    "RandomForestRegressor": "mrtrain.tree_estimators",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mrtrain' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
