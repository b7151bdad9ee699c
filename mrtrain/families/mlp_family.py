"""The MLP family: a multilayer perceptron classifier (:mod:`mrtrain.engine.mlp`) trained by L-BFGS or
gradient descent from seeded Glorot-uniform weights (:mod:`mrtrain.training.optimizer_fit`), one network per
run."""

from types import SimpleNamespace

from mrtrain.engine.grid import is_grid
from mrtrain.engine.mlp import check_activation, check_layers
from mrtrain.engine.models import NETWORK_MODELS, make_model
from mrtrain.engine.params import check_int
from mrtrain.families.checks import check_labels
from mrtrain.families.family import Config, Family
from mrtrain.families.optimizing import OPTIMIZER_PARAMETERS, check_optimizer_values
from mrtrain.training.optimizer_fit import LoopOptions, fit_with_optimizer


class MLPFamily(Family):
    """The multilayer perceptron: one optimizer loop over a non-convex objective, no Hessian, no l1."""

    models = NETWORK_MODELS
    parameters = {**OPTIMIZER_PARAMETERS, "layers": None, "activation": None, "seed": 0}

    def config(self, model, values):
        own = {name: values[name] for name in self.parameters}
        if is_grid(SimpleNamespace(**values)):
            raise ValueError("Model 'mlp' trains one network per run: penalty lists, 'reg_path', 'cv' and "
                             f"'validation_fraction' are not offered for it. Got l2={values['l2']!r}, "
                             f"l1={values['l1']!r}, reg_path={values['reg_path']!r}, cv={values['cv']!r}, "
                             f"validation_fraction={values['validation_fraction']!r} instead.")
        check_optimizer_values(own, grid=False)
        if own["layers"] is not None:
            check_layers(own["layers"])
        if own["activation"] is not None:
            check_activation(own["activation"])
        check_int("seed", own["seed"], minimum=0)
        if own["l1"] != 0:
            raise ValueError(f"The 'l1' parameter of model 'mlp' must be 0 (it trains with lbfgs or gd; use "
                             f"l2). Got {own['l1']!r} instead.")
        if own["optimizer"] not in (None, "lbfgs", "gd"):
            raise ValueError(f"The 'optimizer' parameter of model 'mlp' must be 'lbfgs' or 'gd' (it has no "
                             f"Hessian sums and no l1 penalty). Got {own['optimizer']!r} instead.")
        for name, default in (("standardize", False), ("init", "zeros"), ("fit_intercept", True)):
            if own[name] != default:
                raise ValueError(f"The {name!r} parameter does not apply to model 'mlp' (seeded initial "
                                 f"weights, a bias in every unit); leave it at {default!r}. Got "
                                 f"{own[name]!r} instead.")
        return Config(model, **own)

    def fit(self, run, config):
        dataset = run.dataset
        classes = check_labels(dataset, config.model, classifier=True)
        model = make_model(config.model, dataset.n_features, classes=classes,
                           fit_intercept=config.fit_intercept,
                           layers=config.layers, activation=config.activation)
        loop = LoopOptions(
            ("layers", list(config.layers) if config.layers is not None else None),
            preconditionable=False, single_step=False,
            settings={"layers": list(model.layers), "activation": model.activation, "seed": config.seed},
        )
        return fit_with_optimizer(run, config, model, classes, loop)
