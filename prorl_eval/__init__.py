"""prorl_eval: measure reasoning boundaries (pass@k) with one sample schema and one verifier
registry.

Load results into pandas:
    >>> import prorl_eval
    >>> samples = prorl_eval.load_samples("runs/x")    # doctest: +SKIP
    >>> results = prorl_eval.load_results("runs/x")    # doctest: +SKIP
    >>> problems = prorl_eval.load_problems("math500", data_dir="data")  # doctest: +SKIP
"""

from prorl_eval.problems import load_problems
from prorl_eval.results import load_breakdowns, load_results, load_samples

__version__ = "0.1.0"
__all__ = ["__version__", "load_breakdowns", "load_problems", "load_results", "load_samples"]
