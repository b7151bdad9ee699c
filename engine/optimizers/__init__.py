"""Optimizers: gradient descent, L-BFGS, Newton and OWL-QN (for l1 penalties), each with serializable state.

See :mod:`mrtrain.engine.optimizers.protocol` for the interface they share. Only OWL-QN handles an l1 term
(:func:`check_l1`): the others need the objective to be differentiable everywhere.
"""

from mrtrain.engine.optimizers.gd import GradientDescent
from mrtrain.engine.optimizers.lbfgs import LBFGS
from mrtrain.engine.optimizers.newton import Newton
from mrtrain.engine.optimizers.owlqn import OWLQN

OPTIMIZERS = {"gd": GradientDescent, "lbfgs": LBFGS, "newton": Newton, "owlqn": OWLQN}

#: The optimizers that minimize an objective with an l1 term.
L1_OPTIMIZERS = tuple(name for name, optimizer in OPTIMIZERS.items() if optimizer.handles_l1)


def make_optimizer(name, **options):
    """The optimizer called ``name`` (one of :data:`OPTIMIZERS`), built with ``options`` (e.g. OWL-QN's
    ``l1``) and otherwise its default settings."""
    if name not in OPTIMIZERS:
        raise ValueError(
            f"The 'optimizer' parameter must be one of {sorted(OPTIMIZERS)}. Got {name!r} instead."
        )
    return OPTIMIZERS[name](**options)


def default_optimizer(l1):
    """The optimizer used when none is named: ``"owlqn"`` when ``l1 > 0``, else ``"lbfgs"``."""
    return "owlqn" if l1 > 0 else "lbfgs"


def check_size(name, n_params):
    """Refuse optimizer ``name`` for a model of more parameters than it takes (its ``max_params``; Newton:
    :func:`~mrtrain.engine.optimizers.newton.check_model_size`).

    Raises
    ------
    ValueError
        Naming the optimizer, the limit and the optimizers without one.
    """
    if OPTIMIZERS[name].max_params is not None:
        OPTIMIZERS[name].check_size(n_params)


def check_l1(name, l1):
    """Refuse an optimizer that cannot minimize an objective with an l1 term when ``l1 > 0``.

    Raises
    ------
    ValueError
        Naming the optimizer and ``owlqn``.
    """
    if l1 > 0 and name not in L1_OPTIMIZERS:
        raise ValueError(
            f"The 'optimizer' parameter must be 'owlqn' when l1 > 0 (the l1 term is not differentiable at "
            f"0, which {name} needs; l1 = {l1!r}). Got {name!r} instead."
        )
