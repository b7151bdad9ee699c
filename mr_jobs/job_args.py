"""A job's argument parser built once per job class, instead of about three times per job.

mrjob 0.7.4 builds a new :class:`argparse.ArgumentParser` of ~2,300 runner options in every
``MRJob.__init__`` (``configure_args``), and another one of the same options in every
``_non_option_kwargs`` (``mrjob.options._parse_raw_args``), which ``make_runner`` calls twice. An inline
job constructs its class once in the driver and once more per task, so that was most of an in-process
job's CPU. :class:`CachedArgsJob` builds both parsers once per job class and reuses them for every job
constructed with explicit ``args`` (the driver, and the inline runner's tasks). A job constructed with
``args=None`` (a task process of the local or hadoop runner, which reads ``sys.argv`` once) goes through
mrjob's own ``__init__`` unchanged.

What a job sees is unchanged: ``configure_args`` is what builds the parser (mrtrain's jobs add the same
arguments whatever the instance), each job parses its own arguments into a new namespace, and
``_non_option_kwargs`` is mrjob 0.7.4's with the raw-argument parser kept (``tests/test_jobs.py`` compares
both with mrjob's own, option by option). ``parse_intermixed_args`` briefly changes the parser while it
parses, so parsing with a shared parser holds a lock (jobs may be constructed in two threads at once, as
``--allreduce`` does).
"""

import argparse
import threading
import time

from mrjob.job import MRJob
from mrjob.setup import parse_legacy_hash_path

_LOCK = threading.RLock()
#: job class -> (parser, passthrough dests, file dests, raw-argument parser)
_PARSERS = {}


def _raise_value_error(message):
    """mrjob's parser error for explicit ``args``: raise, rather than print and exit."""
    raise ValueError(message)


class _RawArgAction(argparse.Action):
    """``mrjob.options._parse_raw_args``'s action: records ``(dest, option_string, values)`` in the
    namespace's ``_mrtrain_raw_args`` list instead of parsing."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace._mrtrain_raw_args.append((self.dest, option_string, values))


def _raw_parser(parser):
    """``mrjob.options._parse_raw_args``'s parser of ``parser``'s actions, built once."""
    raw_parser = argparse.ArgumentParser(add_help=False)
    raw_parser.error = _raise_value_error
    for action in parser._actions:
        raw_parser.add_argument(*action.option_strings, action=_RawArgAction, dest=action.dest,
                                nargs=1 if action.nargs is None else action.nargs)
    return raw_parser


def _parsers(cls):
    """``cls``'s cached parser, passthrough and file dests, and raw-argument parser (built on first use)."""
    with _LOCK:
        if cls not in _PARSERS:
            template = cls.__new__(cls)
            template._passthru_arg_dests = set()
            template._file_arg_dests = set()
            template.arg_parser = argparse.ArgumentParser(usage=template._usage(), add_help=False)
            template.configure_args()
            template.arg_parser.error = _raise_value_error
            _PARSERS[cls] = (template.arg_parser, frozenset(template._passthru_arg_dests),
                             frozenset(template._file_arg_dests), _raw_parser(template.arg_parser))
        return _PARSERS[cls]


class CachedArgsJob(MRJob):
    """An :class:`~mrjob.job.MRJob` whose argument parsers are built once per class (see the module).

    ``configure_args`` of a subclass must add the same arguments on every call (it runs once per class).
    """

    def __init__(self, args=None):
        if args is None:
            super().__init__(args)
            return
        # MRJob.__init__ (mrjob 0.7.4) with the class's parser instead of a new one.
        if hasattr(time, "tzset"):
            time.tzset()
        parser, passthru, files, _ = _parsers(type(self))
        self._passthru_arg_dests = set(passthru)
        self._file_arg_dests = set(files)
        self.arg_parser = parser
        self._cl_args = args
        with _LOCK:
            self.load_args(self._cl_args)
        self._stdin = None
        self._stdout = None
        self._stderr = None

    def _non_option_kwargs(self):
        """mrjob 0.7.4's ``MRJob._non_option_kwargs`` with the class's raw-argument parser."""
        if self.arg_parser is not _PARSERS.get(type(self), (None,))[0]:
            return super()._non_option_kwargs()
        namespace = argparse.Namespace(_mrtrain_raw_args=[])
        _parsers(type(self))[3].parse_known_args(self._cl_args, namespace)
        extra_args = []
        for dest, option_string, args in namespace._mrtrain_raw_args:
            if dest in self._file_arg_dests:
                extra_args.append(option_string)
                extra_args.append(parse_legacy_hash_path("file", args[0]))
            elif dest in self._passthru_arg_dests:
                # special case for --hadoop-args=-verbose etc.
                if option_string and len(args) == 1 and args[0].startswith("-"):
                    extra_args.append(f"{option_string}={args[0]}")
                else:
                    if option_string:
                        extra_args.append(option_string)
                    extra_args.extend(args)
        return dict(
            conf_paths=self.options.conf_paths,
            extra_args=extra_args,
            hadoop_input_format=self.hadoop_input_format(),
            hadoop_output_format=self.hadoop_output_format(),
            input_paths=self.options.args,
            max_output_files=self.options.max_output_files,
            mr_job_script=self.mr_job_script(),
            output_dir=self.options.output_dir,
            partitioner=self.partitioner(),
            stdin=self.stdin,
            step_output_dir=self.options.step_output_dir,
        )
