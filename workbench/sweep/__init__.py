"""Optuna sweeps over a spec's `search:` space, tracked as MLflow parent + child runs.

The `search:` section itself is `workbench/search.py` (the spec owns it); this package loads
Optuna on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["sweep", "worker", "trials_frame", "best_trials"]


def __getattr__(name: str) -> Any:
    if name in ("sweep", "worker"):
        from workbench.sweep import driver

        return getattr(driver, name)
    if name in ("trials_frame", "best_trials"):
        from workbench.sweep import report

        return getattr(report, name)
    raise AttributeError(name)
