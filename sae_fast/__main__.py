"""``python -m sae_fast`` is the ``sae-fast`` command line."""

import sys

from sae_fast.cli import main

sys.exit(main())
