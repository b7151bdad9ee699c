"""Optimizers: gradient descent, L-BFGS and Newton, each with serializable state.

See :mod:`mrtrain.engine.optimizers.base` for the protocol they share.
"""

from mrtrain.engine.optimizers.gd import GradientDescent
from mrtrain.engine.optimizers.lbfgs import LBFGS
from mrtrain.engine.optimizers.newton import Newton

OPTIMIZERS = {"gd": GradientDescent, "lbfgs": LBFGS, "newton": Newton}


def make_optimizer(name):
    """The optimizer called ``name`` (one of :data:`OPTIMIZERS`), with its default settings."""
    if name not in OPTIMIZERS:
        raise ValueError(
            f"The 'optimizer' parameter must be one of {sorted(OPTIMIZERS)}. Got {name!r} instead."
        )
    return OPTIMIZERS[name]()
