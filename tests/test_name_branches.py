"""Nothing outside a family's own module branches on a model's or an optimizer's name, read from the
source of ``mrtrain/``, ``engine/``, ``storage/`` and ``mr_jobs/``.

A name branch is a comparison (``==``, ``!=``, ``in``, ``not in``, ``is``, a ``match`` case) one of whose
sides is a model or optimizer name (:data:`mrtrain.engine.models.MODELS`,
:data:`mrtrain.engine.optimizers.OPTIMIZERS`, the tree ensembles') written as a string, a tuple, list or
set holding one, or a module-level constant that holds one (found by reading every module:
``KMEANS = "kmeans"``, ``NAIVE_BAYES_MODELS = (...)``, and constants built from those). Asking whether a
name is registered at all (``name in MODELS``, ``name in OPTIMIZERS``) is a lookup, not a branch. What
varies between models and optimizers is a property of the model, its loss or the optimizer.

:data:`KNOWN_BRANCHES` counts, per file, the branches the tree still has; the goal is an empty table: a
branch that removes some lowers its count (a count that no longer matches fails, as a new branch does).
:data:`FAMILY_MODULES` are the family definitions, which may compare their own names.
"""

import ast
from pathlib import Path

from mrtrain.engine.models import MODELS
from mrtrain.engine.optimizers import OPTIMIZERS

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("engine", "mr_jobs", "mrtrain", "storage")
#: The tree ensembles' models (``mrtrain.tree_training.TREE_MODELS``, not in the engine's registry).
TREE_MODEL_NAMES = ("gbt", "random-forest")
#: The registries (models, optimizers, the tree ensembles' models and objectives): membership in the whole
#: of one is a lookup.
REGISTRIES = frozenset({"MODELS", "OPTIMIZERS", "TREE_MODELS", "OBJECTIVES"})
#: Files (relative to the repository) that define a family and may compare its names.
FAMILY_MODULES = frozenset({
    "mrtrain/families/glm_family.py", "mrtrain/families/glm_grid.py", "mrtrain/families/mlp_family.py",
    "mrtrain/families/naive_bayes_family.py", "mrtrain/families/kmeans_family.py",
    "mrtrain/families/tree_family.py", "mrtrain/tree_models.py",
    # The tree ensembles' config (TreeConfig, their objectives per model) and fit loop: their family's
    # definition, which tree_family.py registers.
    "mrtrain/tree_training.py",
})
#: ``{file: number of name branches}`` the tree still has.
KNOWN_BRANCHES = {}


def sources(root):
    """``{path relative to root: parsed module}`` of every module of :data:`FOLDERS` below ``root``."""
    return {path.relative_to(root).as_posix(): ast.parse(path.read_text(), filename=str(path))
            for folder in FOLDERS for path in sorted((root / folder).rglob("*.py"))}


def name_constants(trees, names):
    """The module-level constants of ``trees`` (UPPER_CASE names) whose value holds one of ``names``,
    directly or through another such constant, less :data:`REGISTRIES`."""
    found = set()

    def holds(value):
        return any((isinstance(node, ast.Constant) and node.value in names)
                   or (isinstance(node, ast.Name) and node.id in found)
                   or (isinstance(node, ast.Attribute) and node.attr in found) for node in ast.walk(value))

    grown = True
    while grown:
        grown = False
        for tree in trees.values():
            for node in tree.body:
                if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        if (isinstance(target, ast.Name) and target.id.isupper() and target.id not in found
                                and target.id not in REGISTRIES and holds(node.value)):
                            found.add(target.id)
                            grown = True
    return found


def name_branches(root, names):
    """``{file: [(line, source), ...]}`` of the name branches of the modules below ``root``."""
    trees = sources(root)
    constants = name_constants(trees, names)

    def is_name(node):
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str) and node.value in names
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return any(is_name(element) for element in node.elts)
        if isinstance(node, ast.Name):
            return node.id in constants
        if isinstance(node, ast.Attribute):
            return node.attr in constants
        return False

    found = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(map(is_name, [node.left, *node.comparators])):
                found.setdefault(path, []).append((node.lineno, ast.unparse(node)))
            elif isinstance(node, ast.match_case) and any(
                    isinstance(pattern, ast.MatchValue) and is_name(pattern.value)
                    for pattern in ast.walk(node.pattern)):
                found.setdefault(path, []).append((node.pattern.lineno, ast.unparse(node.pattern)))
    return {path: sorted(branches) for path, branches in found.items()}


def test_no_name_branch_but_the_known_ones():
    names = set(MODELS) | set(OPTIMIZERS) | set(TREE_MODEL_NAMES)
    found = {path: branches for path, branches in name_branches(ROOT, names).items()
             if path not in FAMILY_MODULES}
    changed = {path: [f"{path}:{line}: {text}" for line, text in found.get(path, [])]
               for path in sorted(set(found) | set(KNOWN_BRANCHES))
               if len(found.get(path, [])) != KNOWN_BRANCHES.get(path, 0)}
    assert changed == {}, "make it a property of the model, loss or optimizer (or update KNOWN_BRANCHES)"


def test_the_checker_finds_literals_tuples_constants_and_match_cases(tmp_path):
    for folder in FOLDERS:
        (tmp_path / folder).mkdir()
    (tmp_path / "engine" / "kinds.py").write_text(
        'KMEANS = "kmeans"\nBAYES = ("gaussian-nb", "bernoulli-nb")\nBOTH = BAYES + (KMEANS,)\n'
        'MODELS = ("kmeans", "gaussian-nb", "bernoulli-nb", "linear")\nACTIVATIONS = ("relu",)\n')
    (tmp_path / "mrtrain" / "user.py").write_text(
        "from mrtrain.engine import kinds\nfrom mrtrain.engine.kinds import BOTH, MODELS\n\n\n"
        "def f(model, name, activation):\n"
        "    if model.kind == 'linear' or name in ('newton', 'gd'):\n"
        "        return 1\n"
        "    if model.kind != kinds.KMEANS and model.kind not in BOTH:\n"
        "        return 2\n"
        "    if name not in MODELS or activation == 'relu' or activation in kinds.ACTIVATIONS:\n"
        "        return 3\n"
        "    match name:\n"
        "        case 'lbfgs':\n"
        "            return 4\n")
    names = {"kmeans", "gaussian-nb", "bernoulli-nb", "linear", "newton", "gd", "lbfgs"}
    assert name_branches(tmp_path, names) == {"mrtrain/user.py": [
        (6, "model.kind == 'linear'"), (6, "name in ('newton', 'gd')"), (8, "model.kind != kinds.KMEANS"),
        (8, "model.kind not in BOTH"), (13, "'lbfgs'")]}
