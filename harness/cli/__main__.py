"""`python -m harness.cli` is `pams`."""

import sys

from harness.cli.main import main

sys.exit(main())
