"""Validation of user-facing training parameters, with errors that name the parameter."""

import math


def check_number(name, value, *, minimum=None, strictly=False):
    """Return ``value`` as a finite float, or raise naming ``name``, the allowed range and the value."""
    allowed = "a finite float" + ("" if minimum is None else f" {'>' if strictly else '>='} {minimum}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    ok = math.isfinite(number) and (
        minimum is None or (number > minimum if strictly else number >= minimum)
    )
    if not ok or isinstance(value, bool):
        raise ValueError(f"The '{name}' parameter must be {allowed}. Got {value!r} instead.")
    return number


def check_int(name, value, *, minimum):
    """Return ``value`` as an int >= ``minimum``, or raise naming ``name`` and the value."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"The '{name}' parameter must be an int >= {minimum}. Got {value!r} instead.")
    return value


def check_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices``, else raise naming ``name`` and the choices."""
    if value not in choices:
        raise ValueError(f"The '{name}' parameter must be one of {sorted(choices)}. Got {value!r} instead.")
    return value
