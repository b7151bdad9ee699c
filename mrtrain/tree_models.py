"""The tree ensembles' models (``gbt``, ``random-forest``) and what sets them apart, declared by their family
(:mod:`mrtrain.families.tree_family`, :mod:`mrtrain.tree_training`): the modules that serve the trees ask
these functions instead of comparing model names. It imports nothing, so any tree module may import it.
"""

#: The tree ensembles' models.
TREE_MODELS = ("gbt", "random-forest")
#: Objectives of each tree model (the first is the default for class labels, the second for numbers).
GBT_OBJECTIVES = ("logistic", "softmax", "squared_error", "poisson")
FOREST_OBJECTIVES = ("classification", "regression")


def grows_forest(model):
    """Whether ``model`` grows independent trees (a random forest: each tree on its own bootstrap sample,
    leaves at their means, no penalty) rather than boosting rounds; the family's own answer, so the modules
    that serve its models ask it instead of comparing names."""
    return model == "random-forest"


def takes_l2(model):
    """Whether ``model`` takes ``l2`` (a penalty on leaf values: gbt's, not the forest's)."""
    return not grows_forest(model)
