"""The MLP family: a multilayer perceptron classifier (:mod:`mrtrain.engine.mlp`) trained by L-BFGS or
gradient descent from seeded Glorot-uniform weights (:mod:`mrtrain.training.optimizer_fit`), one network per
run."""

from types import SimpleNamespace

import numpy as np

from mrtrain.cli_types import layer_sizes
from mrtrain.engine.grid import is_grid
from mrtrain.engine.mlp import ACTIVATIONS, check_activation, check_layers
from mrtrain.engine.models import NETWORK_MODELS
from mrtrain.engine.params import check_int
from mrtrain.engine.registry import make_model
from mrtrain.families.checks import check_labels
from mrtrain.families.family import Config, Family
from mrtrain.families.optimizing import OPTIMIZER_PARAMETERS, check_optimizer_values
from mrtrain.families.options import MODEL, add_optimizer_options, add_seed_option
from mrtrain.names import class_texts
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

    def add_options(self, groups):
        add_seed_option(groups)
        groups.add(MODEL, "--layers", type=layer_sizes, metavar="N[,N...]",
                   help="mlp: hidden layer sizes, e.g. 64,32 (softmax output over the classes). Default: 100")
        groups.add(MODEL, "--activation", choices=ACTIVATIONS,
                   help="mlp: activation of the hidden layers. Default: tanh")
        add_optimizer_options(groups)

    def summary(self, result):
        """An MLP's ``inspect`` result: its layers, training and each layer's weight and bias sizes."""
        settings = result["settings"]
        checkpoints = result["checkpoints"]
        history = result["history"]
        status = "converged" if result["converged"] else "stopped before converging"
        sizes = [settings["n_features"], *settings["layers"], len(result["classes"])]
        lines = [
            f"model        mlp, layers {' -> '.join(map(str, sizes))} ({settings['activation']} hidden, "
            f"softmax output over classes {', '.join(class_texts(result))}), seed {settings['seed']}",
            f"trained on   {settings['data']} (dataset checksum {settings['data_checksum'][:12]})",
            f"optimizer    {settings['optimizer']}, l2 {settings['l2']:g}",
            f"result       {status} after {result['iterations']} iterations ({result['passes']} passes): "
            f"{result['stop_reason']}",
            f"objective    {result['objective']:.12g}" + (f" (start {history[0]:.12g})" if history else ""),
            f"checkpoints  {len(checkpoints)}" + (f" (iterations {checkpoints[0]}-{checkpoints[-1]})"
                                                 if checkpoints else ""),
            "layers (weights in x out, largest |weight|, largest |bias|):",
        ]
        layers = zip(result["coefficients"], result["intercept"], strict=True)
        for index, (weights, biases) in enumerate(layers):
            weights = np.asarray(weights, dtype=float)
            lines.append(f"  {index + 1}  {weights.shape[0]} x {weights.shape[1]}  "
                         f"{np.abs(weights).max():.6g}  {np.abs(np.asarray(biases, dtype=float)).max():.6g}")
        return "\n".join(lines)

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
