"""``python -m encore.deploy up|test|down|status``."""

import sys

from encore.deploy.cli import main

sys.exit(main())
