"""``python -m mrtrain``: the ``mrtrain`` command."""

import sys

from mrtrain.cli import main

sys.exit(main())
