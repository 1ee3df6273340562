"""Optuna sweeps over a spec's `search:` space, tracked as MLflow parent + child runs.

Only `space` is imported eagerly (spec.py needs it); the rest loads Optuna on first use.
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
