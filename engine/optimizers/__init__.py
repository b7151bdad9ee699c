"""Optimizers: gradient descent, L-BFGS and Newton, each with serializable state.

See :mod:`engine.optimizers.base` for the protocol they share.
"""

from engine.optimizers.gd import GradientDescent
from engine.optimizers.lbfgs import LBFGS
from engine.optimizers.newton import Newton

OPTIMIZERS = {"gd": GradientDescent, "lbfgs": LBFGS, "newton": Newton}


def make_optimizer(name):
    """The optimizer called ``name`` (one of :data:`OPTIMIZERS`), with its default settings."""
    if name not in OPTIMIZERS:
        raise ValueError(
            f"The 'optimizer' parameter must be one of {sorted(OPTIMIZERS)}. Got {name!r} instead."
        )
    return OPTIMIZERS[name]()
