"""LM backends behind one contract, and the one place a spec's `lm:` becomes a `dspy.LM`.

The names below load on first use, so `workbench.lm.preflight`, `workbench.lm.models` and
`workbench.lm.resilience` are importable without importing DSPy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Backend", "UsageCounter", "UsageTotals", "build_backend", "build_lm", "configure_cache"]


def __getattr__(name: str) -> Any:
    if name in ("Backend", "UsageCounter", "UsageTotals"):
        from workbench.lm import base

        return getattr(base, name)
    if name in ("build_backend", "build_lm", "configure_cache"):
        from workbench.lm import build

        return getattr(build, name)
    raise AttributeError(f"module 'workbench.lm' has no attribute {name!r}")
