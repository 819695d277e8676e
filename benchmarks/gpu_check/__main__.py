"""Entry point of `python benchmarks/gpu_check` (see the package docstring)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout's root

from benchmarks.gpu_check.cli import main

raise SystemExit(main())
