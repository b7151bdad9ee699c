"""The JSON export of a tree ensemble, and reading it back (an exact round trip).

Format (version 1)::

    {
      "format": "mrtrain-trees",
      "version": 1,
      "objective": "logistic",            // or null: what the margins mean (.objectives)
      "n_features": 28,
      "feature_names": ["x0", ...],       // or null
      "base_score": [-0.12],              // initial margin of each output
      "trees": [
        {"output": 0,                     // the margin output this tree adds to
         "nodes": [                       // node 0 is the root; "node" is the index children refer to
           {"node": 0, "feature": 3, "threshold": 0.5, "bin": 7, "default_left": true,
            "left": 1, "right": 2, "gain": 12.5, "value": -0.01, "hess": 250.0, "weight": 1000.0},
           {"node": 1, "leaf": 0.2, "hess": 120.0, "weight": 480.0},
           ...]}
      ]
    }

A row goes to ``left`` when its value of ``feature`` is ``<= threshold``, to ``right`` when it is greater,
and to ``left`` if ``default_left`` else ``right`` when it is missing (NaN); ``bin`` is the same test on
the training bins (local bin ``<= bin``). A leaf's ``leaf`` is added to the margin of output ``output``;
the margin of a row is ``base_score`` plus the leaves it reaches, tree after tree.

Vector leaves (a random forest of K > 2 classes, objective ``onehot_squared_error``): every tree has
``"output": -1`` (all outputs), and its nodes' ``leaf`` and ``value`` are lists of K numbers, the class
frequencies of the node's bootstrap rows divided by the number of trees, added to outputs ``0 … K−1``: the
margin of a row is then its class probabilities (before normalising to sum 1, which only rounding needs).
Files of one-number leaves are unchanged, so the version stays 1. ``gain`` is the split's
gain (:mod:`.splits`), ``hess``/``weight`` the node's Hessian and weight sums, an inner node's ``value`` the
value it had as a leaf. Numbers are written with Python's shortest round-trip ``repr``, so reading the
file gives back the same bits (infinite thresholds, possible only when the data has infinities, are
written as ``Infinity``/``-Infinity``).
"""

import json

import numpy as np

from mrtrain.engine.trees.tree import ALL_OUTPUTS, LEAF, Ensemble, Tree

#: The ``format`` and ``version`` fields.
FORMAT, VERSION = "mrtrain-trees", 1


def _value(value):
    """A node's value as JSON: a number, or a list of K numbers (vector leaves)."""
    return float(value) if np.ndim(value) == 0 else [float(v) for v in value]


def _node(tree, i):
    common = {"hess": float(tree.hess[i]), "weight": float(tree.weight[i])}
    if tree.feature[i] == LEAF:
        return {"node": i, "leaf": _value(tree.value[i]), **common}
    return {"node": i, "feature": int(tree.feature[i]), "threshold": float(tree.threshold[i]),
            "bin": int(tree.bin[i]), "default_left": bool(tree.default_left[i]), "left": int(tree.left[i]),
            "right": int(tree.right[i]), "gain": float(tree.gain[i]), "value": _value(tree.value[i]),
            **common}


def to_json(ensemble, objective=None, feature_names=None):
    """The ensemble as a JSON-able dict in the format of the module docstring."""
    if feature_names is not None and len(feature_names) != ensemble.n_features:
        raise ValueError(f"The export needs {ensemble.n_features} feature names. Got {len(feature_names)} "
                         "instead.")
    trees = []
    for t in range(ensemble.n_trees):
        tree = ensemble.tree(t)
        trees.append({"output": int(ensemble.tree_output[t]),
                      "nodes": [_node(tree, i) for i in range(tree.n_nodes)]})
    return {"format": FORMAT, "version": VERSION, "objective": objective, "n_features": ensemble.n_features,
            "feature_names": None if feature_names is None else [str(n) for n in feature_names],
            "base_score": [float(x) for x in ensemble.base_score], "trees": trees}


def dumps(ensemble, objective=None, feature_names=None, **kwargs):
    """The ensemble as a JSON string (``kwargs`` go to :func:`json.dumps`)."""
    return json.dumps(to_json(ensemble, objective, feature_names), **kwargs)


def _tree(nodes, where):
    if [node.get("node") for node in nodes] != list(range(len(nodes))):
        raise ValueError(f"{where}'s nodes must be numbered 0, 1, … in order.")
    columns = {name: [] for name in ("feature", "bin", "threshold", "default_left", "left", "right", "value",
                                     "gain", "hess", "weight")}
    for node in nodes:
        leaf = "leaf" in node
        for name, default in (("feature", LEAF), ("bin", -1), ("threshold", 0.0), ("default_left", False),
                              ("left", LEAF), ("right", LEAF), ("gain", 0.0)):
            columns[name].append(default if leaf else node[name])
        columns["value"].append(node["leaf"] if leaf else node["value"])
        columns["hess"].append(node["hess"])
        columns["weight"].append(node["weight"])
    return Tree.from_lists(**columns)


def from_json(document):
    """The :class:`.tree.Ensemble` of a dict in the export format (or a JSON string of one)."""
    if isinstance(document, str):
        document = json.loads(document)
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise ValueError(f"A tree export must have format {FORMAT!r} and version {VERSION}. Got "
                         f"{document.get('format')!r} version {document.get('version')!r} instead.")
    try:
        outputs = [tree["output"] for tree in document["trees"]]
        width = len(document["base_score"])
        for t, (tree, output) in enumerate(zip(document["trees"], outputs, strict=True)):
            vector = output == ALL_OUTPUTS
            for node in tree["nodes"]:
                value = node["leaf"] if "leaf" in node else node["value"]
                if not ((isinstance(value, list) and len(value) == width) if vector
                        else not isinstance(value, list)):
                    what = f"lists of {width} numbers" if vector else "numbers"
                    raise ValueError(f"Tree {t} of output {output} must have leaf values that are {what}.")
        trees = [_tree(tree["nodes"], f"tree {t}") for t, tree in enumerate(document["trees"])]
        return Ensemble.from_trees(trees, np.asarray(outputs, dtype=np.int64), document["base_score"],
                                   document["n_features"])
    except KeyError as missing:
        raise ValueError(f"A tree export is missing the field {missing}.") from None
