"""`python -m reconciler.cli ARGS` is `reconcile ARGS`."""

import sys

from reconciler.cli.main import main

sys.exit(main())
