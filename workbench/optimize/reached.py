"""Optimizers that work through every predictor, shown only the predictors the data reaches.

DSPy's COPRO proposes and scores instructions for each of `program.predictors()`, and MIPROv2
proposes for each and searches over all of them (its trial count grows with their number). A
predictor that `forward` never calls on the training data (the function caller's `select` on
BFCL simple_python, where each request offers one function) gets candidates whose scores cannot
differ: half of COPRO's 1,934 compile calls on that task, and half of MIPROv2's search
dimensions. `only_predictors` hides the unreached ones for the length of a compile (the program still
runs whole; only what the optimizer lists and rewrites changes) and gives the result back with
its own class, every predictor in its state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

# The DSPy optimizers compiled through `only_predictors` (workbench/optimize/dspy_teleprompters.py);
# their planned calls count the reached predictors too (workbench/optimize/estimate.py).
REACHED_ONLY = frozenset({"COPRO", "MIPROv2"})


@contextlib.contextmanager
def only_predictors(program: Any, names: list[str]) -> Iterator[Callable[[Any], Any]]:
    """Within the block `program` (and every deepcopy made of it) lists only `names` as its
    predictors; yields a function that restores the original class on a compiled copy."""
    original = type(program)
    every = [name for name, _ in program.named_predictors()]
    if set(names) >= set(every):
        yield lambda compiled: compiled
        return
    keep = frozenset(names)

    def named_predictors(self):
        return [(name, p) for name, p in original.named_predictors(self) if name in keep]

    restricted = type(original.__name__, (original,), {"named_predictors": named_predictors,
                                                        "__module__": original.__module__})

    def restore(compiled: Any) -> Any:
        kept = [c.get("program") for c in getattr(compiled, "candidate_programs", None) or [] if isinstance(c, dict)]
        for one in (compiled, *kept):
            if isinstance(one, restricted):
                one.__class__ = original
        return compiled

    program.__class__ = restricted
    try:
        yield restore
    finally:
        program.__class__ = original
