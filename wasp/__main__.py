"""`python -m wasp` is the `wasp` command."""

import sys

from wasp.cli.main import main

sys.exit(main())
