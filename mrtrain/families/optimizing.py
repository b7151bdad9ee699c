"""What the families trained by an optimizer (the GLMs, the MLP) share: their parameters and checks."""

from mrtrain.engine.optimizers import OPTIMIZERS, check_l1
from mrtrain.engine.params import check_choice, check_int, check_number
from mrtrain.engine.standardization import check_convention
from mrtrain.engine.start_point import INITS

#: The parameters of the optimizer loop (:mod:`mrtrain.training.optimizer_fit`) with their defaults.
OPTIMIZER_PARAMETERS = {
    "optimizer": None, "l2": 0.0, "l1": 0.0, "standardize": False, "precondition": True,
    "fit_intercept": True, "max_iter": 100, "tol": 1e-8, "gtol": 1e-6, "warm_start": False, "init": "zeros",
}


def check_optimizer_values(values, *, grid):
    """Check the optimizer loop's parameters in ``values`` (``grid``: the penalties are lists, checked by
    :func:`mrtrain.engine.grid.grid_spec`).

    Raises
    ------
    ValueError
        Naming the parameter, what is allowed and what was given.
    """
    if not grid:
        check_number("l2", values["l2"], minimum=0)
        check_number("l1", values["l1"], minimum=0)
    if values["optimizer"] is not None:
        check_choice("optimizer", values["optimizer"], OPTIMIZERS)
        if not grid:
            check_l1(values["optimizer"], float(values["l1"]))
    check_choice("init", values["init"], INITS)
    check_int("max_iter", values["max_iter"], minimum=1)
    check_number("tol", values["tol"], minimum=0)
    check_number("gtol", values["gtol"], minimum=0)
    check_convention(values["standardize"])
    for name in ("warm_start", "precondition"):
        if not isinstance(values[name], bool):
            raise ValueError(f"The {name!r} parameter must be a bool. Got {values[name]!r} instead.")
