"""`python -m kubeupgrade` is the `kubeupgrade` command."""

import sys

from kubeupgrade.cli.entry import main

sys.exit(main())
