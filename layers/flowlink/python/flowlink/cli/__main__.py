"""Allows `python -m flowlink.cli`, equivalent to the `flowlink` console script."""

import sys

from flowlink.cli import main

sys.exit(main())
