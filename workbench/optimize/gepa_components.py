"""Which predictor GEPA rewrites next: round robin over the predictors the minibatch called.

GEPA's own round robin visits every predictor in turn, including one the program never calls
on this data (the function caller's `select` when each request offers one function). Such an
iteration evaluates its minibatch, finds no trace of the predictor, proposes nothing, and its
rollouts are lost: 63 of 134 iterations on BFCL simple_python. This selector keeps GEPA's order
but skips predictors absent from the minibatch's traces; when none of them appears it behaves
like GEPA's (and GEPA reports the empty reflective dataset as before).
"""

from __future__ import annotations

from typing import Any


def _called(trajectories: list[Any] | None) -> set[str]:
    """Instructions of the predictors that ran in these trajectories (DSPy's trace tuples)."""
    seen: set[str] = set()
    for trajectory in trajectories or []:
        trace = trajectory.get("trace") if isinstance(trajectory, dict) else None
        for step in trace or []:
            signature = getattr(step[0], "signature", None)
            if signature is not None:
                seen.add(signature.instructions)
    return seen


class CalledRoundRobin:
    """A GEPA ReflectionComponentSelector; the position in the turn is GEPA's own state, so a
    resumed search continues where it stopped."""

    def __call__(self, state, trajectories, subsample_scores, candidate_idx: int,
                 candidate: dict[str, str]) -> list[str]:
        names = state.list_of_named_predictors
        turn = state.named_predictor_id_to_update_next_for_program_candidate
        start = turn[candidate_idx]
        called = _called(trajectories)
        for step in range(len(names)):
            pid = (start + step) % len(names)
            if candidate.get(names[pid]) in called:
                break
        else:
            pid = start
        turn[candidate_idx] = (pid + 1) % len(names)
        return [names[pid]]
