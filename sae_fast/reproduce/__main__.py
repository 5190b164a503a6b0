import sys

from sae_fast.reproduce.pipeline import main

sys.exit(main())
