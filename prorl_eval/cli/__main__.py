"""`python -m prorl_eval.cli ...` is `prorl-eval ...`."""

import sys

from prorl_eval.cli.main import main

sys.exit(main())
