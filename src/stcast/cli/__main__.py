"""`python -m stcast.cli ...` (the distributed launcher re-runs this)."""

import sys

from stcast.cli import main

sys.exit(main())
