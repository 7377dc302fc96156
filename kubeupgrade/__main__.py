"""`python -m kubeupgrade` is the `kubeupgrade` command."""

import sys

from kubeupgrade.cli.main import main

sys.exit(main())
