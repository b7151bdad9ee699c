"""Command-line options that several families share (each family adds its own in
:meth:`~mrtrain.families.family.Family.add_options`; :class:`mrtrain.cli_types.OptionGroups` adds a shared
one once)."""

from mrtrain.cli_types import float_at_least, fraction, int_at_least, number_list
from mrtrain.engine.optimizers import OPTIMIZERS
from mrtrain.engine.params import check_number
from mrtrain.engine.standardization import CONVENTIONS
from mrtrain.engine.start_point import INITS

#: The groups of the ``train`` options, in the order ``mrtrain train --help`` shows them.
MODEL, PENALTY, GRID, OPTIMIZER = ("model", "penalty", "penalty lists, paths and model selection",
                                   "optimizer and stopping rule")


def add_seed_option(groups):
    """``--seed`` (k-means, the MLP and the tree ensembles)."""
    groups.add(MODEL, "--seed", type=int_at_least(0, "seed"),
               help="kmeans: seed of the k-means|| initialisation; mlp: seed of the initial weights; gbt "
                    "and random-forest: seed of every draw (subsample, bootstrap, features, validation "
                    "rows). Default: 0")


def add_stopping_options(groups):
    """``--max-iter`` and ``--tol`` (every family with a loop)."""
    groups.add(OPTIMIZER, "--max-iter", type=int_at_least(1, "max_iter"), default=100,
               help="optimizer iterations (kmeans: Lloyd passes). Default: %(default)s")
    groups.add(OPTIMIZER, "--tol", type=float_at_least(0, "tol"), default=1e-8,
               help="relative objective change to stop at (kmeans: largest squared centre move over the "
                    "features' mean variance). Default: %(default)s")


def add_optimizer_options(groups):
    """The options of the optimizer loop (the GLMs and the MLP): intercept, penalties, optimizer, start,
    preconditioner and stopping rule."""
    groups.add(MODEL, "--no-intercept", action="store_true", help="fit no intercept")
    groups.add(PENALTY, "--l2", type=number_list(check_number, "l2", minimum=0), metavar="L2[,L2...]",
               help="strength of the (l2/2)||w||^2 penalty; a list trains one model per value in the "
                    "same passes (with --cv or --validation-fraction to choose). Default: 0")
    groups.add(PENALTY, "--l1", type=number_list(check_number, "l1", minimum=0), metavar="L1[,L1...]",
               help="strength of the l1*||w||_1 penalty (needs owlqn); lists as for --l2, paired with "
                    "an --l2 list of the same length. Default: 0")
    groups.add(PENALTY, "--reg", type=number_list(check_number, "reg", minimum=0),
               metavar="LAMBDA[,LAMBDA...]",
               help="Spark's regParam, instead of --l1/--l2: l1 = ALPHA*LAMBDA, l2 = (1-ALPHA)*LAMBDA")
    groups.add(PENALTY, "--elastic-net", type=number_list(fraction, "elastic_net"),
               metavar="ALPHA[,ALPHA...]",
               help="Spark's elasticNetParam in [0, 1], with --reg (default 0, pure l2) or --reg-path "
                    "(default 1, the lasso, as glmnet)")
    groups.add(PENALTY, "--standardize", nargs="?", const="spark", default=False, choices=CONVENTIONS,
               metavar="spark|glmnet",
               help="fit in terms of standardized features (one statistics pass first; penalties apply "
                    "there; centred through the intercept and scaled) and report coefficients for "
                    "the features as stored. The standard deviation is Spark MLlib's (n - 1, the "
                    "default) or, with --standardize glmnet, glmnet's and scikit-learn's (n)")
    groups.add(OPTIMIZER, "--optimizer", choices=sorted(OPTIMIZERS),
               help="Default: owlqn when the l1 penalty is > 0, else lbfgs")
    groups.add(OPTIMIZER, "--init", choices=INITS, default="zeros",
               help="starting point: zeros, or one online epoch (AdaGrad) per partition averaged by "
                    "weight, one more pass (Vowpal Wabbit's recipe). Default: %(default)s")
    groups.add(OPTIMIZER, "--no-precondition", dest="precondition", action="store_false",
               help="run gd, lbfgs and owlqn on the coordinates as stored instead of standardized ones "
                    "(by default one statistics pass comes first and the optimizer works on centred, "
                    "scaled coordinates; the objective and its optimum are the same either way)")
    add_stopping_options(groups)
    groups.add(OPTIMIZER, "--gtol", type=float_at_least(0, "gtol"), default=1e-6,
               help="gradient max-norm to stop at. Default: %(default)s")


#: The help of each option of a grid of penalties.
GRID_HELP = {
    "--reg-path": "train N penalties log-spaced from the smallest that keeps every coefficient 0 (glmnet's "
                  "lambda max) down to that times --reg-path-ratio, in the same passes",
    "--reg-path-ratio": "smallest / largest penalty of --reg-path, in (0, 1). Default: 1e-4",
    "--cv": "k-fold cross-validation of every penalty in the same passes; the best one's model refitted on "
            "all rows is the result",
    "--validation-fraction": "hold out about F of the rows (a stable row hash) to score the models and stop "
                             "each early (--n-iter-no-change); the result is the best iterate of the best "
                             "penalty",
    "--n-iter-no-change": "with --validation-fraction: stop after N iterations without a better validation "
                          "loss. Default: 5",
    "--fold-seed": "with --cv or --validation-fraction: seed of the row hash that makes the folds or the "
                   "hold-out part. Default: 0",
}
#: The argparse type and metavar of each option of a grid of penalties, in ``--help`` order.
GRID_TYPES = {"--reg-path": (int_at_least(1, "reg_path"), "N"),
              "--reg-path-ratio": (float_at_least(0, "reg_path_ratio"), "R"),
              "--cv": (int_at_least(2, "cv"), "K"),
              "--validation-fraction": (float_at_least(0, "validation_fraction"), "F"),
              "--n-iter-no-change": (int_at_least(1, "n_iter_no_change"), "N"),
              "--fold-seed": (int_at_least(0, "fold_seed"), "S")}


def add_grid_options(groups):
    """The options of a grid of penalties (the GLMs): :data:`GRID_TYPES`, :data:`GRID_HELP`."""
    for flag, (parse, metavar) in GRID_TYPES.items():
        groups.add(GRID, flag, type=parse, metavar=metavar, help=GRID_HELP[flag])
