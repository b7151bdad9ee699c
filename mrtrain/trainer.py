"""Training from Python: ``Trainer(...).fit(dataset_uri)`` runs the iterative MapReduce loop.

The trainer opens the dataset, builds the model, the objective and the optimizer, locks ``checkpoint_dir``
(:mod:`mrtrain.storage.lock`), removes what interrupted checkpoint writes left there, resumes from the newest
valid checkpoint when it was made with the same data and settings (or, with ``warm_start``, starts from its
parameters with a fresh optimizer), and runs :func:`mrtrain.engine.loop.optimize` with one gradient
MapReduce job per iteration (with ``allreduce``, one job for the whole training whose tasks serve the passes
over TCP: :mod:`mrtrain.allreduce`), writing a checkpoint after every pass. With ``standardize`` a
feature statistics pass comes first and the loop runs in standardized terms
(:mod:`mrtrain.engine.standardization`). The mrjob config file is checked
(:func:`mrtrain.mrjob_conf.check_mrjob_conf`) before anything runs, and the reducers are capped at
one per element of the summed vector (:func:`mrtrain.launcher.effective_reducers`).

A fresh run starts at the model's initial point (unless ``init="online"``): zeros, or for the MLP
(:mod:`mrtrain.engine.mlp`) seeded Glorot-uniform weights (``seed``, recorded in the settings with ``layers``
and ``activation``).

A naive Bayes model takes no loop: one map-only pass of class-wise statistics
(:mod:`mrtrain.mr_jobs.naive_bayes_job`), merged in partition order, gives its parameters, saved as
checkpoint 1; a rerun with the same data and settings returns that checkpoint's model without a pass.
k-means takes its own loop, k-means|| then Lloyd passes (:mod:`mrtrain.kmeans_training`).

Checkpoint files are numbered ``base + iteration``: ``base`` is 0 for a fresh run and one past the source
checkpoint for a warm start, so a warm-started run's checkpoints are always newer than the ones it started
from and a rerun of the same command resumes the warm-started run, not the old one.
"""

import contextlib
import logging
from typing import NamedTuple

import numpy as np

from mrtrain.allreduce import DEFAULT_TIMEOUT, AllReduceSession, check_settings
from mrtrain.engine.grid import grid_spec, is_grid
from mrtrain.engine.loop import (
    OVERFLOW_REASON,
    LoopStatus,
    NonFiniteObjectiveError,
    initial_status,
    optimize,
    stop_reason,
)
from mrtrain.engine.memory import check_training_size, optimizer_training_size, statistics_training_size
from mrtrain.engine.mlp import check_activation, check_layers
from mrtrain.engine.models import (
    CLASSIFIERS,
    CLUSTERING_MODELS,
    MODELS,
    NAIVE_BAYES_MODELS,
    NETWORK_MODELS,
    PartialSums,
    make_model,
)
from mrtrain.engine.naive_bayes import check_smoothing, merge_statistics, naive_bayes_parameters
from mrtrain.engine.naive_bayes import statistics_length as nb_statistics_length
from mrtrain.engine.objective import Objective
from mrtrain.engine.optimizers import OPTIMIZERS, check_l1, default_optimizer, make_optimizer
from mrtrain.engine.optimizers.base import state_from_record, state_to_record
from mrtrain.engine.optimizers.newton import check_model_size
from mrtrain.engine.overflow import RESCALE_ADVICE, check_finite
from mrtrain.engine.params import check_choice, check_int, check_number
from mrtrain.engine.standardization import Standardization, check_convention
from mrtrain.engine.start_point import INITS
from mrtrain.fitted import (
    NAIVE_BAYES_PARAMS,
    PASS_RECORDS,
    FittedModel,
    checkpoint_coordinates,
    checkpoint_theta,
    latest_training_checkpoint,
    standardization_arrays,
    validate_new_checkpoint,
)
from mrtrain.initialization import online_initial_point
from mrtrain.launcher import RUNNERS, JobLauncher, effective_reducers
from mrtrain.mr_jobs.feature_stats import MRFeatureStats
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.mr_jobs.naive_bayes_job import MRNaiveBayes
from mrtrain.mr_jobs.partition_job import NON_FINITE_COUNTERS
from mrtrain.mrjob_conf import check_mrjob_conf
from mrtrain.names import dataset_names
from mrtrain.storage.checkpoint import remove_temporaries, save_checkpoint
from mrtrain.storage.checkpoint_writer import CheckpointWriter
from mrtrain.storage.dataset import Dataset, refuse_missing
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import absolute
from mrtrain.storage.lock import DirectoryLock

log = logging.getLogger(__name__)

#: Settings that must match for a checkpoint to be resumed.
RESUME_KEYS = ("model", "optimizer", "l2", "l1", "standardize", "precondition", "fit_intercept", "n_features",
               "classes", "data_checksum", "layers", "activation", "seed")
#: Settings that fix the parameter vector's layout: they must match even for a warm start.
LAYOUT_KEYS = ("model", "fit_intercept", "n_features", "classes", "layers")
#: Values of settings that checkpoints written before the setting existed lack.
SETTING_DEFAULTS = {"l1": 0.0, "standardize": False, "precondition": False, "n_init": 1}
#: The optimizers that run in standardized coordinates when ``precondition`` is on (Newton's steps are the
#: same in any affine coordinates, so it gains nothing).
PRECONDITIONED_OPTIMIZERS = ("gd", "lbfgs", "owlqn")
#: What the one-pass fit of a naive Bayes model leaves at its default: (parameter, default, why).
NAIVE_BAYES_FIXED = (
    ("optimizer", None, "no optimizer"), ("l2", 0.0, "no penalty"), ("l1", 0.0, "no penalty"),
    ("standardize", False, "no penalty to standardize for"), ("fit_intercept", True, "class log priors"),
    ("warm_start", False, "no iterations to start from"), ("allreduce", False, "one pass"),
    ("init", "zeros", "no optimizer to start"),
)


#: What k-means (Lloyd passes, no objective gradient) leaves at its default: (parameter, default, why).
KMEANS_FIXED = (
    ("optimizer", None, "Lloyd passes, no optimizer"), ("l2", 0.0, "no penalty"), ("l1", 0.0, "no penalty"),
    ("standardize", False, "no penalty to standardize for"), ("fit_intercept", True, "centres, no intercept"),
    ("warm_start", False, "init_centers gives the starting centres"),
    ("allreduce", False, "one job per pass"),
    ("smoothing", None, "not naive Bayes"), ("init", "zeros", "init_centers gives the starting centres"),
)
#: k-means' own parameters with their defaults; other models leave them there.
KMEANS_PARAMETERS = (("k", None), ("seed", 0), ("init_centers", None), ("init_steps", 2), ("n_init", 1))


class SettingsMismatchError(ValueError):
    """The checkpoint directory holds a run made with other data or settings."""


def check_trainable(dataset, model):
    """Refuse (DataError, one line) a dataset without labels, and string labels for a model that is no
    classifier."""
    if not dataset.has_label:
        raise DataError(f"{dataset.uri}: field '{dataset.label_name}': expected labels to train {model}, "
                        "found a dataset ingested without its label column (for predict only)")
    if dataset.class_names is not None and model not in CLASSIFIERS and model not in CLUSTERING_MODELS:
        names = dataset.class_names
        raise DataError(f"{dataset.uri}: field '{dataset.label_name}': expected numeric labels for {model}, "
                        f"found class names {names[:3] + ['...'] if len(names) > 3 else names} (a "
                        "classifier takes them)")


class Trainer:
    """Train a linear model over a dataset with iterative MapReduce jobs.

    Parameters
    ----------
    model : str, one of :data:`mrtrain.engine.models.MODELS`
        ``"linear"``, ``"logistic"``, ``"softmax"``, ``"poisson"``, ``"linear-svc"``, ``"multinomial-nb"``,
        ``"bernoulli-nb"``, ``"gaussian-nb"`` or ``"kmeans"``. The naive Bayes models are fitted in one pass
        (:mod:`mrtrain.engine.naive_bayes`) and take none of the optimizer, penalty, standardization, warm
        start and AllReduce settings; nor does ``"kmeans"`` (``k``, ``seed``, ``init_centers``,
        ``init_steps``; :mod:`mrtrain.kmeans_training`), whose ``max_iter`` counts Lloyd passes and
        whose ``tol`` bounds the largest squared centre move relative to the features' mean variance.
    optimizer : {"gd", "lbfgs", "newton", "owlqn"}, optional
        Default: ``"owlqn"`` when ``l1 > 0``, else ``"lbfgs"``. Only ``"owlqn"`` accepts ``l1 > 0``.
    l2 : float >= 0
        Strength of ``(l2/2)‖w‖²``; intercepts are not penalized. Default: 0.
    l1 : float >= 0
        Strength of ``l1‖w‖₁``; intercepts are not penalized. Default: 0.
    standardize : bool or {"spark", "glmnet"}
        Fit in terms of standardized features (:mod:`mrtrain.engine.standardization`: one statistics
        pass first; the penalties apply to the standardized coefficients) and report the coefficients and
        intercept of the features as stored. True or ``"spark"``: Spark MLlib's standard deviation (the
        unbiased one, ``n - 1`` for unit weights); ``"glmnet"``: glmnet's and scikit-learn's
        ``StandardScaler``'s (population, ``n``). Recorded in the settings as the convention's name.
        Default: False.
    precondition : bool
        Run ``"lbfgs"``, ``"gd"`` and ``"owlqn"`` in standardized coordinates whatever ``standardize`` says:
        one statistics pass first (a fresh or warm-started run's; not counted in ``passes``, which are the
        optimizer's, as with ``standardize``), then the optimizer works on ``θ'`` with
        ``w = w'/σ`` and ``b = b' - μ·w`` while the objective stays the one asked for (penalties on ``w``
        unless ``standardize``). This is a diagonal preconditioner plus centring through the intercept, as
        Spark MLlib trains its linear models; on sparse data of uneven feature frequencies it cuts the
        passes several-fold (``python3 -m benchmarks.sparse``). It changes the path, not the optimum; the
        gradient that ``gtol`` bounds is then the one in standardized coordinates. Ignored for Newton and
        the MLP. Default: True.
    fit_intercept : bool
        Default: True.
    max_iter : int >= 1
        Optimizer iterations (each one data pass). Default: 100.
    tol : float >= 0
        Stop when the relative objective change of an iteration is at most ``tol``. Default: 1e-8.
    gtol : float >= 0
        Stop when the gradient's max-norm is at most ``gtol``. Default: 1e-6.
    runner : {"inline", "local", "hadoop"}
        The mrjob runner. Default: ``"inline"``.
    conf_path : str, optional
        mrjob config file (otherwise mrjob's own lookup applies), checked by :func:`check_mrjob_conf`.
    checkpoint_dir : str, optional
        Directory (local or ``hdfs://``) for one checkpoint per pass; a rerun resumes from it. A relative
        path is made absolute here, against the working directory of the call that makes the trainer
        (as are ``conf_path`` and an ``init_centers`` file).
    keep_checkpoints : int, optional
        Keep only the newest N checkpoints.
    warm_start : bool
        If the newest checkpoint was made with other data, optimizer, ``l2`` or ``l1`` (same model, features,
        classes and intercept), start from its parameters with a fresh optimizer state and this run's
        settings instead of refusing. Needs a valid checkpoint in ``checkpoint_dir``. Default: False.
    break_lock : bool
        Take the checkpoint directory's lock even if another run seems to hold it (see
        :mod:`mrtrain.storage.lock`). Default: False.
    reducers : int >= 0
        Number of pieces (and reduce tasks) the summed vector is cut into, so that several reducers add
        a large vector in parallel; 0 runs map-only jobs whose partition vectors the driver adds (no
        reduce process or container per pass). The result is bitwise the same for any value. More
        reducers than the smallest summed vector has elements are capped with a warning. Default: 1.
    partition_cache : bool
        Let map tasks keep decoded partitions in their node's cache
        (:mod:`mrtrain.storage.partition_cache`), so that passes after the first skip reading, hashing and
        decoding them. Default: True.
    callback : callable, optional
        Called with an :class:`mrtrain.engine.loop.Progress` after every pass.
    smoothing : float > 0, optional
        Naive Bayes only: scikit-learn's ``alpha`` (multinomial, Bernoulli; default 1.0) or
        ``var_smoothing`` (Gaussian; default 1e-9).
    allreduce : bool
        Run one map-only job for the whole training whose map tasks keep their partitions and serve every
        pass over TCP (:mod:`mrtrain.allreduce`) instead of one job per pass; bitwise the same
        model. Needs the ``"local"`` or ``"hadoop"`` runner. Default: False.
    allreduce_address : str
        ``HOST[:PORT]`` the driver listens on for the tasks (port 0: any free port); on a cluster, an
        address of the driver's host that the NodeManagers reach. Default: ``"127.0.0.1"``.
    allreduce_tasks : int >= 1, optional
        Map tasks of the AllReduce job, each holding a group of partitions; all must run at once.
        Default: mrjob's ``num_cores`` (else the machine's cores) on the local runner; on Hadoop the map
        containers the cluster can run at once, as its ResourceManager says (2 if it cannot be asked); at
        most one per partition.
    allreduce_timeout : float > 0
        Seconds for every task to connect, and for a lost task's retry to reconnect, before the training
        stops. Default: 120.
    init : {"zeros", "online"}
        The optimizer's starting point: zeros, or (``"online"``) the weighted average of one online epoch
        of AdaGrad per partition, computed by one more job (counted in ``passes``;
        :mod:`mrtrain.engine.start_point`). Only for a fresh run: a resumed or warm-started one starts
        from its checkpoint. Default: ``"zeros"``.
    layers : sequence of int, optional
        ``"mlp"`` only: hidden layer sizes, each >= 1. Default: ``(100,)``, as scikit-learn's.
    activation : {"tanh", "relu"}, optional
        ``"mlp"`` only: the hidden layers' activation. Default: ``"tanh"``. The MLP
        (:mod:`mrtrain.engine.mlp`) starts at seeded Glorot-uniform weights (``seed``) and trains with
        ``"lbfgs"`` (default) or ``"gd"``; no l1, standardization or online init.
    k : int >= 1, optional
        k-means: the number of centres (at most the dataset's rows); optional with ``init_centers``.
    seed : int >= 0
        k-means: the seed of k-means|| (its first centre, its sampling streams, k-means++); mlp: the seed of
        the initial weights. Default: 0.
    init_centers : array_like of shape (k, d) or str, optional
        k-means: the initial centres, or a ``.npy`` / CSV file of them (local or ``hdfs://``), instead of
        k-means|| (:mod:`mrtrain.kmeans_training`). Default: None (k-means||).
    init_steps : int >= 1
        k-means: the sampling steps of k-means|| (Spark's ``initSteps``). Default: 2.
    n_init : int >= 1
        k-means: the number of k-means|| starts (seeds ``seed, seed + 1, ...``), each run to convergence;
        the one of lowest inertia at its final centres is kept (scikit-learn's ``n_init``). Their Lloyd
        passes are shared: one pass sums every start's statistics. Needs k-means|| (no
        ``init_centers``). Default: 1.
    """

    def __init__(self, model, *, optimizer=None, l2=0.0, l1=0.0, standardize=False, precondition=True,
                 fit_intercept=True,
                 max_iter=100, tol=1e-8, gtol=1e-6, runner="inline", conf_path=None, checkpoint_dir=None,
                 keep_checkpoints=None, warm_start=False, break_lock=False, reducers=1, partition_cache=True,
                 callback=None, allreduce=False, allreduce_address="127.0.0.1", allreduce_tasks=None,
                 allreduce_timeout=DEFAULT_TIMEOUT, smoothing=None, init="zeros", k=None, seed=0,
                 init_centers=None, init_steps=2, n_init=1, layers=None, activation=None, reg_path=None,
                 reg_path_ratio=None, elastic_net=None, cv=None, validation_fraction=None, n_iter_no_change=5,
                 fold_seed=0):
        self.model = model
        self.optimizer = optimizer
        self.l2 = l2
        self.l1 = l1
        self.standardize = standardize
        self.precondition = precondition
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.gtol = gtol
        self.runner = runner
        self.conf_path = absolute(conf_path)
        self.checkpoint_dir = absolute(checkpoint_dir)
        self.keep_checkpoints = keep_checkpoints
        self.warm_start = warm_start
        self.break_lock = break_lock
        self.reducers = reducers
        self.partition_cache = partition_cache
        self.callback = callback
        #: The jobs of the last :meth:`fit` of a linear or softmax model (:class:`mrtrain.launcher.JobTime`).
        self.job_times = []
        self.allreduce = allreduce
        self.allreduce_address = allreduce_address
        self.allreduce_tasks = allreduce_tasks
        self.allreduce_timeout = allreduce_timeout
        self.smoothing = smoothing
        self.init = init
        self.k = k
        self.seed = seed
        self.init_centers = absolute(init_centers) if isinstance(init_centers, str) else init_centers
        self.init_steps = init_steps
        self.n_init = n_init
        self.layers = layers
        self.activation = activation
        self.reg_path = reg_path
        self.reg_path_ratio = reg_path_ratio
        self.elastic_net = elastic_net
        self.cv = cv
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.fold_seed = fold_seed

    def _validate(self):
        check_choice("model", self.model, MODELS)
        self._validate_clustering()
        if self.model in NAIVE_BAYES_MODELS:
            for name, default, reason in NAIVE_BAYES_FIXED:
                value = getattr(self, name)
                if value != default:
                    raise ValueError(
                        f"The {name!r} parameter does not apply to model {self.model!r} (naive Bayes is "
                        f"fitted in one pass: {reason}); leave it at {default!r}. Got {value!r} instead."
                    )
            check_smoothing(self.model, self.smoothing)
        elif self.smoothing is not None:
            raise ValueError(f"The 'smoothing' parameter applies to the naive Bayes models "
                             f"{list(NAIVE_BAYES_MODELS)} only. Got smoothing={self.smoothing!r} for model "
                             f"{self.model!r} instead.")
        if is_grid(self):
            grid_spec(self)
            if self.optimizer is not None:
                check_choice("optimizer", self.optimizer, OPTIMIZERS)
        else:
            check_number("l2", self.l2, minimum=0)
            check_number("l1", self.l1, minimum=0)
            if self.optimizer is not None:
                check_choice("optimizer", self.optimizer, OPTIMIZERS)
                check_l1(self.optimizer, float(self.l1))
        check_choice("runner", self.runner, RUNNERS)
        check_choice("init", self.init, INITS)
        check_int("max_iter", self.max_iter, minimum=1)
        check_number("tol", self.tol, minimum=0)
        check_number("gtol", self.gtol, minimum=0)
        if self.keep_checkpoints is not None:
            check_int("keep_checkpoints", self.keep_checkpoints, minimum=1)
        check_int("reducers", self.reducers, minimum=0)
        if self.conf_path is not None:
            check_mrjob_conf(self.conf_path)
        check_convention(self.standardize)
        for name in ("warm_start", "break_lock", "partition_cache", "allreduce", "precondition"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"The {name!r} parameter must be a bool. Got {value!r} instead.")
        if self.allreduce:
            check_settings(runner=self.runner, address=self.allreduce_address, tasks=self.allreduce_tasks,
                           timeout=self.allreduce_timeout)
        if self.warm_start and not self.checkpoint_dir:
            raise ValueError("The 'warm_start' parameter needs a 'checkpoint_dir' to start from. Got "
                             "checkpoint_dir=None.")
        self._validate_network()

    def _validate_clustering(self):
        """Refuse k-means settings for other models, and settings k-means does not take."""
        if self.model not in CLUSTERING_MODELS:
            for name, default in KMEANS_PARAMETERS:
                if name == "seed" and self.model in NETWORK_MODELS:
                    continue
                value = getattr(self, name)
                if not (value is None if default is None else value == default):
                    raise ValueError(f"The {name!r} parameter applies to model 'kmeans' only. Got {name}="
                                     f"{value!r} for model {self.model!r} instead.")
            return
        for name, default, reason in KMEANS_FIXED:
            value = getattr(self, name)
            if value != default:
                raise ValueError(f"The {name!r} parameter does not apply to model {self.model!r} ({reason}); "
                                 f"leave it at {default!r}. Got {value!r} instead.")
        if self.k is not None or self.init_centers is None:
            check_int("k", self.k, minimum=1)
        check_int("seed", self.seed, minimum=0)
        check_int("init_steps", self.init_steps, minimum=1)
        check_int("n_init", self.n_init, minimum=1)
        if self.n_init > 1 and self.init_centers is not None:
            raise ValueError(f"The 'n_init' parameter needs k-means|| starts: with 'init_centers' there is "
                             f"one start. Got n_init={self.n_init!r} instead.")

    def _validate_network(self):
        """Refuse MLP settings for other models, and for the MLP what a non-convex network without Hessian
        sums cannot take."""
        if self.model not in NETWORK_MODELS:
            for name in ("layers", "activation"):
                if getattr(self, name) is not None:
                    raise ValueError(f"The {name!r} parameter applies to model 'mlp' only. Got {name}="
                                     f"{getattr(self, name)!r} for model {self.model!r} instead.")
            return
        if is_grid(self):
            raise ValueError("Model 'mlp' trains one network per run: penalty lists, 'reg_path', 'cv' and "
                             f"'validation_fraction' are not offered for it. Got l2={self.l2!r}, "
                             f"l1={self.l1!r}, reg_path={self.reg_path!r}, cv={self.cv!r}, "
                             f"validation_fraction={self.validation_fraction!r} instead.")
        if self.layers is not None:
            check_layers(self.layers)
        if self.activation is not None:
            check_activation(self.activation)
        check_int("seed", self.seed, minimum=0)
        if self.l1 != 0:
            raise ValueError(f"The 'l1' parameter of model 'mlp' must be 0 (it trains with lbfgs or gd; use "
                             f"l2). Got {self.l1!r} instead.")
        if self.optimizer not in (None, "lbfgs", "gd"):
            raise ValueError(f"The 'optimizer' parameter of model 'mlp' must be 'lbfgs' or 'gd' (it has no "
                             f"Hessian sums and no l1 penalty). Got {self.optimizer!r} instead.")
        for name, default in (("standardize", False), ("init", "zeros"), ("fit_intercept", True)):
            if getattr(self, name) != default:
                raise ValueError(f"The {name!r} parameter does not apply to model 'mlp' (seeded initial "
                                 f"weights, a bias in every unit); leave it at {default!r}. Got "
                                 f"{getattr(self, name)!r} instead.")

    def fit(self, data):
        """Train on the dataset at ``data`` (a directory made by ``mrtrain ingest``; a relative path is
        made absolute first).

        Returns
        -------
        FittedModel
        """
        self._validate()
        dataset = Dataset.open(absolute(data))
        refuse_missing(dataset, self.model)
        if self.model in CLUSTERING_MODELS:
            # Imported here: k-means training builds on this module.
            from mrtrain.kmeans_training import fit_kmeans

            return fit_kmeans(self, dataset)
        check_trainable(dataset, self.model)
        classes = None
        if self.model in CLASSIFIERS:
            if dataset.classes is None:
                raise DataError(
                    f"{dataset.uri}: field '{dataset.label_name}': expected class labels for "
                    f"{self.model}, found non-integer or more than 1000 distinct label values"
                )
            classes = dataset.classes
        model = make_model(self.model, dataset.n_features, classes=classes, fit_intercept=self.fit_intercept,
                           layers=self.layers, activation=self.activation)
        if self.model in NAIVE_BAYES_MODELS:
            return self._fit_naive_bayes(dataset, model)
        if is_grid(self):
            # Imported here: grid training builds on this module.
            from mrtrain.grid_training import fit_grid

            return fit_grid(self, dataset, model, classes)
        optimizer_name = self.optimizer or default_optimizer(float(self.l1))
        if optimizer_name == "newton":
            check_model_size(model.n_params)  # before the lock and any job
        check_training_size(optimizer_training_size(
            *self.size_option(optimizer_name), model.n_params, OPTIMIZERS[optimizer_name](),
            checkpoint=bool(self.checkpoint_dir),
        ))
        # The smallest vector a pass sums: one parameter point, no Hessian.
        reducers = effective_reducers(
            self.reducers, PartialSums.zeros(1, model.n_params, 0).to_vector().size, "gradient"
        )
        precondition = self.runs_preconditioned(optimizer_name)
        settings = {
            "model": self.model, "optimizer": optimizer_name, "l2": float(self.l2), "l1": float(self.l1),
            "standardize": standardize_setting(self.standardize), "precondition": precondition,
            "init": self.init,
            "fit_intercept": bool(self.fit_intercept), "n_features": dataset.n_features,
            "classes": classes, "data": dataset.uri, "data_checksum": dataset.checksum,
            "encoding": dataset.encoding_digest, **dataset_names(dataset),
        }
        if self.model in NETWORK_MODELS:
            settings.update(layers=list(model.layers), activation=model.activation, seed=self.seed)
        objective = Objective(model, self.l2, self.l1)
        spec = model.spec()
        limits = {"max_iter": self.max_iter, "tol": self.tol, "gtol": self.gtol}
        lock = (DirectoryLock(self.checkpoint_dir, break_lock=self.break_lock) if self.checkpoint_dir
                else contextlib.nullcontext())
        # Left before the lock is released: every checkpoint saved is on disk first.
        writer = (CheckpointWriter(self.checkpoint_dir, keep=self.keep_checkpoints,
                                   validate=validate_new_checkpoint) if self.checkpoint_dir
                  else None)

        with lock, JobLauncher(
            dataset, spec, runner=self.runner, conf_path=self.conf_path, reducers=reducers,
            partition_cache=self.partition_cache,
        ) as launcher, self._allreduce_session(launcher) as session, writer or contextlib.nullcontext():
            self.job_times = launcher.job_times
            checkpoint, resume = self._latest_checkpoint(settings)
            x0 = model.initial_point(self.seed)
            online = self.init == "online" and checkpoint is None  # a resumed or warm start has its own
            if online:  # its own job, before an AllReduce job (started by the next pass) holds the slots
                x0 = online_initial_point(launcher, model, self.l2)
            if resume:  # the coordinates the checkpointed state is in
                scaling = checkpoint_coordinates(checkpoint, model)
            elif self.standardize or precondition:
                scaling = self._coordinates(session or launcher, model, dataset)
            else:
                scaling = None
            optimizer = make_optimizer(optimizer_name, **optimizer_options(
                optimizer_name, objective, scaling, self.standardize, self.model
            ))
            reported = scaling if self.standardize else None
            start = self._start(optimizer, checkpoint, resume,
                                x0 if scaling is None else scaling.to_standardized(x0), scaling)
            if online:  # its pass counts
                start = start._replace(status=start.status._replace(passes=1))
            passes = session or launcher

            def evaluate(points, hessian):
                originals = points if scaling is None else scaling.to_original(points)
                vector = passes.sum_vector(MRGradient, originals, {"hessian": hessian})
                sums = PartialSums.from_vector(vector, len(points), model.n_params, hessian)
                if scaling is None:
                    return objective.evaluations(sums, points)
                if self.standardize:  # the penalties apply to the standardized coefficients
                    return objective.evaluations(scaling.sums_to_standardized(sums), points)
                return [scaling.evaluation_to_standardized(evaluation)
                        for evaluation in objective.evaluations(sums, originals)]

            def save(status):
                lock.check_held()  # a run whose lease was broken stops before writing
                verdict = stop_reason(status, **limits, optimizer=optimizer)
                self._save(writer, status, settings, verdict, start, scaling)

            try:
                status, reason, converged = optimize(
                    optimizer, evaluate, start.status, on_iteration=save if self.checkpoint_dir else None,
                    callback=self.callback, **limits,
                )
            except NonFiniteObjectiveError as error:
                raise NonFiniteObjectiveError(
                    f"{dataset.uri}: {error}{non_finite_partitions(passes, dataset)}"
                ) from None
        if not converged:
            log.warning("Training stopped before converging (%s) after %d iterations; %s.", reason,
                        status.iteration, STOP_ADVICE.get(reason, "raise max_iter or loosen tol/gtol"))
        theta = status.state.x if scaling is None else scaling.to_original(status.state.x)
        return FittedModel(
            model, theta, l2=self.l2, l1=self.l1, iterations=status.iteration, passes=status.passes,
            history=status.history, converged=converged, stop_reason=reason, settings=settings,
            standardization=reported, pass_records={name: getattr(status, name) for name in PASS_RECORDS},
        )

    def _fit_naive_bayes(self, dataset, model):
        """Fit a naive Bayes model in one map-only pass and save it as checkpoint 1 (a rerun with the same
        data and settings returns that checkpoint's model without a pass)."""
        if model.dense_only and dataset.layout != "dense":
            raise ValueError(f"The 'model' parameter 'gaussian-nb' needs a dense dataset (a sparse row's "
                             f"implicit zeros would count as values). Got the {dataset.layout!r} dataset "
                             f"{dataset.uri} instead; use 'multinomial-nb' or 'bernoulli-nb'.")
        smoothing = check_smoothing(self.model, self.smoothing)
        check_training_size(statistics_training_size("model", self.model, model.n_params,
                                                     nb_statistics_length(model), len(dataset.partitions)))
        settings = {
            "model": self.model, "optimizer": None, "l2": 0.0, "l1": 0.0, "standardize": False,
            "smoothing": smoothing, "fit_intercept": True, "n_features": dataset.n_features,
            "classes": model.classes, "data": dataset.uri, "data_checksum": dataset.checksum,
            "encoding": dataset.encoding_digest, **dataset_names(dataset),
        }
        lock = (DirectoryLock(self.checkpoint_dir, break_lock=self.break_lock) if self.checkpoint_dir
                else contextlib.nullcontext())
        with lock:
            if self.checkpoint_dir:
                remove_temporaries(self.checkpoint_dir)
                checkpoint = latest_training_checkpoint(self.checkpoint_dir)
                if checkpoint is not None:
                    differences = settings_differences(checkpoint.meta["settings"], settings,
                                                       RESUME_KEYS + ("smoothing",))
                    if differences:
                        raise SettingsMismatchError(
                            f"{checkpoint.uri}: cannot resume, the checkpoint was made with other settings ("
                            + "; ".join(differences) + "); use another --checkpoint-dir"
                        )
                    log.info("%s: the model is fitted already", checkpoint.uri)
                    return FittedModel.load(self.checkpoint_dir)
            with JobLauncher(dataset, model.spec(), runner=self.runner, conf_path=self.conf_path, reducers=0,
                             partition_cache=self.partition_cache) as launcher:
                records = launcher.run(MRNaiveBayes, np.zeros((1, model.n_params)), {}, ["--map-only"])
            tagged = sorted((value for _, value in records), key=lambda item: item[0])
            expected = [part.index for part in dataset.partitions]
            if [partition_id for partition_id, _ in tagged] != expected:
                raise RuntimeError(f"MRNaiveBayes returned partitions {[i for i, _ in tagged]}; expected "
                                   f"{expected}, each once.")
            vectors = [vector for _, vector in tagged]
            overflowed = {partition_id for partition_id, vector in tagged if not np.isfinite(vector).all()}
            check_finite(f"{dataset.uri}: the {self.model} class statistics", *vectors,
                         where=partitions_named(dataset, overflowed))
            with np.errstate(over="ignore", invalid="ignore"):
                statistics = merge_statistics(model, vectors)
                try:
                    theta = naive_bayes_parameters(model, statistics, smoothing)
                except DataError as error:
                    raise DataError(f"{dataset.uri}: {error}") from None
            check_finite(f"{dataset.uri}: the {self.model} statistics merged over the partitions and the "
                         "model's parameters", statistics, theta)
            meta = {
                "settings": settings, "iteration": 1, "passes": 1, "history": [], "rejected": 0,
                "state_scalars": {}, "stop_reason": "fitted in one pass", "converged": True,
                "checkpoint_base": 0, "warm_start": None,
            }
            if self.checkpoint_dir:
                lock.check_held()
                save_checkpoint(self.checkpoint_dir, 1, {NAIVE_BAYES_PARAMS: theta}, meta,
                                keep=self.keep_checkpoints, validate=validate_new_checkpoint)
        return FittedModel(model, theta, l2=0.0, iterations=1, passes=1, history=[], converged=True,
                           stop_reason=meta["stop_reason"], settings=settings)

    def _allreduce_session(self, launcher):
        """The :class:`AllReduceSession` serving the passes (it starts its job at the first pass), or a
        context giving None: one job per pass."""
        if not self.allreduce:
            return contextlib.nullcontext()
        return AllReduceSession(launcher, address=self.allreduce_address, tasks=self.allreduce_tasks,
                                timeout=self.allreduce_timeout)

    def _save(self, writer, status, settings, verdict, start, scaling):
        arrays, scalars = state_to_record(status.state)
        arrays = {f"state.{k}": v for k, v in arrays.items()}
        if scaling is not None:
            arrays.update(standardization_arrays(scaling))
        meta = {
            "settings": settings, "iteration": status.iteration, "passes": status.passes,
            "history": list(status.history), "rejected": status.rejected, "state_scalars": scalars,
            "stop_reason": verdict[0] if verdict else None, "converged": bool(verdict and verdict[1]),
            "checkpoint_base": start.base, "warm_start": start.origin,
            **{name: list(getattr(status, name)) for name in PASS_RECORDS},
        }
        writer.save(start.base + status.iteration, arrays, meta)

    def size_option(self, optimizer_name):
        """``(name, value)`` of the parameter that sets a training's size, for
        :func:`~mrtrain.engine.memory.check_training_size`'s error: the MLP's ``layers``, Newton's
        ``optimizer`` (its ``p x p`` Hessian), else ``model`` (its parameters per feature of the data)."""
        if self.model in NETWORK_MODELS:
            return "layers", list(self.layers) if self.layers is not None else None
        if optimizer_name == "newton":
            return "optimizer", optimizer_name
        return "model", self.model

    def runs_preconditioned(self, optimizer_name):
        """Whether ``precondition`` applies: an optimizer whose path depends on the coordinates (not
        Newton's), and not the MLP."""
        return bool(self.precondition and optimizer_name in PRECONDITIONED_OPTIMIZERS
                    and self.model not in NETWORK_MODELS)

    def _coordinates(self, passes, model, dataset):
        """The :class:`Standardization` the optimizer runs in: ``standardize``'s, else the preconditioner;
        from one :class:`MRFeatureStats` pass (a job, or served by the AllReduce session ``passes``)."""
        vector = feature_statistics(passes, model, dataset, precondition=not self.standardize)
        if self.standardize:
            return standardization_from_sums(vector, model, check_convention(self.standardize))
        return Standardization.preconditioner(vector, model.n_outputs, model.fit_intercept, float(self.l2))

    def _latest_checkpoint(self, settings):
        """The newest valid checkpoint of ``checkpoint_dir`` and whether this run resumes it (same
        settings), after removing dead writers' temporaries; ``(None, False)`` for a fresh run. Raises
        :class:`SettingsMismatchError` where neither resuming nor warm-starting is allowed."""
        if not self.checkpoint_dir:
            return None, False
        remove_temporaries(self.checkpoint_dir)
        checkpoint = latest_training_checkpoint(self.checkpoint_dir)
        if checkpoint is None:
            if self.warm_start:
                raise FileNotFoundError(
                    f"{self.checkpoint_dir}: warm start needs a valid checkpoint to start from; found none"
                )
            return None, False
        differences = settings_differences(checkpoint.meta["settings"], settings, RESUME_KEYS)
        grid = checkpoint.meta.get("grid")
        if grid is not None:  # its state is the grid's (all members), its counts the grid's passes
            if not self.warm_start:
                raise SettingsMismatchError(
                    f"{checkpoint.uri}: cannot resume, the checkpoint was made by a grid of penalties and a "
                    "single model's training does not continue it; rerun the grid's command to resume the "
                    "grid, use another --checkpoint-dir, or pass --warm-start to start from the grid's "
                    "selected model"
                )
            differences = differences or ["the checkpoint holds a grid's selected model"]
        if not differences:
            return checkpoint, True
        if not self.warm_start:
            raise SettingsMismatchError(
                f"{checkpoint.uri}: cannot resume, the checkpoint was made with other settings ("
                + "; ".join(differences) + "); use another --checkpoint-dir, or pass --warm-start to start "
                "from its parameters with this run's settings"
            )
        layout = settings_differences(checkpoint.meta["settings"], settings, LAYOUT_KEYS)
        if layout:
            raise SettingsMismatchError(
                f"{checkpoint.uri}: cannot warm-start, the parameters have another layout ("
                + "; ".join(layout) + "); use another --checkpoint-dir"
            )
        log.warning("warm start from %s (iteration %d): %s", checkpoint.uri, checkpoint.meta["iteration"],
                    "; ".join(differences))
        return checkpoint, False

    @staticmethod
    def _start(optimizer, checkpoint, resume, x0, scaling):
        """Where the loop starts: fresh at ``x0`` (no checkpoint), resumed from ``checkpoint``'s optimizer
        state (``resume``), or warm-started at its model, expressed in this run's standardized terms when
        ``scaling`` is given."""
        if checkpoint is None:
            return Start(initial_status(optimizer, x0), 0, None)
        meta = checkpoint.meta
        if resume:
            arrays = {
                k.removeprefix("state."): v for k, v in checkpoint.arrays.items() if k.startswith("state.")
            }
            state = state_from_record(optimizer.State, arrays, meta["state_scalars"])
            log.info("resuming from %s (iteration %d)", checkpoint.uri, meta["iteration"])
            status = LoopStatus(
                state, meta["iteration"], meta["passes"], tuple(meta["history"]), meta["rejected"],
                *(tuple(meta.get(name, ())) for name in PASS_RECORDS),
            )
            return Start(status, meta.get("checkpoint_base", 0), meta.get("warm_start"))
        origin = {
            "checkpoint": checkpoint.uri, "iteration": checkpoint.iteration, "settings": meta["settings"]
        }
        theta = checkpoint_theta(checkpoint)
        status = initial_status(optimizer, theta if scaling is None else scaling.to_standardized(theta))
        return Start(status, checkpoint.iteration + 1, origin)


#: What to change when the loop stops for a reason other than max_iter.
STOP_ADVICE = {
    "line search found no decrease": (
        "the objective could not be lowered along the search direction: check the scale of the features "
        f"({RESCALE_ADVICE}) or try another optimizer"
    ),
    OVERFLOW_REASON: f"rescale the features and labels ({RESCALE_ADVICE})",
}


def standardization_from_sums(vector, model, convention):
    """:meth:`Standardization.from_sums` for ``model``, centred when it has an intercept, with the standard
    deviation of ``convention`` (``"spark"`` or ``"glmnet"``), logged."""
    scaling = Standardization.from_sums(vector, model.n_outputs, model.fit_intercept, center=True,
                                        convention=convention)
    log.info("standardization of %d features (%s's standard deviation): %s", scaling.scale.size, convention,
             "centred and scaled" if scaling.shift.any() else "scaled")
    return scaling


def standardize_setting(value):
    """What the settings record of ``standardize=value``: False, or the convention's name."""
    return check_convention(value) or False


def optimizer_options(name, objective, scaling, standardize, model_kind):
    """The options of optimizer ``name`` for ``objective`` in the coordinates ``scaling`` (None: the
    model's): OWL-QN's l1 strengths in them (:func:`optimizer_l1_weights`); for L-BFGS on a linear model,
    the quasi-Newton step alone in every pass that follows an accepted one (``single_step``).

    A linear model's objective is convex and, in the preconditioner's coordinates, well scaled: the
    full step is accepted in nearly every iteration (the same passes within 7%, one pass on a 14-pass
    problem, on dense and sparse problems), while each extra trial point of a wide model is its whole
    parameter vector shipped to and summed back from every task. The MLP keeps the four step sizes
    per pass: on its non-convex objective the full step is rejected far more often (iris, 20 passes:
    accuracy 0.53 with single steps against 0.95).
    """
    if name == "owlqn":
        return {"l1": optimizer_l1_weights(objective, scaling, standardize)}
    if name == "lbfgs" and model_kind not in NETWORK_MODELS:
        return {"single_step": True}
    return {}


def feature_statistics(passes, model, dataset, *, precondition):
    """The :func:`~mrtrain.engine.standardization.feature_sums` total of ``dataset`` from one
    :class:`MRFeatureStats` pass (a job, or served by the AllReduce session ``passes``); a
    :class:`DataError` naming the partitions when float64 overflowed (``precondition``: the message
    names ``--no-precondition``)."""
    vector = passes.sum_vector(MRFeatureStats, np.zeros((1, model.n_params)), {})
    if not np.isfinite(vector).all():
        raise DataError(
            f"{dataset.uri}: the feature statistics are not finite: float64 overflowed summing squared "
            f"features{non_finite_partitions(passes, dataset)}; {RESCALE_ADVICE}"
            + (" (or train with --no-precondition)" if precondition else "")
        )
    return vector


def optimizer_l1_weights(objective, scaling, standardize):
    """OWL-QN's per-parameter l1 strengths in the coordinates it runs in.

    In standardized coordinates ``|wⱼ| = |w'ⱼ| / σⱼ``, so an l1 penalty on the stored features'
    coefficients is one of strength ``l1/σⱼ`` on ``w'ⱼ``; with ``standardize`` the penalty is on ``w'``.
    """
    if scaling is None or standardize:
        return objective.l1_weights
    return objective.l1_weights / scaling.parameter_scales()


def non_finite_partitions(passes, dataset):
    """``" (non-finite sums in partitions 0 (URI), ...)"`` from the last pass's counters (a launcher's or an
    AllReduce session's), or ``""``."""
    ids = set()
    for step in passes.last_counters:
        ids.update(int(name) for name in step.get(NON_FINITE_COUNTERS, {}))
    return partitions_named(dataset, ids)


def partitions_named(dataset, ids):
    """``" (non-finite sums in partitions 0 (URI), ...)"`` for the partitions of ``dataset`` whose index is in
    ``ids``, or ``""``."""
    names = [f"{part.index} ({part.uri})" for part in dataset.partitions if part.index in ids]
    if not names:
        return ""
    return " (non-finite sums in partition" + ("s " if len(names) > 1 else " ") + ", ".join(names) + ")"


class Start(NamedTuple):
    """Where a training loop starts.

    Attributes
    ----------
    status : LoopStatus
    base : int
        Checkpoint file number of iteration 0.
    origin : dict or None
        For a warm-started run: the checkpoint it started from (``checkpoint``, ``iteration``,
        ``settings``).
    """

    status: LoopStatus
    base: int
    origin: dict | None


def settings_differences(previous, current, keys):
    """One ``"key: checkpoint has X, this run has Y"`` string per key in ``keys`` whose values differ.

    A key the checkpoint (or this run's settings) lacks has its :data:`SETTING_DEFAULTS` value (or None).
    """
    differences = []
    for key in keys:
        recorded = previous.get(key, SETTING_DEFAULTS.get(key))
        value = current.get(key, SETTING_DEFAULTS.get(key))
        if recorded != value:
            differences.append(f"{key}: checkpoint has {recorded!r}, this run has {value!r}")
    return differences
