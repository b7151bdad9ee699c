"""The naive Bayes family (multinomial, Bernoulli, Gaussian): fitted in one statistics pass.

One map-only pass of class-wise statistics (:mod:`mrtrain.mr_jobs.naive_bayes_job`), merged in partition
order, gives the parameters (:mod:`mrtrain.engine.naive_bayes`), saved as checkpoint 1; a rerun with the
same data and settings returns that checkpoint's model without a pass.
"""

import logging

import numpy as np

from mrtrain.cli_types import argument
from mrtrain.engine.memory import check_training_size, statistics_training_size
from mrtrain.engine.models import NAIVE_BAYES_MODELS
from mrtrain.engine.naive_bayes import (
    check_smoothing,
    merge_statistics,
    naive_bayes_parameters,
    statistics_length,
)
from mrtrain.engine.overflow import check_finite
from mrtrain.engine.params import check_number
from mrtrain.engine.registry import make_model
from mrtrain.families.checks import check_labels
from mrtrain.families.family import Config, Family
from mrtrain.families.options import MODEL
from mrtrain.fitted import FittedModel
from mrtrain.mr_jobs.naive_bayes_job import MRNaiveBayes
from mrtrain.names import dataset_names
from mrtrain.storage.errors import DataError
from mrtrain.training.checkpoint_schema import NAIVE_BAYES_PARAMS, training_meta
from mrtrain.training.partitions import partitions_named

log = logging.getLogger(__name__)

#: Settings that must match for a naive Bayes checkpoint to be returned.
NAIVE_BAYES_RESUME_KEYS = ("model", "optimizer", "l2", "l1", "standardize", "precondition", "fit_intercept",
                           "n_features", "classes", "data_checksum", "layers", "activation", "seed",
                           "smoothing")
#: What the one-pass fit of a naive Bayes model leaves at its default: (parameter, default, why).
NAIVE_BAYES_FIXED = (
    ("optimizer", None, "no optimizer"), ("l2", 0.0, "no penalty"), ("l1", 0.0, "no penalty"),
    ("standardize", False, "no penalty to standardize for"), ("fit_intercept", True, "class log priors"),
    ("warm_start", False, "no iterations to start from"),
    ("init", "zeros", "no optimizer to start"),
    ("max_iter", 100, "no iterations"), ("tol", 1e-8, "no stopping rule"), ("gtol", 1e-6, "no gradient"),
    ("precondition", True, "no optimizer"),
)


class NaiveBayesFamily(Family):
    """Multinomial, Bernoulli and Gaussian naive Bayes: one statistics pass (module docstring)."""

    models = NAIVE_BAYES_MODELS
    title = "naive Bayes"
    parameters = {"smoothing": None,
                  # Fixed at their defaults (NAIVE_BAYES_FIXED): no loop, no optimizer.
                  "max_iter": 100, "tol": 1e-8, "gtol": 1e-6, "precondition": True}
    allreduce_refused = "naive Bayes is fitted in one pass"
    report_style = "statistics"
    cli_refused = (("optimizer", "l1", "l2", "reg", "elastic_net"),
                   "is fitted in one pass and has no optimizer or penalty")

    def config(self, model, values):
        for name, default, reason in NAIVE_BAYES_FIXED:
            value = values[name]
            if value != default:
                raise ValueError(
                    f"The {name!r} parameter does not apply to model {model!r} (naive Bayes is fitted in one "
                    f"pass: {reason}); leave it at {default!r}. Got {value!r} instead."
                )
        smoothing = check_smoothing(model, values["smoothing"])
        return Config(model, **{**{name: values[name] for name in self.parameters}, "smoothing": smoothing})

    def add_options(self, groups):
        groups.add(MODEL, "--smoothing",
                   type=argument(check_number, "smoothing", float, minimum=0, strictly=True), metavar="A",
                   help="naive Bayes smoothing > 0: alpha of multinomial-nb and bernoulli-nb (default 1.0), "
                        "var_smoothing of gaussian-nb (default 1e-9), as in scikit-learn")

    def fit(self, run, config):
        """Fit in one map-only pass and save it as checkpoint 1 (a rerun with the same data and settings
        returns that checkpoint's model without a pass)."""
        dataset = run.dataset
        classes = check_labels(dataset, config.model, classifier=True)
        model = make_model(config.model, dataset.n_features, classes=classes)
        if model.dense_only and dataset.layout != "dense":
            raise ValueError(f"The 'model' parameter 'gaussian-nb' needs a dense dataset (a sparse row's "
                             f"implicit zeros would count as values). Got the {dataset.layout!r} dataset "
                             f"{dataset.uri} instead; use 'multinomial-nb' or 'bernoulli-nb'.")
        check_training_size(statistics_training_size("model", config.model, model.n_params,
                                                     statistics_length(model), len(dataset.partitions)))
        settings = {
            "model": config.model, "optimizer": None, "l2": 0.0, "l1": 0.0, "standardize": False,
            "smoothing": config.smoothing, "fit_intercept": True, "n_features": dataset.n_features,
            "classes": model.classes, "data": dataset.uri, "data_checksum": dataset.checksum,
            "encoding": dataset.encoding_digest, **dataset_names(dataset),
        }
        with run.open(model.spec(), reducers=0):
            checkpoint, _ = run.resume(settings, NAIVE_BAYES_RESUME_KEYS)
            if checkpoint is not None:
                log.info("%s: the model is fitted already", checkpoint.uri)
                return FittedModel.load(run.directory)
            records = run.launcher.run(MRNaiveBayes, np.zeros((1, model.n_params)), {}, ["--map-only"])
            tagged = sorted((value for _, value in records), key=lambda item: item[0])
            expected = [part.index for part in dataset.partitions]
            if [partition_id for partition_id, _ in tagged] != expected:
                raise RuntimeError(f"MRNaiveBayes returned partitions {[i for i, _ in tagged]}; expected "
                                   f"{expected}, each once.")
            vectors = [vector for _, vector in tagged]
            overflowed = {partition_id for partition_id, vector in tagged if not np.isfinite(vector).all()}
            check_finite(f"{dataset.uri}: the {config.model} class statistics", *vectors,
                         where=partitions_named(dataset, overflowed))
            with np.errstate(over="ignore", invalid="ignore"):
                statistics = merge_statistics(model, vectors)
                try:
                    theta = naive_bayes_parameters(model, statistics, config.smoothing)
                except DataError as error:
                    raise DataError(f"{dataset.uri}: {error}") from None
            check_finite(f"{dataset.uri}: the {config.model} statistics merged over the partitions and the "
                         "model's parameters", statistics, theta)
            meta = training_meta(settings, 1, 1, [], verdict=("fitted in one pass", True))
            run.save(1, {NAIVE_BAYES_PARAMS: theta}, meta)
        return FittedModel(model, theta, l2=0.0, iterations=1, passes=1, history=[], converged=True,
                           stop_reason=meta["stop_reason"], settings=settings)
