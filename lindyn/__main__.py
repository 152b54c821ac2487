"""``python -m lindyn`` runs the command line."""

import sys

from lindyn.cli import main

sys.exit(main())
