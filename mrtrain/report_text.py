"""User-written strings (column names, category values) in the report's matplotlib figures.

matplotlib reads a string holding an even number of ``$`` as math markup: ``US$ 1% - US$ 2%`` fails to
parse, ``$5-$10`` loses its dollar signs. :func:`literal` escapes every ``$`` so that the string is drawn
as written; the report draws with TeX rendering off (``text.usetex``), whose markup this does not escape.
"""


def literal(text):
    """``text`` as a matplotlib string that is drawn as it is: each ``$`` escaped (``\\$``), so that no part
    of it is read as math markup."""
    return str(text).replace("$", "\\$")
