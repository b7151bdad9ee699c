"""Errors raised by the storage package for bad input data."""


class DataError(ValueError):
    """Bad input data.

    The message is one line naming the file, the 1-based row or line, or the field, what was
    expected and what was found, e.g. ``data/x.csv: line 17: expected 5 columns, found 4``.
    """


class CheckpointError(DataError):
    """A checkpoint file that cannot be trusted: unreadable, truncated, wrong format or checksum.

    Parameters
    ----------
    uri : str
        The checkpoint file.
    reason : str
        What is wrong, one line.
    """

    def __init__(self, uri, reason):
        super().__init__(f"{uri}: {reason}")
        self.uri = uri
        self.reason = reason
