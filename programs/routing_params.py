"""The router's parameters and their combinations, checked without DSPy: a spec check calls this
before any heavy import (see `workbench/program_params.py`), and the Router calls it when built.
Only the bound on `candidates` waits for the data (it needs the number of labels)."""

from __future__ import annotations

from typing import Any

CANDIDATE_ORDERS = ("rank", "label")


def fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number from 0 up to (not including) 1, not {value!r}")
    return float(value)


def check_router_params(params: dict[str, Any]) -> None:
    """ValueError naming the first bad parameter or combination; absent ones take the router's defaults."""
    candidates = params.get("candidates", 0)
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 0:
        raise ValueError(f"candidates must be between 0 and the number of labels, not {candidates!r}")
    order = params.get("candidate_order", "rank")
    if order not in CANDIDATE_ORDERS:
        raise ValueError(f"candidate_order must be one of {', '.join(CANDIDATE_ORDERS)}, not {order!r}")
    hint = params.get("ranker_hint", False)
    if not isinstance(hint, bool):
        raise ValueError(f"ranker_hint must be true or false, not {hint!r}")
    if hint and not candidates:
        raise ValueError("ranker_hint needs candidates > 0: the guess comes from the ranker that narrows the labels")
    weight = params.get("unsure_weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 1:
        raise ValueError(f"unsure_weight must be a number of at least 1, not {weight!r}")
    if weight != 1 and not candidates:
        raise ValueError("unsure_weight needs candidates > 0: the ranker that narrows the labels says how unsure it is")
    shown = [fraction(name, params.get(name, 0.0)) for name in ("hint_from", "hint_dropout")]
    if any(shown) and not hint:
        raise ValueError("hint_from and hint_dropout need ranker_hint: true (they say when the hint is shown)")
