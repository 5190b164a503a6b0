"""``python -m gpu_check`` (with the repository and benchmarks/ on PYTHONPATH): see :mod:`gpu_check.run`."""

import sys

from gpu_check.run import main

sys.exit(main())
