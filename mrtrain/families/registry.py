"""The registry of model families: one line per family (:mod:`mrtrain.families.family` says how to add one).

:class:`mrtrain.Trainer` looks a ``model=`` name up here (:func:`family_of`) and accepts the keyword
arguments of every registered family (:func:`parameter_defaults`).
"""

from mrtrain.engine.params import check_choice
from mrtrain.families.glm_family import GLMFamily
from mrtrain.families.kmeans_family import KMeansFamily
from mrtrain.families.mlp_family import MLPFamily
from mrtrain.families.naive_bayes_family import NaiveBayesFamily
from mrtrain.families.tree_family import TreeFamily

#: Every family, one line each.
FAMILIES = (
    GLMFamily(),
    NaiveBayesFamily(),
    KMeansFamily(),
    MLPFamily(),
    TreeFamily(),
)


def models():
    """Every ``model=`` name, in the registry's order."""
    return tuple(model for family in FAMILIES for model in family.models)


def family_of(model):
    """The family that trains ``model``.

    Raises
    ------
    ValueError
        Naming the models offered.
    """
    check_choice("model", model, models())
    return next(family for family in FAMILIES if model in family.models)


def parameter_defaults():
    """``{name: default}`` of every registered family's parameters (a name shared by families has one
    default)."""
    defaults = {}
    for family in FAMILIES:
        for name, default in family.parameters.items():
            defaults.setdefault(name, default)
    return defaults


def path_parameters():
    """The parameters that may name a file (a relative one is made absolute when the trainer is made)."""
    return {name for family in FAMILIES for name in family.paths}


def models_taking(name):
    """The models whose family takes parameter ``name``, in the registry's order."""
    return [model for family in FAMILIES if name in family.parameters for model in family.models]


def owners(name):
    """The models that take parameter ``name``, as a message says them: ``"model 'kmeans'"``, ``"the naive
    Bayes models [...]"``, joined by ``" and "``."""
    said = []
    for family in FAMILIES:
        if name in family.parameters:
            if len(family.models) == 1:
                said.append(f"model {family.models[0]!r}")
            else:
                said.append(f"the {family.title + ' ' if family.title else ''}models {list(family.models)}")
    return " and ".join(said)


def check_applies(family, model, values):
    """Refuse (ValueError) a value other than its default for a parameter ``family`` does not take."""
    defaults = parameter_defaults()
    for name, value in values.items():
        if name in family.parameters:
            continue
        default = defaults[name]
        if not _is_default(value, default):
            raise ValueError(f"The {name!r} parameter applies to {owners(name)} only. Got {name}={value!r} "
                             f"for model {model!r} instead.")


def _is_default(value, default):
    if default is None:
        return value is None
    try:
        return bool(value == default)
    except (TypeError, ValueError):  # an array compared to a scalar
        return False
