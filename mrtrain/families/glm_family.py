"""The GLM family: linear, logistic, softmax and Poisson regression and the linear SVM, trained by an
optimizer over their convex penalized objective (:mod:`mrtrain.training.optimizer_fit`), or as a grid of
penalties in shared passes (:mod:`mrtrain.families.glm_grid`)."""

from types import SimpleNamespace

from mrtrain.engine.grid import grid_spec, is_grid
from mrtrain.engine.models import GLM_LOSSES, GLM_MODELS
from mrtrain.engine.registry import make_model
from mrtrain.families.checks import check_labels
from mrtrain.families.family import Config, Family
from mrtrain.families.glm_grid import fit_grid
from mrtrain.families.optimizing import OPTIMIZER_PARAMETERS, check_optimizer_values
from mrtrain.families.options import add_grid_options, add_optimizer_options
from mrtrain.training.optimizer_fit import LoopOptions, fit_with_optimizer

#: The parameters of a grid of penalties (:mod:`mrtrain.families.glm_grid`) with their defaults.
GRID_PARAMETERS = {"reg_path": None, "reg_path_ratio": None, "elastic_net": None, "cv": None,
                   "validation_fraction": None, "n_iter_no_change": 5, "fold_seed": 0}


class GLMFamily(Family):
    """The generalized linear models (and the linear SVM): one optimizer loop, or a grid of them."""

    models = GLM_MODELS
    parameters = {**OPTIMIZER_PARAMETERS, **GRID_PARAMETERS}

    def config(self, model, values):
        own = {name: values[name] for name in self.parameters}
        grid = is_grid(SimpleNamespace(**own))
        if grid:
            grid_spec(SimpleNamespace(**own))
        check_optimizer_values(own, grid=grid)
        return Config(model, **own)

    def add_options(self, groups):
        add_optimizer_options(groups)
        add_grid_options(groups)

    def fit(self, run, config):
        dataset = run.dataset
        classes = check_labels(dataset, config.model, classifier=GLM_LOSSES[config.model].is_classifier)
        try:
            model = make_model(config.model, dataset.n_features, classes=classes,
                               fit_intercept=config.fit_intercept)
        except ValueError as error:  # a binary model given string labels: name them, not their codes
            if dataset.class_names is None:
                raise
            raise ValueError(f"{dataset.uri}: {str(error).rstrip('.')} (the class names "
                             f"{dataset.class_names}).") from None
        if is_grid(config):
            return fit_grid(run, config, model, classes)
        return fit_with_optimizer(run, config, model, classes, LoopOptions(("model", config.model)))
