"""The argparse ``type=`` checks of the ``mrtrain`` command line, and :class:`OptionGroups`, through which the
model families add their options to the ``train`` parser (:meth:`mrtrain.families.family.Family.add_options`).

A check's ValueError (scikit-learn style, naming the parameter) becomes argparse's one-line error, printed
as it is (exit status 2): the parser recognizes it in :data:`CHECK_MESSAGES`.
"""

import argparse

from mrtrain.allreduce import parse_address
from mrtrain.engine.mlp import check_layers
from mrtrain.engine.params import check_int, check_number
from mrtrain.mrjob_conf import check_mrjob_conf

#: Largest ``--partition-size`` in MiB (1 TiB: one map task reads a whole partition).
MAX_PARTITION_MIB = 2**20
#: Messages of the argparse ``type=`` checks; they name the parameter or file themselves.
CHECK_MESSAGES = set()


class OptionGroups:
    """The ``train`` parser's option groups by title; :meth:`add` adds an option to one, once (an option
    two families share, such as ``--seed``, is added by the first family of the registry that has it)."""

    def __init__(self, groups):
        self.groups = groups
        self.flags = set()

    def add(self, title, flag, **kwargs):
        """Add ``flag`` with argparse's ``kwargs`` to the group ``title``, unless it is there already."""
        if flag in self.flags:
            return
        self.flags.add(flag)
        self.groups[title].add_argument(flag, **kwargs)


def type_error(error):
    """The ValueError of a check as argparse's ``type=`` error, printed as it is (see :class:`_Parser`)."""
    CHECK_MESSAGES.add(str(error))
    return argparse.ArgumentTypeError(str(error))


def argument(check, name, convert, **limits):
    """An argparse ``type=`` function: ``convert`` the text, then ``check(name, value, **limits)``; its
    ValueError (scikit-learn style, naming the parameter) becomes argparse's one-line error, exit 2."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = text
        try:
            return check(name, value, **limits)
        except ValueError as error:
            raise type_error(error) from None

    parse.__name__ = name
    return parse


def number_list(check, name, **limits):
    """An argparse ``type=`` function for ``V[,V...]``: a list of floats, each passing ``check``."""

    def parse(text):
        values = []
        for item in text.split(","):
            try:
                value = float(item)
            except ValueError:
                value = item
            try:
                values.append(check(name, value, **limits))
            except ValueError as error:
                raise type_error(error) from None
        return values

    return parse


def float_at_least(minimum, name):
    return argument(check_number, name, float, minimum=minimum)


def int_at_least(minimum, name):
    return argument(check_int, name, int, minimum=minimum)


def layer_sizes(text):
    """``--layers 64,32`` -> ``[64, 32]``; anything but a comma-separated list of ints >= 1 is an error."""
    try:
        sizes = [int(size) for size in text.split(",")]
    except ValueError:
        sizes = text
    try:
        return list(check_layers(sizes))
    except ValueError as error:
        raise type_error(error) from None


def column_list(text):
    """``--categorical a,b`` -> ``["a", "b"]``; ingest checks the names."""
    return text.split(",")


def partition_size(name, value):
    number = check_number(name, value, minimum=0, strictly=True)
    if number > MAX_PARTITION_MIB:
        raise ValueError(f"The {name!r} parameter must be a finite float in (0, {MAX_PARTITION_MIB}] (MiB). "
                         f"Got {value!r} instead.")
    return number


def fraction(name, value):
    number = check_number(name, value)
    if not 0 <= number <= 1:
        raise ValueError(f"The {name!r} parameter must be a finite float in [0, 1]. Got {value!r} instead.")
    return number


def address(name, value):
    parse_address(value)
    return value


def conf_path(text):
    try:
        return check_mrjob_conf(text)
    except ValueError as error:
        raise type_error(error) from None
