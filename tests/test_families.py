"""The model-family interface: a family written only here trains through the registry and a TrainingRun;
the registry covers every model once; the optimizers' properties say what the names used to."""

import json

import numpy as np
import pytest

from mrtrain import cli
from mrtrain.engine.models import MODELS, PartialSums
from mrtrain.engine.optimizers import L1_OPTIMIZERS, OPTIMIZERS, make_optimizer
from mrtrain.engine.optimizers.base import state_to_record
from mrtrain.engine.registry import make_model
from mrtrain.families import registry
from mrtrain.families.family import Config, Family
from mrtrain.families.options import MODEL
from mrtrain.fitted import FittedModel
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.storage.checkpoint import list_checkpoints
from mrtrain.trainer import SettingsMismatchError, Trainer
from mrtrain.training.optimizer_fit import runs_preconditioned
from mrtrain.tree_training import TREE_MODELS
from tests.datasets import write


class InterceptOnlyFamily(Family):
    """The weighted mean of the labels, as an intercept-only linear model: one gradient pass at zero
    (the squared loss's gradient in the intercept is ``-Σ s·y``), saved as checkpoint 1."""

    models = ("intercept-only",)
    parameters = {"shift": 0.0}

    def config(self, model, values):
        if not np.isfinite(values["shift"]):
            raise ValueError(f"The 'shift' parameter must be finite. Got {values['shift']!r} instead.")
        return Config(model, shift=float(values["shift"]))

    def add_options(self, groups):
        groups.add(MODEL, "--shift", type=float, default=0.0, help="intercept-only: added to the mean")

    def fit(self, run, config):
        dataset = run.dataset
        model = make_model("linear", dataset.n_features)
        # Recorded as a linear model (its evaluate, predict and inspect), with a gd state at the result.
        settings = {"model": "linear", "optimizer": "gd", "l2": 0.0, "l1": 0.0, "fit_intercept": True,
                    "n_features": dataset.n_features, "classes": None, "data": dataset.uri,
                    "data_checksum": dataset.checksum, "shift": config.shift}
        with run.open(model.spec(), reducers=run.reducers(model.n_params + 2, "gradient")):
            checkpoint, resumed = run.resume(settings, ("model", "n_features", "data_checksum", "shift"))
            if checkpoint is not None:
                return FittedModel.load(run.directory)
            with run.allreduce():
                vector = run.passes.sum_vector(MRGradient, np.zeros((1, model.n_params)), {"hessian": 0})
            sums = PartialSums.from_vector(vector, 1, model.n_params, 0)
            theta = np.zeros(model.n_params)
            theta[-1] = -sums.grad[0, -1] / sums.weight + config.shift
            arrays, scalars = state_to_record(make_optimizer("gd").init(theta))
            meta = {"settings": settings, "iteration": 1, "passes": 1, "history": [], "rejected": 0,
                    "state_scalars": scalars, "stop_reason": "one pass", "converged": True,
                    "checkpoint_base": 0, "warm_start": None}
            run.save(1, {f"state.{name}": value for name, value in arrays.items()}, meta)
        return FittedModel(model, theta, l2=0.0, iterations=1, passes=1, history=[], converged=True,
                           stop_reason="one pass", settings=settings)


@pytest.fixture
def with_test_family(monkeypatch):
    """The registry with the test family added: one line."""
    monkeypatch.setattr(registry, "FAMILIES", (*registry.FAMILIES, InterceptOnlyFamily()))


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 2))
    y = rng.normal(size=40) * 3 + 5
    w = rng.uniform(0.5, 2.0, size=40)
    return write(tmp_path / "d", X, y, w), y, w


def test_a_family_written_here_trains_through_the_registry_and_resumes(with_test_family, data, tmp_path):
    uri, y, w = data
    checkpoints = str(tmp_path / "ckpt")
    fitted = Trainer("intercept-only", shift=0.5, checkpoint_dir=checkpoints).fit(uri)
    # One float64 sum per partition, added in order: the weighted mean to rounding.
    assert fitted.intercept_ == pytest.approx(np.average(y, weights=w) + 0.5, rel=1e-13)
    assert [number for number, _ in list_checkpoints(checkpoints)] == [1]
    again = Trainer("intercept-only", shift=0.5, checkpoint_dir=checkpoints).fit(uri)  # resumed, no pass
    assert again.intercept_ == fitted.intercept_
    with pytest.raises(SettingsMismatchError, match=r"shift: checkpoint has 0\.5, this run has 1\.0"):
        Trainer("intercept-only", shift=1.0, checkpoint_dir=checkpoints).fit(uri)


def test_the_family_validates_its_own_parameters_and_others_refuse_them(with_test_family, data):
    uri, _, _ = data
    with pytest.raises(ValueError, match="The 'shift' parameter must be finite"):
        Trainer("intercept-only", shift=float("nan")).fit(uri)
    with pytest.raises(ValueError, match=r"The 'shift' parameter applies to model 'intercept-only' only\. "
                                         r"Got shift=2\.0 for model 'linear' instead\."):
        Trainer("linear", shift=2.0).fit(uri)
    with pytest.raises(ValueError, match=r"The 'l2' parameter applies to .* Got l2=1\.0 for model "
                                         r"'intercept-only' instead\."):
        Trainer("intercept-only", l2=1.0).fit(uri)
    # A family of several models without a title is "the models [...]" (was "the  models", two spaces).
    with pytest.raises(ValueError, match=r"The 'max_iter' parameter applies to the models \['linear', "):
        Trainer("gbt", max_iter=5).fit(uri)
    with pytest.raises(TypeError, match="unexpected keyword argument 'shfit'"):
        Trainer("intercept-only", shfit=1.0)


def test_the_command_line_takes_the_family_and_its_options(with_test_family, data, capsys):
    uri, y, w = data
    assert "--shift SHIFT" in cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert cli.main(["train", uri, "--model", "intercept-only", "--shift", "0.25", "--runner", "inline",
                     "--json", "--no-metrics", "-q"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["intercept"] == pytest.approx(np.average(y, weights=w) + 0.25, rel=1e-13)
    assert cli.main(["train", uri, "--model", "linear", "--shift", "1", "--runner", "inline", "-q"]) == 2
    assert capsys.readouterr().err == ("mrtrain: error: The 'shift' parameter applies to model "
                                       "'intercept-only' only. Got shift=1.0 for model 'linear' instead.\n")


def test_every_model_has_one_family_and_shared_parameters_one_default():
    assert sorted(registry.models()) == sorted(MODELS + TREE_MODELS)  # the trees' models are no engine Model
    for family in registry.FAMILIES:
        for name, default in family.parameters.items():
            assert registry.parameter_defaults()[name] == default, (type(family).__name__, name)


def test_a_family_config_trains_the_same_model_as_the_keywords(data):
    uri, _, _ = data
    family = registry.family_of("linear")
    config = family.config("linear", {**registry.parameter_defaults(), "l2": 0.1, "max_iter": 5})
    by_config = Trainer("linear", config=config).fit(uri)
    by_keywords = Trainer("linear", l2=0.1, max_iter=5).fit(uri)
    assert np.array_equal(by_config.theta_, by_keywords.theta_)
    with pytest.raises(TypeError, match="either a family 'config' or the family's parameters"):
        Trainer("linear", config=config, l2=0.1)


def test_optimizer_properties_say_what_the_names_said():
    # Before: PRECONDITIONED_OPTIMIZERS = ("gd", "lbfgs", "owlqn"), L1_OPTIMIZERS = ("owlqn",), Newton's
    # size check and Hessian by name.
    assert [name for name in OPTIMIZERS if runs_preconditioned(True, name)] == ["gd", "lbfgs", "owlqn"]
    assert not any(runs_preconditioned(False, name) for name in OPTIMIZERS)
    assert not runs_preconditioned(True, "lbfgs", preconditionable=False)
    assert L1_OPTIMIZERS == ("owlqn",)
    assert [name for name in OPTIMIZERS if OPTIMIZERS[name].max_params is not None] == ["newton"]
    assert [name for name in OPTIMIZERS if OPTIMIZERS[name].offers_single_step] == ["lbfgs"]
    assert {name: OPTIMIZERS[name].hessian_points for name in OPTIMIZERS} == {
        "gd": 0, "lbfgs": 0, "newton": 1, "owlqn": 0}
