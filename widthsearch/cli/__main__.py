"""``python -m widthsearch.cli``: the same as the ``widthsearch`` command."""

import sys

from . import main

sys.exit(main())
