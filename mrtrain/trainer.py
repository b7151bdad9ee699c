"""Training from Python: ``Trainer(...).fit(dataset_uri)`` runs the iterative MapReduce jobs of a model.

The trainer checks the run's parameters (runner, checkpoint directory, reducers, AllReduce; the mrjob
config file with :func:`mrtrain.mrjob_conf.check_mrjob_conf`) and the model family's config
(:mod:`mrtrain.families`: GLMs, MLP, naive Bayes, k-means, each validating its own parameters), then
opens the dataset and a :class:`~mrtrain.training.run.TrainingRun` (the checkpoint directory's lock, the
background checkpoint writer, the launcher or AllReduce session, resume and save) and calls the family's
``fit``: an optimizer loop (:mod:`mrtrain.training.optimizer_fit`), a grid of penalties
(:mod:`mrtrain.families.glm_grid`), one statistics pass (:mod:`mrtrain.families.naive_bayes_family`) or Lloyd
passes (:mod:`mrtrain.families.kmeans_family`).
"""

import logging

from mrtrain.allreduce import DEFAULT_TIMEOUT, check_settings
from mrtrain.engine.params import check_choice, check_int
from mrtrain.families.registry import check_applies, family_of, parameter_defaults, path_parameters
from mrtrain.launcher import RUNNERS
from mrtrain.mrjob_conf import check_mrjob_conf
from mrtrain.storage.dataset import Dataset, refuse_missing
from mrtrain.storage.filesystem import absolute
from mrtrain.training.resume import SettingsMismatchError
from mrtrain.training.run import RunOptions, TrainingRun

log = logging.getLogger(__name__)

__all__ = ["SettingsMismatchError", "Trainer"]


class Trainer:
    """Train a model over a dataset with iterative MapReduce jobs.

    The trainer looks the model's family up (:mod:`mrtrain.families.registry`), builds the family's config
    from the family's parameters (or takes ``config``, one made by the family), opens the dataset and a
    :class:`~mrtrain.training.run.TrainingRun` with the run's parameters, and lets the family fit. The
    parameters below are those of every registered family; the run's own are ``runner``, ``conf_path``,
    ``checkpoint_dir``, ``keep_checkpoints``, ``break_lock``, ``reducers``, ``partition_cache``,
    ``callback`` and the ``allreduce`` ones.

    Parameters
    ----------
    model : str, one of :data:`mrtrain.engine.models.MODELS`
        ``"linear"``, ``"logistic"``, ``"softmax"``, ``"poisson"``, ``"linear-svc"``, ``"multinomial-nb"``,
        ``"bernoulli-nb"``, ``"gaussian-nb"`` or ``"kmeans"``. The naive Bayes models are fitted in one pass
        (:mod:`mrtrain.engine.naive_bayes`) and take none of the optimizer, penalty, standardization, warm
        start and AllReduce settings; nor does ``"kmeans"`` (``k``, ``seed``, ``init_centers``,
        ``init_steps``; :mod:`mrtrain.families.kmeans_family`), whose ``max_iter`` counts Lloyd passes and
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
    allreduce_address : str, optional
        ``HOST[:PORT]`` the driver listens on for the tasks (port 0: any free port); on a cluster, an
        address of the driver's host that the NodeManagers reach. Default: ``"127.0.0.1"`` on the local
        runner; on the hadoop runner this host's address toward the ResourceManager
        (:func:`mrtrain.allreduce_address.default_address`).
    allreduce_tasks : int >= 1, optional
        Map tasks of the AllReduce job, each holding a group of partitions; all must run at once.
        Default: mrjob's ``num_cores`` (else the machine's cores) on the local runner; on Hadoop the map
        containers the cluster can run at once, as its ResourceManager says (2 if it cannot be asked); at
        most one per partition.
    allreduce_timeout : float > 0
        Seconds for every task to connect, and for a lost task's retry to reconnect, before the training
        stops. Default: 120.
    training_metrics : bool
        With ``allreduce``: after training, the AllReduce job's tasks, which hold the partitions, also
        compute the evaluate job's metric sums at the trained model, so that the returned model's
        ``evaluate`` on the training dataset needs no job of its own (the same numbers, bitwise). The
        ``mrtrain train`` command sets it unless ``--no-metrics``. Models trained by an optimizer only
        (not a grid, k-means, naive Bayes or trees); elsewhere ignored. Default: False.
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
        k-means|| (:mod:`mrtrain.families.kmeans_family`). Default: None (k-means||).
    init_steps : int >= 1
        k-means: the sampling steps of k-means|| (Spark's ``initSteps``). Default: 2.
    config : mrtrain.families.family.Config, optional
        The family's config, made by ``family.config(model, values)``; then no family parameter is given.
    n_init : int >= 1
        k-means: the number of k-means|| starts (seeds ``seed, seed + 1, ...``), each run to convergence;
        the one of lowest inertia at its final centres is kept (scikit-learn's ``n_init``). Their Lloyd
        passes are shared: one pass sums every start's statistics. Needs k-means|| (no
        ``init_centers``). Default: 1.
    """

    def __init__(self, model, *, config=None, runner="inline", conf_path=None, checkpoint_dir=None,
                 keep_checkpoints=None, break_lock=False, reducers=1, partition_cache=True, callback=None,
                 allreduce=False, allreduce_address=None, allreduce_tasks=None,
                 allreduce_timeout=DEFAULT_TIMEOUT, training_metrics=False, **parameters):
        defaults = parameter_defaults()
        unknown = sorted(set(parameters) - set(defaults))
        if unknown:
            raise TypeError(f"Trainer() got an unexpected keyword argument {unknown[0]!r} (the parameters of "
                            f"the model families: {sorted(defaults)})")
        if config is not None and parameters:
            raise TypeError(f"Trainer() takes either a family 'config' or the family's parameters. Got "
                            f"config and {sorted(parameters)}.")
        self.model = model
        self.config = config
        # A relative path is made absolute against the working directory of the call that makes the trainer.
        paths = path_parameters()
        self.parameters = {name: absolute(value) if name in paths and isinstance(value, str)
                           else value for name, value in parameters.items()}
        self.options = RunOptions(
            runner=runner, conf_path=absolute(conf_path), checkpoint_dir=absolute(checkpoint_dir),
            keep_checkpoints=keep_checkpoints, break_lock=break_lock, reducers=reducers,
            partition_cache=partition_cache, callback=callback, allreduce=allreduce,
            allreduce_address=allreduce_address, allreduce_tasks=allreduce_tasks,
            allreduce_timeout=allreduce_timeout, training_metrics=training_metrics,
        )
        #: The jobs of the last :meth:`fit` (:class:`mrtrain.launcher.JobTime`).
        self.job_times = []

    def family_config(self):
        """The model's family and its config (validated), from ``config`` or the family's parameters.

        Raises
        ------
        ValueError
            Naming the parameter, what is allowed and what was given.
        """
        family = family_of(self.model)
        if self.config is not None:
            return family, self.config
        values = {**parameter_defaults(), **self.parameters}
        config = family.config(self.model, values)
        check_applies(family, self.model, values)
        return family, config

    def _validate_run(self, family, config):
        """Check the run's parameters (after the family's)."""
        options = self.options
        if options.allreduce is not False and family.allreduce_refused is not None:
            raise ValueError(f"The 'allreduce' parameter does not apply to model {self.model!r} "
                             f"({family.allreduce_refused}); leave it at False. Got {options.allreduce!r} "
                             "instead.")
        check_choice("runner", options.runner, RUNNERS)
        if options.keep_checkpoints is not None:
            check_int("keep_checkpoints", options.keep_checkpoints, minimum=1)
        check_int("reducers", options.reducers, minimum=0)
        if options.conf_path is not None:
            check_mrjob_conf(options.conf_path)
        for name in ("break_lock", "partition_cache", "allreduce", "training_metrics"):
            value = getattr(options, name)
            if not isinstance(value, bool):
                raise ValueError(f"The {name!r} parameter must be a bool. Got {value!r} instead.")
        if options.allreduce:
            check_settings(runner=options.runner, address=options.allreduce_address,
                           tasks=options.allreduce_tasks, timeout=options.allreduce_timeout)
        if getattr(config, "warm_start", False) and not options.checkpoint_dir:
            raise ValueError("The 'warm_start' parameter needs a 'checkpoint_dir' to start from. Got "
                             "checkpoint_dir=None.")

    def fit(self, data):
        """Train on the dataset at ``data`` (a directory made by ``mrtrain ingest``; a relative path is
        made absolute first).

        Returns
        -------
        FittedModel
        """
        family, config = self.family_config()
        self._validate_run(family, config)
        dataset = Dataset.open(absolute(data))
        if not family.takes_missing:
            refuse_missing(dataset, config.model)
        run = TrainingRun(dataset, self.options)
        try:
            return family.fit(run, config)
        finally:
            self.job_times = run.job_times

