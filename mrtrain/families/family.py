"""The model-family interface: what a family of models defines to be trained by :class:`mrtrain.Trainer`.

A family is the models that train the same way: the GLMs (one optimizer loop over a convex objective),
the MLP (the same loop on a network), naive Bayes (one statistics pass), k-means (k-means|| then Lloyd
passes). Everything that differs between families lives in the family's own module; nothing outside it
compares a model name.

Adding a family
---------------
1. Write ``mrtrain/families/<name>_family.py`` (the suffix keeps file names unique across the layers) with
   a subclass of :class:`Family`:

   - ``models``: the ``model=`` names it trains (``Trainer("my-model")``, ``mrtrain train --model
     my-model``); the model math and its jobs live in ``engine/`` and ``mr_jobs/`` as for any model.
   - ``parameters``: ``{name: default}`` of the Python API's keyword arguments it reads (besides the run's:
     :class:`~mrtrain.training.run.RunOptions`). A name may be shared with other families, with the same
     default. ``Trainer(model, **parameters)`` accepts every registered family's names.
   - :meth:`Family.config`: validate the values (ValueError naming the parameter, what is allowed and
     what was given) and return the family's :class:`Config`. ``values`` holds every registered parameter
     with the defaults filled in; afterwards the trainer refuses any parameter the family does not list
     that was given a value other than its default (:func:`mrtrain.families.registry.check_applies`:
     "The 'k' parameter applies to model 'kmeans' only. ..."). The CLI and the Python API both build the
     config through this one method.
   - :meth:`Family.fit`: train and return a :class:`mrtrain.fitted.FittedModel`.
   - :meth:`Family.add_options`: its ``mrtrain train`` options (the CLI builds its parser from them; an
     option's ``dest`` is the parameter's name, and ``mrtrain train`` passes every parameter it parsed).
   - :meth:`Family.summary`: the ``mrtrain inspect`` lines of its models (None: the generic table).
   - A family whose checkpoints follow their own schema overrides :meth:`Family.validate_checkpoint` and
     :meth:`Family.load` (reading a model directory back), and :meth:`Family.inspect_result` and
     :meth:`Family.evaluate_result` if its fitted model is not a :class:`mrtrain.fitted.FittedModel`
     (the tree ensembles: :mod:`mrtrain.families.tree_family`, which also trains from the command line by
     its own ``train_command``). :func:`mrtrain.model_dir.read_model`
     reads a directory's newest valid checkpoint once and hands it to the family its settings' model
     names.
   - Optionally ``cli_refused`` (``train`` options refused when given at all), ``allreduce_refused`` (why
     ``allreduce=True`` does not apply), ``report_style`` (how ``mrtrain report`` shows its models),
     ``paths`` (parameters that may name a file: made absolute when the trainer is made), ``title`` (what
     messages call several of its models).

2. Add one line to the registry, :data:`mrtrain.families.registry.FAMILIES`.

``tests/test_families.py`` has a complete small family (the weighted mean of the labels as an intercept-only
model) written only as a test.

What ``fit(run, config)`` gets
------------------------------
``run`` is a :class:`~mrtrain.training.run.TrainingRun`, not yet open, over the opened dataset
(``run.dataset``). Check everything you can first (the dataset's labels:
:func:`mrtrain.families.checks.check_labels`; the training's size: :mod:`mrtrain.engine.memory`): nothing is
locked, launched or written yet. Then::

    with run.open(model.spec(), reducers=run.reducers(vector_length, "statistics")):
        checkpoint, resumed = run.resume(settings, RESUME_KEYS)   # the settings check
        with run.allreduce() as session:                        # None without allreduce=True
            vector = run.passes.sum_vector(MRMyJob, thetas, task)  # one pass: a job, or the session
            ...
            run.save(number, arrays, training_meta(settings, iteration, passes, history, ...))
            if run.callback is not None:
                run.callback(progress)                          # a mrtrain.engine.loop.Progress

- ``run.open`` takes the checkpoint directory's lock and starts the background checkpoint writer; leaving
  it waits for the last write, closes the launcher and releases the lock. ``run.launcher`` (made on first
  use) runs any other job (``run.launcher.run(job, thetas, task, ["--map-only"])`` for per-partition
  records).
- ``run.resume(settings, keys, warm_start=None|bool, layout_keys=(), single=False, hint=None)``: the newest
  valid checkpoint and whether this run continues it; a checkpoint of other ``keys`` raises
  :class:`~mrtrain.training.resume.SettingsMismatchError` (or, with ``warm_start=True``, is started from).
- ``run.save(number, arrays, meta)`` checks the lock is still held and writes ``ckpt-<number>`` in the
  background (nothing without a checkpoint directory; ``run.saving`` says which).
- ``settings`` is the JSON dict recorded in every checkpoint (``model``, ``n_features``, ``classes``,
  ``data``, ``data_checksum``, ... and the family's own); the meta and arrays follow the checkpoint schema,
  :mod:`mrtrain.training.checkpoint_schema` (``training_meta`` builds the meta), which
  :meth:`mrtrain.fitted.FittedModel.load` reads back for ``evaluate``, ``predict`` and ``inspect``.
- An optimizer family calls :func:`mrtrain.training.optimizer_fit.fit_with_optimizer` instead (the GLMs,
  the MLP: what differs between optimizers is a property of the optimizer class: ``handles_l1``,
  ``affine_invariant``, ``max_params``, ``offers_single_step``, ``hessian_points``).
"""

from mrtrain.fitted import FittedModel
from mrtrain.inference import load_inference
from mrtrain.training.checkpoint_schema import validate_checkpoint


class Config:
    """A family's validated configuration: ``model`` and one attribute per parameter the family reads."""

    def __init__(self, model, **values):
        self.model = model
        self.__dict__.update(values)

    def __repr__(self):
        items = ", ".join(f"{key}={value!r}" for key, value in self.__dict__.items())
        return f"Config({items})"


class Family:
    """One family of models (see the module docstring for how to add one)."""

    #: The ``model=`` names this family trains.
    models = ()
    #: ``{name: default}`` of the keyword arguments of :class:`mrtrain.Trainer` this family reads.
    parameters = {}
    #: ``(options, what the family lacks)``: ``train`` options (dests) the family refuses when given at all
    #: ("The 'model' parameter 'kmeans' is trained by Lloyd passes and has no ..."), or None.
    cli_refused = None
    #: What messages call several models of the family (``"the naive Bayes models [...]"``).
    title = ""
    #: How ``mrtrain report`` shows the family's models: ``"optimizer"`` (the objective per iteration, the
    #: coefficients), ``"statistics"`` (no iterations; the class priors) or ``"clusters"`` (the inertia per
    #: Lloyd pass; the centres) or ``"trees"`` (:mod:`mrtrain.tree_report`: feature importance, the
    #: validation loss per round).
    report_style = "optimizer"
    #: The parameters that may name a file (the trainer makes a relative one absolute when it is made).
    paths = ()
    #: Why the family cannot train with ``allreduce=True`` (e.g. ``"one pass"``), or None if it can.
    allreduce_refused = None
    #: Whether the family trains on a dataset with missing values (``ingest --keep-missing``); one that does
    #: not refuses it in one line naming ``--impute`` (:func:`mrtrain.storage.dataset.refuse_missing`).
    takes_missing = False
    #: ``mrtrain train`` of a family whose command line does not go through :class:`mrtrain.Trainer`'s
    #: generic options: ``train_command(args, print_result)`` trains and shows the result, or None.
    train_command = None

    def config(self, model, values):
        """Validate ``values`` (every registered parameter, defaults filled in) for ``model`` and return the
        family's :class:`Config`.

        Raises
        ------
        ValueError
            Naming the parameter, what is allowed and what was given.
        """
        return Config(model, **{name: values[name] for name in self.parameters})

    def add_options(self, groups):
        """Add the family's ``mrtrain train`` options (``dest`` the parameter's name) to ``groups``, a
        :class:`mrtrain.cli_types.OptionGroups` (titles: :mod:`mrtrain.families.options`)."""

    def summary(self, result):
        """The few lines ``mrtrain inspect`` prints for a model directory's ``to_dict`` result, or None for
        the generic ones (coefficients and intercepts)."""
        return None

    def validate_checkpoint(self, checkpoint):
        """Refuse (:class:`~mrtrain.storage.errors.CheckpointError`, naming the file and field) a checkpoint
        of this family's model that its :meth:`load` cannot read: the checkpoint schema,
        :func:`mrtrain.training.checkpoint_schema.validate_checkpoint`."""
        validate_checkpoint(checkpoint)

    def load(self, checkpoint):
        """The fitted model in ``checkpoint`` (one that passed :meth:`validate_checkpoint`)."""
        return FittedModel.from_checkpoint(checkpoint)

    def evaluate_result(self, fitted, metrics):
        """``mrtrain evaluate``'s result for ``fitted``'s ``metrics``."""
        return {"model": fitted.model.kind, "classes": fitted.classes_,
                **({} if fitted.class_names_ is None else {"class_names": fitted.class_names_}),
                "metrics": metrics}

    def inspect_result(self, fitted, directory, checkpoints):
        """``mrtrain inspect``'s result for ``fitted``, loaded from ``directory`` whose checkpoints are
        numbered ``checkpoints``: the model, the checkpoints, the objective's history and any coefficient
        inference saved with the newest checkpoint."""
        result = fitted.to_dict()
        result["checkpoints"] = checkpoints
        result["history"] = fitted.history_
        table = load_inference(directory, checkpoints[-1]) if checkpoints else None
        if table is not None:
            result["inference"] = table
        return result

    def fit(self, run, config):
        """Train on ``run.dataset`` inside ``run`` (a :class:`~mrtrain.training.run.TrainingRun`, not yet
        open) and return the :class:`~mrtrain.fitted.FittedModel`."""
        raise NotImplementedError
