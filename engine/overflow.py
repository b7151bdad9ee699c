"""Float64 overflow in the sums of a pass: one definition of the limit and of the error every family raises.

A pass adds squares and products of the features (Gram sums, squared distances, second moments), so a
feature or label beyond about 1e150 overflows float64 (1e150² = 1e300, and a few thousand of those reach
the largest double, about 1.8e308). A sum that overflowed is infinite or NaN, and a model made from it is
not a model: every family refuses such sums with :class:`OverflowDataError` (bad input, one line naming the
dataset and what overflowed) instead of training on, writing or printing it.
"""

import numpy as np

from mrtrain.storage.errors import DataError

#: What every overflow error ends with: the magnitude at which float64 sums of squares overflow.
RESCALE_ADVICE = "values beyond about 1e150 need rescaling"


class OverflowDataError(DataError):
    """float64 overflowed summing the data: bad input (features or labels too large), not a bug.

    The message is one line: what was not finite, where, and :data:`RESCALE_ADVICE`.
    """


def overflow_message(what, where=""):
    """``"<what>: not finite<where>: float64 overflowed; values beyond about 1e150 need rescaling"``."""
    return f"{what}: not finite{where}: float64 overflowed; {RESCALE_ADVICE}"


def check_finite(what, *arrays, where=""):
    """Raise :class:`OverflowDataError` (:func:`overflow_message` of ``what`` and ``where``) unless every
    value of ``arrays`` is finite."""
    for values in arrays:
        if not np.isfinite(values).all():
            raise OverflowDataError(overflow_message(what, where))
