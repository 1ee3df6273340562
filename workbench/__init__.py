"""dspy-workbench: declarative DSPy programs, compiled by optimizers, tracked in MLflow.

The Python API the CLI and notebooks share:
    spec = workbench.load_spec("experiments/routing_clinc150.yaml", ["dataset.test=50"])
    outcome = workbench.run(spec)
"""

from workbench.errors import UserError
from workbench.spec import Spec, load_spec

__version__ = "0.1.0"
__all__ = ["Spec", "UserError", "compare", "init_spec", "load", "load_spec", "run", "run_folds", "prepare",
           "__version__"]


def init_spec(data_file, task, **kwargs):
    """Write a runnable spec for a user's data file (see `workbench init`); returns its path."""
    from workbench.init import init_spec as _init_spec

    return _init_spec(data_file, task, **kwargs)


def run(spec, **kwargs):
    """Compile and evaluate a spec in one tracked run (see workbench.runner.run)."""
    from workbench.runner import run as _run

    return _run(spec, **kwargs)


def run_folds(spec, k, **kwargs):
    """Cross-fit: the spec once per fold of its test split, pooled under one parent run (see
    workbench.crossfit.run_folds); `.score`, `.ci`, `.baselines`, `.table` hold the pooled result."""
    from workbench.crossfit import run_folds as _run_folds

    return _run_folds(spec, k, **kwargs)


def prepare(spec):
    """Load data and build the program without running anything (see workbench.runner.prepare)."""
    from workbench.runner import prepare as _prepare

    return _prepare(spec)


def compare(refs, **kwargs):
    """Compare finished runs (ids or experiment names): leaderboard, paired tests, changed
    examples, prompt diffs, as DataFrames (see workbench.comparison.report.compare)."""
    from workbench.comparison.report import compare as _compare

    return _compare(list(refs) if not isinstance(refs, str) else [refs], **kwargs)


def load(folder, **kwargs):
    """A verified export bundle as a callable program (see workbench.export.loaded.load)."""
    from workbench.export.loaded import load as _load

    return _load(folder, **kwargs)
