"""The command line of the tree ensembles (``mrtrain train --model gbt|random-forest``): their options,
``train``, and ``evaluate``/``predict``/``inspect`` of a tree ensemble's checkpoint directory.

The tree options default to None, so that one given to another model, or another model's option given to
a tree ensemble, is refused in one line (exit 2) before anything is read or written.
"""

import argparse
import contextlib
import json
import logging
import sys

from mrtrain.allreduce import DEFAULT_TIMEOUT
from mrtrain.allreduce_hint import command_hint
from mrtrain.engine.trees.binning import MAX_MAX_BINS, MIN_MAX_BINS
from mrtrain.engine.trees.grower import MAX_DEPTH
from mrtrain.progress import StageProgress
from mrtrain.storage.filesystem import write_new_file
from mrtrain.tree_fitted import TreeFittedModel, tree_summary
from mrtrain.tree_models import FOREST_OBJECTIVES, GBT_OBJECTIVES, TREE_MODELS, takes_l2
from mrtrain.tree_training import TreeConfig, fit_trees

log = logging.getLogger(__name__)

#: The options only the tree ensembles take: (dest, TreeConfig field).
TREE_OPTIONS = ("objective", "n_trees", "learning_rate", "max_depth", "max_leaves", "max_bins",
                "min_child_weight", "min_split_gain", "subsample", "colsample", "max_features")
#: Options of the other models a tree ensemble refuses when given: dest → the value meaning "not given".
OTHER_OPTIONS = {"optimizer": None, "l1": None, "reg": None, "elastic_net": None, "standardize": False,
                 "reg_path": None, "reg_path_ratio": None, "cv": None, "fold_seed": None, "init": "zeros",
                 "precondition": True, "no_intercept": False, "warm_start": False, "inference": False,
                 "smoothing": None, "k": None, "init_centers": None, "init_steps": None, "n_init": None,
                 "layers": None, "activation": None, "keep_checkpoints": None,
                 # The optimizer loop's stopping rule (parser defaults of mrtrain/families/options.py): a
                 # tree ensemble stops by --n-trees and --validation-fraction, never by these.
                 "max_iter": 100, "tol": 1e-8, "gtol": 1e-6}


def _bounded(name, kind, low, high, low_open=False):
    """An argparse type: ``kind`` in ``[low, high]`` (``(low, high]`` when ``low_open``)."""
    what = "an int" if kind is int else "a number"
    if high == float("inf"):
        allowed = f"{what} {'>' if low_open else '>='} {low}"
    else:
        allowed = f"{what} in {'(' if low_open else '['}{low}, {high}]"
    message = f"The '{name}' parameter must be {allowed}. Got {{!r}} instead."

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(message.format(text)) from None
        if not ((low < value) if low_open else (low <= value)) or value > high:
            raise argparse.ArgumentTypeError(message.format(text))
        return value
    return parse


def _max_features(text):
    if text in ("sqrt", "log2"):
        return text
    return _bounded("max_features", float, 0, 1, low_open=True)(text)


def add_tree_options(parser):
    """The ``train`` parser's group of tree options."""
    g = parser.add_argument_group("tree ensembles (--model gbt or random-forest)")
    g.add_argument("--objective", choices=sorted(set(GBT_OBJECTIVES + FOREST_OBJECTIVES)),
                   help=f"gbt: {', '.join(GBT_OBJECTIVES)}; random-forest: {', '.join(FOREST_OBJECTIVES)}. "
                        "Default: a classifier for class names or two label values, else a regression "
                        "(with a warning for more than two integer values)")
    g.add_argument("--n-trees", type=_bounded("n_trees", int, 1, 10_000),
                   help="boosting rounds (softmax: one tree per class each) or forest trees. Default: 100")
    g.add_argument("--learning-rate", type=_bounded("learning_rate", float, 0, float("inf"), low_open=True),
                   help="gbt: shrinkage of every leaf. Default: 0.1")
    g.add_argument("--max-depth", type=_bounded("max_depth", int, 1, MAX_DEPTH), help="Default: 6")
    g.add_argument("--max-leaves", type=_bounded("max_leaves", int, 2, 2**31),
                   help="grow best-first (LightGBM's leaf-wise) to at most this many leaves per tree")
    g.add_argument("--max-bins", type=_bounded("max_bins", int, MIN_MAX_BINS, MAX_MAX_BINS),
                   help="quantile bins per feature (one per value for fewer values). Default: 255")
    g.add_argument("--min-child-weight", type=_bounded("min_child_weight", float, 0, float("inf")),
                   help="least Hessian sum of a child (a forest: its bootstrap weight). Default: 1")
    g.add_argument("--min-split-gain", type=_bounded("min_split_gain", float, 0, float("inf")),
                   help="gbt: a split needs a gain above this. Default: 0")
    g.add_argument("--subsample", type=_bounded("subsample", float, 0, 1, low_open=True),
                   help="gbt: fraction of rows per tree (a seeded row hash). Default: 1")
    g.add_argument("--colsample", type=_bounded("colsample", float, 0, 1, low_open=True),
                   help="fraction of features per tree (seeded). Default: 1")
    g.add_argument("--max-features", type=_max_features, metavar="sqrt|log2|F",
                   help="random-forest: features drawn at every node. Default: all")


def refuse_tree_options(args):
    """Refuse (ValueError) a tree option given to a model that is no tree ensemble."""
    given = [name for name in TREE_OPTIONS if getattr(args, name, None) is not None]
    if given:
        options = ", ".join(f"--{name.replace('_', '-')}" for name in given)
        verb = "apply" if len(given) > 1 else "applies"
        raise ValueError(f"The {options} option{'s' if len(given) > 1 else ''} {verb} to the tree models "
                         f"{list(TREE_MODELS)}. Got {options} for model {args.model!r} instead.")


def _tree_config(args):
    given = [f"--{name.replace('_', '-')}" for name, unset in OTHER_OPTIONS.items()
             if getattr(args, name, unset) != unset]
    if args.l2 is not None and len(args.l2) > 1:
        given.append("--l2 with a list")
    if args.l2 is not None and not takes_l2(args.model):
        given.append("--l2")
    if given:
        verb = "do" if len(given) > 1 else "does"
        raise ValueError(f"The option{'s' if len(given) > 1 else ''} {', '.join(given)} {verb} not apply to "
                         f"model {args.model!r} (a tree ensemble).")
    values = {name: getattr(args, name) for name in TREE_OPTIONS if getattr(args, name) is not None}
    if args.l2 is not None:
        values["l2"] = float(args.l2[0])
    for name in ("seed", "validation_fraction", "n_iter_no_change"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.validation_fraction is not None and args.n_iter_no_change is None:
        values["n_iter_no_change"] = 5  # as for the GLMs
    return TreeConfig(model=args.model, **values).check()


def train_trees(args, print_result):
    """``mrtrain train`` of a tree ensemble; ``print_result(result, as_json)`` shows the result."""
    config = _tree_config(args)
    job_times = []
    with contextlib.ExitStack() as stack:  # progress: a line (or a bar's step) per round of trees
        progress = None if args.quiet else stack.enter_context(StageProgress("train"))
        fitted = fit_trees(args.data, config, runner=args.runner, conf_path=args.conf_path,
                           reducers=args.reducers, checkpoint_dir=args.checkpoint_dir,
                           partition_cache=args.partition_cache, break_lock=args.break_lock,
                           allreduce=args.allreduce, allreduce_address=args.allreduce_address,
                           allreduce_tasks=args.allreduce_tasks,
                           allreduce_timeout=args.allreduce_timeout or DEFAULT_TIMEOUT, job_times=job_times,
                           callback=None if progress is None else lambda training: progress(
                               args.model, training.round, training.n_rounds, "rounds"))
    hint = command_hint(args, job_times)
    if hint:
        print(f"mrtrain: {hint}", file=sys.stderr)
    result = fitted.to_dict()
    result["metrics"] = None if args.no_metrics else fitted.evaluate(
        args.data, runner=args.runner, conf_path=args.conf_path, partition_cache=args.partition_cache,
        reducers=args.reducers)
    if args.json:
        print_result(result, True)
    else:
        print(tree_summary(result))
        if result["metrics"]:
            print(f"{'metrics':>16}: " + ", ".join(f"{k} {v:.6g}" for k, v in result["metrics"].items()
                                                    if isinstance(v, float)))


def write_trees_json(directory, fitted, output):
    """Write ``fitted``'s trees in the documented JSON format (:mod:`mrtrain.engine.trees.export`) to the new
    file ``output`` (local or ``hdfs://``), complete or not at all: created exclusively, never replacing.

    Raises
    ------
    ValueError
        If ``fitted`` (read from ``directory``) is no tree ensemble.
    FileExistsError
        If ``output`` exists (or appeared while the export was built).
    """
    if not isinstance(fitted, TreeFittedModel):
        kind = getattr(fitted.model, "kind", fitted.model)
        raise ValueError(f"{directory}: --trees-json expects the checkpoint directory of a tree ensemble "
                         f"(gbt or random-forest), found a {kind} model")
    output = write_new_file(output, lambda: (json.dumps(fitted.to_json(), indent=1) + "\n").encode("utf-8"),
                            "the export")
    log.info("wrote the %d trees of the %s model to %s", fitted.ensemble.n_trees, fitted.model, output)
