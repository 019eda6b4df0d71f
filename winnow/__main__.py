"""``python -m winnow ...`` is the ``winnow`` command (torchrun starts it this way)."""

import sys

from winnow.cli import main

sys.exit(main())
