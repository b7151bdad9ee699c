"""The ``mrtrain`` command line: ingest, train, evaluate, predict, inspect.

A thin layer over :mod:`engine` and :mod:`storage`. Progress goes to stderr, results to stdout (``--json``:
one JSON object). Bad input (also found by a map task) exits with status 2 and one line
``mrtrain: error: ...``; a failed MapReduce job exits with status 1 and one line naming the failed
partition when a task's traceback names one (mrjob's own error log is shown with ``-vv``).
"""

import argparse
import json
import logging
import math
import re
import sys

from mrjob.step import StepFailedException

from engine.driver import Progress
from engine.fitted import FittedModel
from engine.mapreduce import RUNNERS
from engine.models import MODELS
from engine.optimizers import OPTIMIZERS
from engine.trainer import Trainer
from mr_jobs.partition_job import PartitionError
from storage.checkpoint import list_checkpoints
from storage.ingest import ingest

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


def _runner_args(parser):
    parser.add_argument("--runner", choices=RUNNERS, default="local",
                        help="mrjob runner. Default: %(default)s")
    parser.add_argument("--conf-path", help="mrjob config file (default: mrjob's own lookup)")
    parser.add_argument("--no-partition-cache", dest="partition_cache", action="store_false",
                        help="map tasks read, hash and decode every partition on every pass instead of "
                             "keeping decoded partitions in their node's cache")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def build_parser():
    """The argument parser of ``mrtrain``."""
    parser = argparse.ArgumentParser(prog="mrtrain", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v: our INFO, -vv: mrjob and Hadoop too)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("ingest", help="convert CSV / libsvm / Parquet / npz into a dataset")
    p.add_argument("src")
    p.add_argument("dest")
    p.add_argument("--format", choices=("csv", "libsvm", "parquet", "npz"),
                   help="source format. Default: from the extension")
    p.add_argument("--label", default="label", help="label column. Default: %(default)s")
    p.add_argument("--weight", help="sample-weight column")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--partitions", type=int, help="number of partitions")
    size.add_argument("--partition-size", type=float, default=64.0,
                      help="target partition size in MiB. Default: %(default)s")
    p.add_argument("--n-features", type=int, help="number of features (libsvm)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="stored feature type. Default: %(default)s")
    p.add_argument("--json", action="store_true", help="print the manifest summary as JSON")

    p = commands.add_parser("train", help="train a model with iterative MapReduce jobs")
    p.add_argument("data")
    p.add_argument("--model", choices=MODELS, required=True)
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="lbfgs",
                   help="Default: %(default)s")
    p.add_argument("--l2", type=float, default=0.0, help="l2 penalty strength. Default: %(default)s")
    p.add_argument("--no-intercept", action="store_true", help="fit no intercept")
    p.add_argument("--max-iter", type=int, default=100, help="Default: %(default)s")
    p.add_argument("--tol", type=float, default=1e-8,
                   help="relative objective change to stop at. Default: %(default)s")
    p.add_argument("--gtol", type=float, default=1e-6,
                   help="gradient max-norm to stop at. Default: %(default)s")
    p.add_argument("--checkpoint-dir", help="checkpoint directory; a rerun resumes from it")
    p.add_argument("--keep-checkpoints", type=int, help="keep only the newest N checkpoints")
    p.add_argument("--reducers", type=int, default=1,
                   help="reduce tasks adding the summed vector in parallel pieces; 0: map-only jobs, the "
                        "driver adds the partitions' vectors (same bits). Default: %(default)s")
    p.add_argument("--warm-start", action="store_true",
                   help="if the newest checkpoint was made with other data, optimizer or l2, start from its "
                        "parameters with a fresh optimizer and this run's settings instead of refusing")
    p.add_argument("--break-lock", action="store_true",
                   help="take the checkpoint directory's lock even if another run seems to hold it")
    p.add_argument("--no-metrics", action="store_true", help="skip the evaluation pass after training")
    _runner_args(p)

    p = commands.add_parser("evaluate", help="metrics of a trained model on a dataset")
    p.add_argument("data")
    p.add_argument("--model-dir", required=True, help="checkpoint directory of the trained model")
    _runner_args(p)

    p = commands.add_parser("predict", help="write predictions as Parquet, one file per partition")
    p.add_argument("data")
    p.add_argument("--model-dir", required=True, help="checkpoint directory of the trained model")
    p.add_argument("--output", required=True, help="output directory (must not exist)")
    _runner_args(p)

    p = commands.add_parser("inspect", help="summarize a checkpoint directory")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true")
    return parser


def _configure_logging(verbose, quiet):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ours = logging.DEBUG if verbose else logging.WARNING
    for name in ("engine", "mr_jobs", "storage", "mrtrain"):
        logging.getLogger(name).setLevel(ours)
    mrjob_log = logging.getLogger("mrjob")
    mrjob_log.setLevel(logging.INFO if verbose >= 2 else logging.ERROR)
    mrjob_log.propagate = verbose >= 2
    TASK_ERRORS.messages.clear()
    if TASK_ERRORS not in mrjob_log.handlers:
        mrjob_log.addHandler(TASK_ERRORS)


def _print_progress(progress: Progress):
    mark = "" if progress.accepted else "  (no decrease; smaller step next)"
    print(
        f"iter {progress.iteration:4d}  objective {progress.objective:.12g}  "
        f"|grad| {progress.grad_norm:.3e}  step {progress.step:.3e}  {progress.seconds:6.2f}s{mark}",
        file=sys.stderr, flush=True,
    )


def _clean(value):
    """JSON-safe: NaN / inf become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def _print_result(result, as_json):
    if as_json:
        print(json.dumps(_clean(result), sort_keys=True))
        return
    for key, value in result.items():
        if key == "settings":
            continue
        if isinstance(value, dict):
            print(f"{key}:")
            for name, item in value.items():
                print(f"{name:>20}: {item}")
        else:
            print(f"{key:>16}: {value}")


def cmd_ingest(args):
    dataset = ingest(
        args.src, args.dest, format=args.format, label=args.label, weight=args.weight,
        partitions=args.partitions, partition_size_mb=args.partition_size, n_features=args.n_features,
        dtype=args.dtype,
    )
    summary = {
        "dataset": dataset.uri, "rows": dataset.n_rows, "features": dataset.n_features,
        "partitions": len(dataset.partitions), "classes": dataset.classes, "checksum": dataset.checksum,
    }
    _print_result(summary, args.json)


def cmd_train(args):
    trainer = Trainer(
        args.model, optimizer=args.optimizer, l2=args.l2, fit_intercept=not args.no_intercept,
        max_iter=args.max_iter, tol=args.tol, gtol=args.gtol, runner=args.runner,
        conf_path=args.conf_path, checkpoint_dir=args.checkpoint_dir,
        keep_checkpoints=args.keep_checkpoints, reducers=args.reducers, warm_start=args.warm_start,
        break_lock=args.break_lock, partition_cache=args.partition_cache,
        callback=None if args.quiet else _print_progress,
    )
    fitted = trainer.fit(args.data)
    result = fitted.to_dict()
    result["metrics"] = None if args.no_metrics else fitted.evaluate(
        args.data, runner=args.runner, conf_path=args.conf_path, partition_cache=args.partition_cache,
        reducers=args.reducers,
    )
    _print_result(result, args.json)


def cmd_evaluate(args):
    fitted = FittedModel.load(args.model_dir)
    metrics = fitted.evaluate(args.data, runner=args.runner, conf_path=args.conf_path,
                              partition_cache=args.partition_cache)
    _print_result({"model": fitted.model.kind, "metrics": metrics}, args.json)


def cmd_predict(args):
    fitted = FittedModel.load(args.model_dir)
    manifest = fitted.predict_dataset(args.data, args.output, runner=args.runner, conf_path=args.conf_path,
                                      partition_cache=args.partition_cache)
    _print_result({"output": args.output, "rows": manifest["n_rows"],
                   "partitions": len(manifest["partitions"])}, args.json)


def cmd_inspect(args):
    fitted = FittedModel.load(args.dir)
    result = fitted.to_dict()
    result["checkpoints"] = [iteration for iteration, _ in list_checkpoints(args.dir)]
    result["history"] = fitted.history_
    _print_result(result, args.json)


COMMANDS = {"ingest": cmd_ingest, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "inspect": cmd_inspect}


def _one_line(text):
    return " ".join(str(text).split())


def _fail(message, status):
    print(f"mrtrain: error: {_one_line(message)}", file=sys.stderr)
    return status


def main(argv=None):
    """Entry point of the ``mrtrain`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        COMMANDS[args.command](args)
    except StepFailedException as error:
        cause = TASK_ERRORS.partition_error()
        if cause is None:
            return _fail(f"a MapReduce job failed: {error} (rerun with -vv for mrjob's log)", 1)
        is_data_error, message = cause
        return _fail(message, 2) if is_data_error else _fail(f"a MapReduce job failed: {message}", 1)
    except PartitionError as error:
        return _fail(f"a MapReduce job failed: {error}", 1)
    except (ValueError, OSError) as error:
        return _fail(error, 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
