"""COPRO's planned calls follow DSPy's loop: a program with several predictors re-scores every
candidate proposed so far at each depth (BFCL, two predictors, breadth 4, depth 2: 24 scorings of
the 80 training items; the old breadth x depth plan said 656 and the run passed 760 in depth 2)."""

from __future__ import annotations

from workbench.optimize.estimate import compile_calls


def test_one_predictor_scores_breadth_candidates_per_depth():
    calls, how = compile_calls("COPRO", {"breadth": 4, "depth": 2}, predictors=1, per_example=1, train=100, val=0)
    # 3 + 4 proposals, one LM call each on the embedded LM: the CLINC150 row made exactly 807
    assert calls == 4 * 2 * 100 + 3 + 4 and "8 candidate scorings over 100 train items" in how


def test_several_predictors_rescore_every_candidate_so_far():
    calls, how = compile_calls("COPRO", {"breadth": 4, "depth": 2}, predictors=2, per_example=1, train=80, val=0)
    assert calls == 2 * (4 + 8) * 80 + 2 * (3 + 4) and "24 candidate scorings" in how
    assert calls > 760  # what the BFCL run had spent when it was stopped early in depth 2
