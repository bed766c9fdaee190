"""Entry point for ``python -m wpmsync``."""
import sys

from .cli import main

sys.exit(main())
