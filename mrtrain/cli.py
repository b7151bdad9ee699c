"""The ``mrtrain`` command line: ingest, train, evaluate, predict, inspect, report.

A thin layer over :class:`mrtrain.trainer.Trainer`, :class:`mrtrain.fitted.FittedModel` and
:mod:`mrtrain.storage`. Progress goes to stderr, results to stdout (``--json``: one JSON object). Options,
the mrjob config file and the output target are checked before any job runs.
Bad input (also found by a map task) exits with status 2 and one line ``mrtrain: error: ...``; a failed
MapReduce job exits with status 1 and one line naming the failed partition when a task's traceback names
one (mrjob's own error log is shown with ``-vv``); any other error exits with status 1 and one line naming
its type (the traceback is logged at debug level, shown with ``-vv``); Ctrl-C exits with status 130 and
``mrtrain: interrupted``, leaving the checkpoints already written intact.
"""

import mrtrain._command_distutils  # noqa: F401  (first: before mrjob loads distutils)

# isort: split
import argparse
import contextlib
import json
import logging
import math
import os
import posixpath
import re
import sys
from urllib.parse import urlsplit

import numpy as np
from mrjob.step import StepFailedException

from mrtrain import __version__
from mrtrain.allreduce import DEFAULT_TIMEOUT
from mrtrain.allreduce_hint import command_hint
from mrtrain.cli_types import (
    CHECK_MESSAGES,
    OptionGroups,
    address,
    argument,
    column_list,
    conf_path,
    int_at_least,
    partition_size,
)
from mrtrain.engine.coefficient_table import check_inference
from mrtrain.engine.grid import grid_table_lines
from mrtrain.engine.params import check_number
from mrtrain.engine.standardization import STANDARD_DEVIATIONS
from mrtrain.families import registry
from mrtrain.families.options import GRID, MODEL, OPTIMIZER, PENALTY
from mrtrain.families.registry import family_of, models, models_taking, parameter_defaults
from mrtrain.inference import check_identifiable, coefficient_inference, save_inference
from mrtrain.launcher import RUNNERS, one_task_server
from mrtrain.model_dir import read_model
from mrtrain.mr_jobs.partition_job import PartitionError
from mrtrain.names import class_texts
from mrtrain.progress import StageProgress, TrainingProgress, job_progress
from mrtrain.report import MissingDependencyError, require_matplotlib, write_report
from mrtrain.storage.checkpoint import list_checkpoints
from mrtrain.storage.dataset import MANIFEST_NAME, Dataset
from mrtrain.storage.encoding import DROPS
from mrtrain.storage.filesystem import absolute, get_filesystem, join, split_scheme
from mrtrain.storage.local_fs import local_path
from mrtrain.trainer import Trainer
from mrtrain.tree_cli import add_tree_options, refuse_tree_options, write_trees_json

log = logging.getLogger("mrtrain")

#: The last line of a failed task's traceback, as mrjob logs it ("Probable cause of failure").
TASK_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(PartitionDataError|PartitionError): (.+)$", re.M)


class TaskErrorLog(logging.Handler):
    """Keeps the messages mrjob logs at ERROR, to find the failed partition's one-line error in them."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def partition_error(self):
        """``(is_data_error, message)`` of the last partition error logged, or None."""
        found = [match for text in self.messages for match in TASK_ERROR_LINE.finditer(text)]
        if not found:
            return None
        kind, message = found[-1].groups()
        return kind == "PartitionDataError", message.strip()


TASK_ERRORS = TaskErrorLog()

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130
#: Train options that only mean something with another option or model: (option, what it needs, whether
#: the arguments have it). Each is refused when given without it (see :func:`refuse_unpaired_options`).
DEPENDENT_OPTIONS = (
    ("allreduce_address", "--allreduce", lambda args: args.allreduce),
    ("allreduce_tasks", "--allreduce", lambda args: args.allreduce),
    ("allreduce_timeout", "--allreduce", lambda args: args.allreduce),
    ("keep_checkpoints", "--checkpoint-dir", lambda args: args.checkpoint_dir is not None),
    ("break_lock", "--checkpoint-dir", lambda args: args.checkpoint_dir is not None),
    ("warm_start", "--checkpoint-dir", lambda args: args.checkpoint_dir is not None),
    ("reg_path_ratio", "--reg-path", lambda args: args.reg_path is not None),
    ("n_iter_no_change", "--validation-fraction", lambda args: args.validation_fraction is not None),
    ("fold_seed", "--cv or --validation-fraction",
     lambda args: args.cv is not None or args.validation_fraction is not None),
    # The model options that default to None on the command line: refused for a model that does not take
    # them (the others are refused by the trainer, naming the parameter).
    *((name, "--model " + " or ".join(models_taking(name)),
       lambda args, name=name: args.model in models_taking(name))
      for name in ("init_steps", "n_init", "seed")),
)
#: The defaults of the train options of :data:`DEPENDENT_OPTIONS` whose parser default is None (so that
#: giving one can be told from leaving it out).
TRAIN_DEFAULTS = {"allreduce_timeout": DEFAULT_TIMEOUT,
                  "n_iter_no_change": 5, "fold_seed": 0, "init_steps": 2, "n_init": 1, "seed": 0}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line ``mrtrain: error: ...`` (exit status 2), like every
    other error of the command, instead of the usage text and the message."""

    def error(self, message):
        prefix, _, rest = message.partition(": ")
        if prefix.startswith("argument ") and rest in CHECK_MESSAGES:
            message = rest
        else:
            message += f" (see '{self.prog} --help')"
        self.exit(2, f"mrtrain: error: {_one_line(message)}\n")


def _runner_args(parser, json=True):
    """``--runner``, ``--conf-path``, ``--no-partition-cache`` and (if ``json``) ``--json`` on ``parser``
    (a parser or an argument group)."""
    parser.add_argument("--runner", choices=RUNNERS, default="local",
                             help="mrjob runner. Default: %(default)s")
    parser.add_argument("--conf-path", type=conf_path,
                             help="mrjob config file (default: mrjob's own lookup)")
    parser.add_argument("--no-partition-cache", dest="partition_cache", action="store_false",
                             help="map tasks read, hash and decode every partition on every pass instead of "
                             "keeping decoded partitions in their node's cache")
    if json:
        parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


#: The command's description in ``mrtrain --help``: plain text, no reStructuredText markup.
DESCRIPTION = "The mrtrain command line: ingest, train, evaluate, predict, inspect, report."


def _logging_args(parser, default):
    """``-v`` and ``-q``, accepted before the subcommand (``default``: their values) and after it
    (``default=SUPPRESS``, so a subcommand that does not see them keeps the values given before it)."""
    parser.add_argument("-v", "--verbose", action="count", default=0 if default else argparse.SUPPRESS,
                        help="more logging (-v: our INFO, -vv: mrjob and Hadoop too)")
    parser.add_argument("-q", "--quiet", action="store_true", default=False if default else argparse.SUPPRESS,
                        help="no progress (default: a progress bar on a terminal, else one line per pass)")


def build_parser():
    """The argument parser of ``mrtrain``."""
    parser = _Parser(prog="mrtrain", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _logging_args(parser, default=True)
    common = argparse.ArgumentParser(add_help=False)
    _logging_args(common, default=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)

    p = commands.add_parser("ingest", parents=[common],
                            help="convert CSV / libsvm / Parquet / npz into a dataset")
    p.add_argument("src")
    p.add_argument("dest")
    p.add_argument("--format", choices=("csv", "libsvm", "parquet", "npz"),
                   help="source format. Default: from the extension")
    p.add_argument("--label", help="label column; a CSV label column without any number (a Parquet string "
                                   "column) holds class names, stored by their sorted index. Default: label, "
                                   "or the --like dataset's")
    p.add_argument("--weight", help="sample-weight column. Default: none, or the --like dataset's")
    p.add_argument("--id", metavar="COLUMN",
                   help="csv/parquet: a row id column, no feature, passed through to predictions")
    p.add_argument("--keep", type=column_list, metavar="COL[,COL...]",
                   help="csv/parquet: more columns that are no features, passed through to predictions")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--partitions", type=int_at_least(1, "partitions"), help="number of partitions")
    size.add_argument("--partition-size", type=argument(partition_size, "partition_size", float),
                      default=64.0, help="target partition size in MiB. Default: %(default)s")
    p.add_argument("--n-features", type=int_at_least(1, "n_features"),
                   help="number of features: libsvm rows get it (an index beyond it is an error), other "
                        "sources must have it. Default: libsvm's largest index")
    p.add_argument("--dense", action="store_true",
                   help="libsvm: write a dense dataset instead of a sparse (csr) one")
    p.add_argument("--dtype", choices=("float64", "float32"),
                   help="stored feature type. Default: float64, or the --like dataset's")
    p.add_argument("--categorical", type=column_list, metavar="COL[,COL...]",
                   help="csv/parquet: categorical (string or integer) columns, encoded after the numeric "
                        "ones into a sparse (csr) dataset")
    p.add_argument("--hash-bits", type=int, metavar="B",
                   help="hash categorical values (MurmurHash3 of 'column=value') into 2^B slots, B in 1..30. "
                        "Default: one-hot")
    p.add_argument("--min-count", type=int_at_least(1, "min_count"), default=1, metavar="N",
                   help="one-hot: values seen fewer than N times go to the column's <other> slot. "
                        "Default: %(default)s")
    p.add_argument("--drop", choices=DROPS,
                   help="one-hot: leave each column's first category without a slot (first: R's treatment "
                        "coding, identifiable coefficients with an intercept), only in two-category columns "
                        "(if-binary), or keep every slot (none). Default: none")
    missing = p.add_mutually_exclusive_group()
    missing.add_argument("--impute", choices=("zero", "mean"),
                         help="fill a missing numeric value with 0 or the column's mean. Default: an error")
    missing.add_argument("--keep-missing", action="store_true",
                         help="keep a missing numeric value (empty, null or NaN) as NaN; only the tree "
                              "models train on such a dataset. Default: an error")
    p.add_argument("--like", metavar="DATASET",
                   help="reuse the recipe of DATASET: label and weight columns, dtype, column order, "
                        "encoding (hashing or levels and slots, imputation) and classes; a source without "
                        "the label column is ingested for predict")
    p.add_argument("--json", action="store_true", help="print the manifest summary as JSON")

    p = commands.add_parser("train", parents=[common], help="train a model with iterative MapReduce jobs",
                            description="Train a model with iterative MapReduce jobs, one data pass per "
                                        "optimizer iteration; the options come in groups by family.")
    p.add_argument("data", help="dataset directory made by 'mrtrain ingest' (local or hdfs://)")
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=models(), required=True,
                   help="GLMs and linear-svc are trained by an optimizer; the naive Bayes models (*-nb) are "
                        "fitted in one pass and take no optimizer, penalty or standardization; kmeans runs "
                        "k-means|| then Lloyd passes (labels are ignored); mlp is a multilayer perceptron "
                        "classifier trained by lbfgs (or gd); gbt (gradient-boosted trees) and random-forest "
                        "grow trees one histogram pass per level")
    groups = OptionGroups({title: g if title == MODEL else p.add_argument_group(title)
                           for title in (MODEL, PENALTY, GRID, OPTIMIZER)})
    for family in registry.FAMILIES:
        family.add_options(groups)
    add_tree_options(p)
    g = p.add_argument_group("checkpoints")
    g.add_argument("--checkpoint-dir", help="checkpoint directory; a rerun resumes from it")
    g.add_argument("--keep-checkpoints", type=int_at_least(1, "keep_checkpoints"),
                   help="keep only the newest N checkpoints")
    g.add_argument("--warm-start", action="store_true",
                   help="if the newest checkpoint was made with other data, optimizer or penalty, start from "
                        "its parameters with a fresh optimizer and this run's settings instead of refusing")
    g.add_argument("--break-lock", action="store_true",
                   help="take the checkpoint directory's lock even if another run seems to hold it")
    g = p.add_argument_group("output")
    g.add_argument("--no-metrics", action="store_true", help="skip the evaluation pass after training")
    g.add_argument("--inference", action="store_true",
                   help="one more pass for standard errors, z/t statistics and p-values of the coefficients "
                        "(linear, logistic, poisson; no l1, no --standardize); kept with the checkpoints")
    g.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    g = p.add_argument_group("execution")
    g.add_argument("--reducers", type=int_at_least(0, "reducers"), default=1,
                   help="reduce tasks adding the summed vector in parallel pieces, at most one per element; "
                        "0: map-only jobs, the driver adds the partitions' vectors (same bits). "
                        "Default: %(default)s")
    g.add_argument("--allreduce", action="store_true",
                   help="one map-only job for the whole training: its tasks keep their partitions and serve "
                        "every pass over TCP (local and hadoop runners; same bits as one job per pass)")
    g.add_argument("--allreduce-address", type=argument(address, "allreduce_address", str),
                   metavar="HOST[:PORT]",
                   help="where the driver listens for the allreduce tasks (port 0: any free port); on a "
                        "cluster an address of this host that the NodeManagers reach. Default: 127.0.0.1 on "
                        "the local runner; on hadoop this host's address toward the ResourceManager")
    g.add_argument("--allreduce-tasks", type=int_at_least(1, "allreduce_tasks"), metavar="N",
                   help="allreduce map tasks, all running at once. Default: the local runner's cores; on "
                        "hadoop the free map slots the ResourceManager reports, else 2 (at most one per "
                        "partition)")
    g.add_argument("--allreduce-timeout",
                   type=argument(check_number, "allreduce_timeout", float, minimum=0, strictly=True),
                   metavar="SECONDS",
                   help="seconds for every allreduce task to connect (and a lost one to come back). "
                        f"Default: {DEFAULT_TIMEOUT:g}")
    _runner_args(g, json=False)

    p = commands.add_parser("evaluate", parents=[common], help="metrics of a trained model on a dataset")
    p.add_argument("data")
    p.add_argument("--model-dir", required=True, help="checkpoint directory of the trained model")
    _runner_args(p)

    p = commands.add_parser("predict", parents=[common],
                            help="write predictions as Parquet, one file per partition")
    p.add_argument("data")
    p.add_argument("--model-dir", required=True, help="checkpoint directory of the trained model")
    p.add_argument("--output", required=True, help="output directory (must not exist)")
    _runner_args(p)

    p = commands.add_parser("inspect", parents=[common],
                            help="summarize a model (checkpoint) directory or a dataset")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true")
    p.add_argument("--trees-json", metavar="FILE",
                   help="gbt or random-forest: also write the trees' JSON export (docs/trees.md) to this new "
                        "file (local or hdfs://; must not exist)")

    p = commands.add_parser("report", parents=[common],
                            help="an HTML page with plots about a trained model (needs matplotlib)")
    p.add_argument("model_dir", help="checkpoint directory of the trained model")
    p.add_argument("--data", help="a dataset to evaluate the model on: metrics, confusion matrix, ROC curve")
    p.add_argument("--output", required=True, help="the HTML file to write (must not exist)")
    _runner_args(p)
    return parser


def _configure_logging(verbose, quiet):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ours = logging.DEBUG if verbose else logging.WARNING
    logging.getLogger("mrtrain").setLevel(ours)
    mrjob_log = logging.getLogger("mrjob")
    mrjob_log.setLevel(logging.INFO if verbose >= 2 else logging.ERROR)
    mrjob_log.propagate = verbose >= 2
    TASK_ERRORS.messages.clear()
    if TASK_ERRORS not in mrjob_log.handlers:
        mrjob_log.addHandler(TASK_ERRORS)


def _clean(value):
    """JSON-safe: NaN / inf become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def coefficient_lines(result):
    """A linear model's coefficients as aligned ``name  value`` lines (a column per class for several)."""
    rows = np.atleast_2d(np.asarray(result["coefficients"], dtype=float))
    names = result["feature_names"]
    header = [] if rows.shape[0] == 1 else [f"  {'':<{max(map(len, names))}}  "
                                             + "  ".join(f"{c:>13}" for c in class_texts(result))]
    width = max(len(name) for name in names)
    return header + [f"  {name:<{width}}  " + "  ".join(f"{value:>+13.6g}" for value in rows[:, j])
                     for j, name in enumerate(names)]


def confusion_lines(confusion, classes):
    """A confusion matrix as aligned lines, rows and columns named by the classes."""
    width = max(8, *(len(c) for c in classes))
    cells = max(8, *(len(c) for c in classes), *(len(f"{v:g}") for row in confusion for v in row))
    lines = [f"  {'':<{width}}  " + "  ".join(f"{c:>{cells}}" for c in classes)]
    lines += [f"  {name:<{width}}  " + "  ".join(f"{v:>{cells}g}" for v in row)
              for name, row in zip(classes, confusion, strict=True)]
    return lines


def _has_named_coefficients(result):
    coefficients = result.get("coefficients")
    if "feature_names" not in result or not isinstance(coefficients, list) or not coefficients:
        return False
    rows = np.atleast_2d(np.asarray(coefficients, dtype=object))
    return rows.ndim == 2 and rows.shape[1] == len(result["feature_names"]) and result.get("centers") is None


def _print_result(result, as_json, names=None):
    """``result`` on stdout: one JSON object, or aligned ``key: value`` lines in which a value that is None
    (a regression's classes, an unencoded dataset's encoding) is left out; ``names`` renames keys there."""
    if as_json:
        print(json.dumps(_clean(result), sort_keys=True))
        return
    for key, value in result.items():
        if key in ("settings", "feature_names", "class_names") or value is None:
            continue
        if key == "classes" and (result.get("class_names") or any(isinstance(c, str) for c in value)):
            print(f"{(names or {}).get(key, key):>16}: {', '.join(class_texts(result))}")
            continue
        if key == "coefficients" and _has_named_coefficients(result):
            print(f"{key:>16}:")
            print("\n".join(coefficient_lines(result)))
            continue
        key = (names or {}).get(key, key)
        if key == "inference":
            print("\n".join(inference_lines(value)))
            continue
        if key == "cross_validation":
            print("\n".join(grid_table_lines(value)))
            continue
        if isinstance(value, dict):
            print(f"{key}:")
            for name, item in value.items():
                if name == "confusion_matrix" and class_texts(result) and item is not None:
                    print(f"{name:>20}: (rows: true class, columns: predicted class)")
                    print("\n".join(confusion_lines(item, class_texts(result))))
                    continue
                print(f"{name:>20}: {item}")
        else:
            print(f"{key:>16}: {value}")


def _location(uri):
    """``(filesystem, absolute path)`` of ``uri`` for containment tests; existing local symlinks resolved."""
    if split_scheme(uri) == "hdfs":
        parts = urlsplit(uri)
        return f"hdfs://{parts.netloc}", posixpath.normpath(parts.path or "/")
    return "", os.path.realpath(local_path(uri))


def _inside(uri, container):
    """``"equal"`` if ``uri`` is ``container``, ``"inside"`` if it lies inside it, else None.

    A host-less ``hdfs:///`` URI is taken to be on the same HDFS as any ``hdfs://`` URI.
    """
    (fs, path), (container_fs, container_path) = _location(uri), _location(container)
    hdfs = fs.startswith("hdfs://") and container_fs.startswith("hdfs://")
    if fs != container_fs and not (hdfs and "hdfs://" in (fs, container_fs)):
        return None
    if path == container_path:
        return "equal"
    return "inside" if path.startswith(container_path.rstrip("/") + "/") else None


def _file_kind(path):
    if os.path.islink(path) and not os.path.exists(path):
        return f"a dangling symbolic link (to {os.readlink(path)!r})"
    return "a file" if os.path.isfile(path) else "a special file"


def check_output_target(output, option, inputs):
    """Refuse an output path that a command could only fail to write after its work, before any job runs.

    Parameters
    ----------
    output : str
        The new output: a local path or a ``file://`` or ``hdfs://`` URI that must not exist yet.
    option : str
        Its option or argument name, for the message.
    inputs : dict of str to str
        What the command reads (name to URI); the output must lie outside each of them.

    Raises
    ------
    ValueError, OSError
        One line naming the output, what was expected and what was found: an empty path, an existing
        file, directory or dangling symbolic link, a parent that is not a writable directory, an output
        equal to or inside an input.
    """
    if not output.strip():
        raise ValueError(f"The {option!r} parameter must be a non-empty path. Got {output!r} instead.")
    if split_scheme(output) == "hdfs":
        if get_filesystem(output).exists(output):
            raise FileExistsError(f"{output}: destination already exists; choose a new path or delete it")
    else:
        path = os.path.abspath(local_path(output))
        if os.path.islink(path) and not os.path.exists(path):
            raise FileExistsError(f"{output}: expected a new output path, found {_file_kind(path)}")
        if os.path.lexists(path):
            raise FileExistsError(f"{output}: destination already exists; choose a new path or delete it")
        ancestor = os.path.dirname(path)
        while not os.path.lexists(ancestor):
            ancestor = os.path.dirname(ancestor)
        if not os.path.isdir(ancestor):
            raise NotADirectoryError(f"{output}: expected {ancestor} to be a directory, found "
                                     f"{_file_kind(ancestor)}")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise PermissionError(f"{output}: expected a writable directory {ancestor}, found it read-only "
                                  "for this user")
    for name, uri in inputs.items():
        where = _inside(output, uri)
        if where:
            found = f"the {name} itself" if where == "equal" else "a path inside it"
            raise ValueError(f"{output}: expected an output outside the {name} {uri}, found {found}")


def _check_checkpoint_dir(checkpoint_dir, data):
    """A checkpoint directory may exist (a rerun resumes) but must be a directory outside the dataset."""
    if not checkpoint_dir.strip():
        raise ValueError(f"The 'checkpoint_dir' parameter must be a non-empty path. Got {checkpoint_dir!r} "
                         "instead.")
    if split_scheme(checkpoint_dir) != "hdfs":
        path = local_path(checkpoint_dir)
        if os.path.lexists(path) and not os.path.isdir(path):
            raise NotADirectoryError(f"{checkpoint_dir}: expected a checkpoint directory, found "
                                     f"{_file_kind(path)}")
    where = _inside(checkpoint_dir, data)
    if where:
        found = "the dataset itself" if where == "equal" else "a path inside it"
        raise ValueError(f"{checkpoint_dir}: expected a checkpoint directory outside the dataset {data}, "
                         f"found {found}")


def cmd_ingest(args):
    from mrtrain.storage.ingest import ingest  # pyarrow.compute and csv: for this command only

    check_output_target(args.dest, "dest", {"source": args.src})
    with contextlib.ExitStack() as stack:
        progress = None if args.quiet else stack.enter_context(StageProgress("ingest"))
        dataset = ingest(
            args.src, args.dest, format=args.format, label=args.label, weight=args.weight,
            partitions=args.partitions, partition_size_mb=args.partition_size, n_features=args.n_features,
            dtype=args.dtype, dense=args.dense, categorical=args.categorical, hash_bits=args.hash_bits,
            min_count=args.min_count, impute=args.impute, drop=args.drop, id=args.id, keep=args.keep,
            like=args.like, progress=progress, keep_missing=args.keep_missing,
        )
    _print_result(dataset_summary(dataset), args.json, DATASET_NAMES)


#: Keys of :func:`dataset_summary` shown under another name in text: a dataset's distinct integer labels
#: become classes only when a classifier trains on them (a Poisson model's counts are no classes).
DATASET_NAMES = {"classes": "label values"}


def dataset_summary(dataset):
    """What ``ingest`` and ``inspect`` print about a dataset."""
    return {
        "dataset": dataset.uri, "rows": dataset.n_rows, "features": dataset.n_features,
        "layout": dataset.layout, "nnz": dataset.nnz,
        "density": dataset.nnz / (dataset.n_rows * dataset.n_features),
        "partitions": len(dataset.partitions), "label": dataset.label_name if dataset.has_label else None,
        "classes": dataset.class_names or dataset.classes,
        "encoding": None if dataset.encoding is None else dataset.encoding_digest,
        "missing": "kept as NaN" if dataset.has_missing else None,
        "checksum": dataset.checksum,
    }


def penalties(args):
    """``(l1, l2)`` of ``train``: from ``--l1`` / ``--l2``, or from Spark's ``--reg`` / ``--elastic-net``.

    Each is a float, or a list when several penalties are asked for (the values of two lists are pairs; a
    single value goes with every value of the other list).

    Raises
    ------
    ValueError
        If ``--reg`` is combined with ``--l1`` or ``--l2``, ``--elastic-net`` is given without ``--reg`` or
        ``--reg-path``, or lists meant as pairs differ in length.
    """
    if args.reg is None:
        if args.elastic_net is not None and args.reg_path is None:
            raise ValueError(f"The 'elastic_net' parameter needs 'reg' (the total penalty it splits into "
                             f"l1 and l2) or 'reg_path'. Got elastic_net={_listed_value(args.elastic_net)} "
                             "without either instead.")
        return _listed_value(args.l1 or [0.0]), _listed_value(args.l2 or [0.0])
    given = [f"{name}={_listed_value(getattr(args, name))!r}" for name in ("l1", "l2")
             if getattr(args, name) is not None]
    if given:
        raise ValueError(f"The 'reg' parameter sets both l1 and l2 (l1 = alpha*reg, l2 = (1-alpha)*reg) and "
                         f"must come without --l1 and --l2. Got reg={_listed_value(args.reg)!r} with "
                         f"{', '.join(given)} instead.")
    regs, alphas = args.reg, args.elastic_net or [0.0]
    if len(regs) > 1 and len(alphas) > 1 and len(regs) != len(alphas):
        raise ValueError(f"The 'reg' and 'elastic_net' lists are pairs and must have the same length. Got "
                         f"{len(regs)} reg values and {len(alphas)} elastic_net values instead.")
    n = max(len(regs), len(alphas))
    pairs = list(zip(regs * (n // len(regs)), alphas * (n // len(alphas)), strict=True))
    return (_listed_value([alpha * reg for reg, alpha in pairs]),
            _listed_value([(1.0 - alpha) * reg for reg, alpha in pairs]))


def _option_text(value):
    """An option's value as typed: a list comma-separated."""
    return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _listed_value(values):
    """A one-value list as its value; longer lists as they are."""
    return values[0] if len(values) == 1 else values


def refuse_unpaired_options(args):
    """Refuse a train option of :data:`DEPENDENT_OPTIONS` given without what it needs (one line), then set
    the left-out ones of :data:`TRAIN_DEFAULTS` to their defaults.

    Raises
    ------
    ValueError
        Naming the option, its value and what it needs.
    """
    for name, needs, has in DEPENDENT_OPTIONS:
        value = getattr(args, name)
        if value is not None and value is not False and not has(args):
            option = f"--{name.replace('_', '-')}"
            given = option + ("" if value is True else f" {_option_text(value)}")
            raise ValueError(f"The '{option}' option only applies with {needs}. Got {given} without it "
                             "instead.")
    for name, default in TRAIN_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)


def cmd_train(args):
    family = family_of(args.model)
    if family.train_command is not None:
        if args.checkpoint_dir is not None:
            _check_checkpoint_dir(args.checkpoint_dir, args.data)
        family.train_command(args, _print_result)
        return
    refuse_tree_options(args)
    refuse_unpaired_options(args)
    if family.cli_refused is not None:
        refused, lacks = family.cli_refused
        given = [f"--{name.replace('_', '-')} {_option_text(getattr(args, name))}"
                 for name in refused if getattr(args, name) is not None]
        if given:
            raise ValueError(f"The 'model' parameter {args.model!r} {lacks}. Got {', '.join(given)} instead.")
    l1, l2 = penalties(args)
    alpha = None
    if args.reg_path is not None and args.elastic_net is not None:
        if len(args.elastic_net) > 1:
            raise ValueError(f"The 'elastic_net' parameter takes one value with 'reg_path'. Got "
                             f"{args.elastic_net!r} instead.")
        alpha = args.elastic_net[0]
    grid = isinstance(l1, list) or isinstance(l2, list) or any(
        getattr(args, name) is not None for name in ("reg_path", "cv", "validation_fraction"))
    if args.inference and grid:
        raise ValueError("The 'inference' parameter applies to one model; got a grid of them (a penalty "
                         "list, --reg-path, --cv or --validation-fraction).")
    if args.inference:
        check_inference(args.model, l1=l1, standardize=args.standardize, n_params=0)
    if args.checkpoint_dir is not None:
        _check_checkpoint_dir(args.checkpoint_dir, args.data)
    if args.inference:
        with job_progress("identifiability", enabled=not args.quiet):
            check_identifiable(args.data, args.model, fit_intercept=not args.no_intercept, runner=args.runner,
                               conf_path=args.conf_path, partition_cache=args.partition_cache)
    with contextlib.ExitStack() as stack:
        progress = None if args.quiet else stack.enter_context(TrainingProgress(args.max_iter))
        # Every family parameter the options set (the families' options: dest = parameter), the penalties
        # as --l1/--l2 or --reg/--elastic-net give them.
        parameters = {name: getattr(args, name) for name in parameter_defaults() if hasattr(args, name)}
        parameters.update(l2=l2, l1=l1, fit_intercept=not args.no_intercept, elastic_net=alpha)
        trainer = Trainer(
            args.model, runner=args.runner, conf_path=args.conf_path, checkpoint_dir=args.checkpoint_dir,
            keep_checkpoints=args.keep_checkpoints, reducers=args.reducers, break_lock=args.break_lock,
            partition_cache=args.partition_cache, callback=progress, allreduce=args.allreduce,
            allreduce_address=args.allreduce_address, allreduce_tasks=args.allreduce_tasks,
            allreduce_timeout=args.allreduce_timeout, training_metrics=not args.no_metrics, **parameters,
        )
        fitted = trainer.fit(args.data)
    hint = None if family.allreduce_refused is not None else command_hint(args, trainer.job_times)
    if hint:
        print(f"mrtrain: {hint}", file=sys.stderr)
    result = fitted.to_dict()
    if args.inference:
        result["inference"] = coefficient_inference(fitted, args.data, runner=args.runner,
                                                    conf_path=args.conf_path,
                                                    partition_cache=args.partition_cache)
        if args.checkpoint_dir is not None:
            save_inference(args.checkpoint_dir, list_checkpoints(args.checkpoint_dir)[-1][0],
                           result["inference"])
    result["metrics"] = None if args.no_metrics else fitted.evaluate(
        args.data, runner=args.runner, conf_path=args.conf_path, partition_cache=args.partition_cache,
        reducers=args.reducers,
    )
    _print_result(result, args.json)


def cmd_evaluate(args):
    family, _, fitted = read_model(args.model_dir)
    with job_progress("evaluate", enabled=not args.quiet):
        metrics = fitted.evaluate(args.data, runner=args.runner, conf_path=args.conf_path,
                                  partition_cache=args.partition_cache)
    _print_result(family.evaluate_result(fitted, metrics), args.json)


def cmd_predict(args):
    check_output_target(args.output, "output", {"dataset": args.data, "model directory": args.model_dir})
    _, _, fitted = read_model(args.model_dir)
    with job_progress("predict", enabled=not args.quiet):
        manifest = fitted.predict_dataset(args.data, args.output, runner=args.runner,
                                          conf_path=args.conf_path, partition_cache=args.partition_cache)
    _print_result({"output": args.output, "rows": manifest["n_rows"],
                   "partitions": len(manifest["partitions"])}, args.json)


def cmd_inspect(args):
    if args.trees_json is not None:
        check_output_target(args.trees_json, "--trees-json", {"model directory": args.dir})
    if get_filesystem(args.dir).exists(join(args.dir, MANIFEST_NAME)):
        _refuse_trees_json(args, "a dataset")
        _print_result(dataset_summary(Dataset.open(args.dir)), args.json, DATASET_NAMES)
        return
    family, _, fitted = read_model(args.dir)
    if args.trees_json is not None:
        write_trees_json(args.dir, fitted, args.trees_json)
    checkpoints = [iteration for iteration, _ in list_checkpoints(args.dir)]
    result = family.inspect_result(fitted, args.dir, checkpoints)
    if args.json:
        _print_result(result, True)
    else:
        print(model_summary(result))


def _refuse_trees_json(args, found):
    if args.trees_json is not None:
        raise ValueError(f"{args.dir}: --trees-json expects the checkpoint directory of a tree ensemble (gbt "
                         f"or random-forest), found {found}")


#: Coefficients listed by ``inspect`` (largest magnitude first).
SUMMARY_COEFFICIENTS = 10


def model_summary(result):
    """A model directory's ``inspect`` result as a few readable lines."""
    summary = family_of(result["model"]).summary(result)
    if summary is not None:
        return summary
    settings = result["settings"]
    classes = class_texts(result)
    kind = result["model"]
    if classes:
        kind += f" ({len(classes)} classes: {', '.join(classes)})"
    kind += f", {settings['n_features']} features" + (", intercept" if settings["fit_intercept"] else "")
    status = "converged" if result["converged"] else "stopped before converging"
    history = result["history"]
    checkpoints = result["checkpoints"]
    lines = [
        f"model        {kind}",
        f"trained on   {settings['data']} (dataset checksum {settings['data_checksum'][:12]})",
        f"optimizer    {settings['optimizer']}, l2 {settings['l2']:g}, l1 {settings.get('l1', 0.0):g}"
        + (f", standardized features ({STANDARD_DEVIATIONS[settings['standardize']]})"
           if settings.get("standardize") else "")
        + (", preconditioned" if settings.get("precondition") and not settings.get("standardize") else "")
        if settings["optimizer"] is not None else f"smoothing    {settings['smoothing']:g} (naive Bayes)",
        f"result       {status} after {result['iterations']} iterations ({result['passes']} passes): "
        f"{result['stop_reason']}",
        f"objective    {result['objective']:.12g}" + (f" (start {history[0]:.12g})" if history else ""),
        f"checkpoints  {len(checkpoints)}" + (f" (iterations {checkpoints[0]}-{checkpoints[-1]})"
                                             if checkpoints else ""),
    ]
    rows = np.atleast_2d(np.asarray(result["coefficients"], dtype=float))
    d = settings["n_features"]
    features = result.get("feature_names") or [f"feature {j}" for j in range(d)]
    # gaussian-nb's rows are each class's feature means, then its variances.
    names = features if rows.shape[1] == d else (
        [f"mean of {name}" for name in features] + [f"variance of {name}" for name in features])
    flat = [(abs(value), (f"class {classes[k]}, " if len(rows) > 1 else "") + names[j], value)
            for k, row in enumerate(rows) for j, value in enumerate(row)]
    flat.sort(key=lambda item: -item[0])
    shown = flat[:SUMMARY_COEFFICIENTS]
    lines.append(f"coefficients largest |value| first ({len(shown)} of {len(flat)}):")
    width = max((len(name) for _, name, _ in shown), default=0)
    lines += [f"  {name:<{width}}  {value:+.6g}" for _, name, value in shown]
    intercept = np.atleast_1d(np.asarray(result["intercept"], dtype=float))
    lines.append("intercept    " + ", ".join(f"{value:+.6g}" for value in intercept))
    if result.get("inference"):
        lines += inference_lines(result["inference"])
    if result.get("cross_validation"):
        grid = settings["grid"]
        scoring = f"{grid['cv']}-fold cross-validation" if grid.get("cv") else \
            f"a hold-out part of {grid['validation_fraction']:g} of the rows"
        lines.append(f"selected     from {len(result['cross_validation'])} penalties by {scoring}")
        lines += grid_table_lines(result["cross_validation"])
    return "\n".join(lines)


def inference_lines(table):
    """The coefficient table (``--inference``) as aligned lines: estimate, std. error, z or t, p-value."""
    statistic = table["statistic_name"]
    width = max(len(name) for name in table["names"])
    heading = f"inference    {statistic} statistics" + (
        f", {table['df']:g} degrees of freedom, dispersion {table['dispersion']:.6g}" if table["df"] else "")
    if "newton_steps" in table:  # tables saved before the Newton finish lack it
        steps = table["newton_steps"]
        heading += (f"; at the optimum: {steps} Newton step{'' if steps == 1 else 's'} from the trained "
                    f"coefficients, {table['remaining_step']:.1e} standard errors left")
    columns = f"{'estimate':>13}  {'std. error':>11}  {statistic:>9}  {'p-value':>10}"
    lines = [heading, f"  {'':<{width}}  {columns}"]
    for name, estimate, error, value, p_value in zip(table["names"], table["estimate"], table["std_error"],
                                                     table["statistic"], table["p_value"], strict=True):
        lines.append(f"  {name:<{width}}  {estimate:>+13.6g}  {error:>11.4g}  {value:>+9.3f}  "
                     f"{p_value:>10.3g}")
    return lines


def cmd_report(args):
    require_matplotlib()
    inputs = {"model directory": args.model_dir, **({"dataset": args.data} if args.data else {})}
    check_output_target(args.output, "output", inputs)
    sections = write_report(args.model_dir, args.output, data=args.data, runner=args.runner,
                            conf_path=args.conf_path, partition_cache=args.partition_cache)
    _print_result({"output": args.output, "sections": [section.title for section in sections],
                   "figures": sum(section.png is not None for section in sections)}, args.json)


COMMANDS = {"ingest": cmd_ingest, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "inspect": cmd_inspect, "report": cmd_report}


def _one_line(text):
    return " ".join(str(text).split())


def _fail(message, status):
    print(f"mrtrain: error: {_one_line(message)}", file=sys.stderr)
    return status


#: Arguments that are local paths or URIs: a relative path is made absolute once, before the command runs.
PATH_ARGUMENTS = ("src", "dest", "data", "model_dir", "dir", "checkpoint_dir", "output", "like",
                  "init_centers", "conf_path", "trees_json")


def absolute_paths(args):
    """Make every relative local path among ``args`` absolute (:func:`mrtrain.storage.filesystem.absolute`),
    so that nothing the command runs depends on the working directory, which mrjob's inline runner
    changes while a task runs."""
    for name in PATH_ARGUMENTS:
        if getattr(args, name, None) is not None:
            setattr(args, name, absolute(getattr(args, name)))


def _inputs(args):
    """The paths a command reads, for errors that cannot say which file they came from."""
    names = ("src", "data", "model_dir", "dir", "checkpoint_dir", "conf_path")
    return ", ".join(str(getattr(args, name)) for name in names if getattr(args, name, None))


#: Exit status when the reader of stdout went away (128 + SIGPIPE), as shells report a command killed by
#: SIGPIPE, e.g. ``yes | head``.
BROKEN_PIPE = 141


def _closed_stdout():
    """``mrtrain inspect ck | head``: the reader closed the pipe. As the Python docs recommend, point
    stdout at /dev/null, so that the interpreter's flush at exit does not fail again, and end quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return BROKEN_PIPE


def _os_error_text(error):
    """An OSError raised by the system (``[Errno 2] No such file or directory: 'x.csv'``) as
    ``x.csv: No such file or directory``, the path first as in every other error; any other error as is."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror and str(error).startswith(
            "[Errno"):
        also = f" (and {error.filename2})" if error.filename2 is not None else ""
        return f"{error.filename}{also}: {error.strerror}"
    return error


def main(argv=None):
    """Entry point of the ``mrtrain`` console script; returns the exit status.

    0: done; 2: bad input (options, files, data, also found by a map task); 1: a failed MapReduce job or
    any other error; 130: interrupted (Ctrl-C); 141: stdout's reader closed the pipe (nothing printed).
    """
    try:
        args = build_parser().parse_args(argv)
        sys.stdout.flush()
    except SystemExit as stop:  # --help, --version (0) or a usage error, already printed (2)
        return stop.code
    except BrokenPipeError:  # mrtrain train --help | head
        return _closed_stdout()
    _configure_logging(args.verbose, args.quiet)
    absolute_paths(args)
    try:
        with one_task_server():  # the command's jobs on the local runner share one task server
            COMMANDS[args.command](args)
        sys.stdout.flush()
    except BrokenPipeError:
        return _closed_stdout()
    except KeyboardInterrupt:
        print("mrtrain: interrupted", file=sys.stderr)
        return INTERRUPTED
    except StepFailedException as error:
        cause = TASK_ERRORS.partition_error()
        if cause is None:
            return _fail(f"a MapReduce job failed: {error} (rerun with -vv for mrjob's log)", 1)
        is_data_error, message = cause
        return _fail(message, 2) if is_data_error else _fail(f"a MapReduce job failed: {message}", 1)
    except PartitionError as error:
        return _fail(f"a MapReduce job failed: {error}", 1)
    except MissingDependencyError as error:
        return _fail(error, 2)
    except (ValueError, OSError) as error:
        return _fail(_os_error_text(error), 2)
    except RecursionError as error:
        log.debug("traceback:", exc_info=True)
        return _fail(f"{_inputs(args)}: expected readable input, found values nested too deeply to parse "
                     f"(RecursionError: {error})", 2)
    except MemoryError as error:
        log.debug("traceback:", exc_info=True)
        return _fail(f"{_inputs(args)}: expected input that fits in memory, found it too large to read "
                     f"(MemoryError{': ' if str(error) else ''}{error})", 2)
    except Exception as error:
        log.debug("traceback:", exc_info=True)
        return _fail(f"{type(error).__name__}: {error} (rerun with -vv for the traceback)", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
