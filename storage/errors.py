"""Errors raised by the storage package for bad input data."""


class DataError(ValueError):
    """Bad input data.

    The message is one line naming the file, the 1-based row or line, or the field, what was
    expected and what was found, e.g. ``data/x.csv: line 17: expected 5 columns, found 4``.
    """
