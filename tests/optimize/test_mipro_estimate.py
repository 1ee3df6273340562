"""MIPROv2's planned calls follow DSPy's trial loop: with minibatches it scores the program as
given on the whole dev set, one full evaluation every 5 trials, and one more at the end when the
trials are not a multiple of 5 (CLINC150 retrieval_demos+MIPROv2, light, zero-shot: 9 minibatch
trials and 3 full evaluations of 100 items; the plan said 533 compile calls, the run made 654). Zero-shot
(no demo maxima) still bootstraps up to 3 traces per candidate set for the proposer's examples (BFCL
retrieval_demos+MIPROv2: planned 245 without them, made 275, 18 of them bootstrap attempts)."""

from __future__ import annotations

from workbench.optimize.estimate import compile_calls

ZERO_SHOT = {"auto": "light", "max_bootstrapped_demos": 0, "max_labeled_demos": 0}


def test_light_zero_shot_counts_the_full_evaluation_after_the_last_trials():
    calls, how = compile_calls("MIPROv2", ZERO_SHOT, predictors=1, per_example=1, train=1000, val=200)
    proposals = 10 + 6 + 1 + 1
    assert calls == proposals + 9 * 35 + 3 * 100 + 6 * 12, calls
    assert "9 trials on 100 dev items" in how


def test_trials_that_are_a_multiple_of_five_need_no_extra_full_evaluation():
    # with demos: 2 variables per predictor, 10 trials, full evaluations at start, 5 and 10
    calls, _ = compile_calls("MIPROv2", {"auto": "light"}, predictors=1, per_example=1, train=1000, val=200)
    bootstrap = 6 * 16
    assert calls == (10 + 3 + 1 + 1) + 10 * 35 + 3 * 100 + bootstrap, calls


def test_without_minibatches_every_trial_scores_the_whole_dev_set():
    calls, _ = compile_calls("MIPROv2", {**ZERO_SHOT, "minibatch": False}, predictors=1, per_example=1, train=80,
                             val=20)
    assert calls == (10 + 6 + 1 + 1) + 20 * (9 + 1) + 6 * 12, calls
