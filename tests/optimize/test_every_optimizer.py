"""Every registered optimizer compiles the router (tiny budgets): on the recorded LM in the fast
tier, on the real embedded LM in the slow one.

Parametrized over the registry, so a new optimizer without an entry in BUDGETS fails here
until someone decides how to test it cheaply.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import FAST_LM, SPEC
from workbench.errors import UserError
from workbench.optimize.estimate import calls_per_example, compile_calls
from workbench.optimize.sequence import steps_of
from workbench.registry import optimizers
from workbench.runner import run
from workbench.spec import load_spec

BUDGETS = {
    "none": {},
    "retrieval_demos": {"k": 2},
    "LabeledFewShot": {"k": 2},
    "BootstrapFewShot": {"max_bootstrapped_demos": 1, "max_labeled_demos": 1},
    "BootstrapFewShotWithRandomSearch": {"num_candidate_programs": 1, "max_bootstrapped_demos": 1,
                                         "max_labeled_demos": 1},
    "KNNFewShot": {"k": 1, "max_bootstrapped_demos": 1, "max_labeled_demos": 0},
    "MIPROv2": {"auto": None, "num_candidates": 2, "num_trials": 1, "minibatch": False,
                "max_bootstrapped_demos": 0, "max_labeled_demos": 1},
    "COPRO": {"breadth": 2, "depth": 1},
    "SIMBA": {"max_steps": 1, "num_candidates": 2, "bsize": 2, "max_demos": 1},
    "GEPA": {"max_metric_calls": 12, "reflection_minibatch_size": 2},
    "sequence": {"steps": [{"name": "retrieval_demos", "params": {"k": 2}},
                           {"name": "MIPROv2", "params": {"auto": None, "num_candidates": 2, "num_trials": 1,
                                                          "minibatch": False, "max_bootstrapped_demos": 0,
                                                          "max_labeled_demos": 0}}]},
    # weight optimization: a couple of LoRA steps on the CPU (the embedded LM only)
    "finetune": {"max_steps": 2, "batch_size": 2},
    "BootstrapFinetune": {"max_steps": 1, "batch_size": 1},
    "BetterTogether": {"strategy": "p -> w", "prompt_optimizer": "LabeledFewShot", "prompt_params": {"k": 1},
                       "finetune_params": {"max_steps": 2, "batch_size": 2}},
}
EMBEDDED_ONLY = {"finetune", "BootstrapFinetune", "BetterTogether"}
NEEDS_LM_TO_COMPILE = {"BootstrapFewShot", "BootstrapFewShotWithRandomSearch", "MIPROv2", "COPRO", "SIMBA", "GEPA",
                       "sequence"}
REPORTS_DEV_SCORE = {"MIPROv2", "GEPA", "BootstrapFewShotWithRandomSearch", "sequence"}
SELECTS_ON_TRAIN = {"COPRO", "SIMBA"}  # their score of their choice is in-sample: never logged as dev_score


def test_every_registered_optimizer_has_a_budget():
    assert set(optimizers.names()) == set(BUDGETS)


@pytest.mark.parametrize("lm", ["recorded", pytest.param("embedded", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_optimizer_compiles_and_evaluates(name, lm):
    spec = load_spec(SPEC, [*(FAST_LM if lm == "recorded" else []),
                            "dataset.train=12", "dataset.dev=4", "dataset.test=3", "tracking.enabled=false",
                            f"optimizer.name={name}", "optimizer.prompt_max_tokens=96", "lm.cache=false",
                            f"optimizer.params={json.dumps(BUDGETS[name])}"])  # JSON is YAML: validated too
    if name in EMBEDDED_ONLY and lm == "recorded":  # refused in one line, before any training
        with pytest.raises(UserError, match="needs lm.backend embedded"):
            run(spec)
        return
    outcome = run(spec)
    assert outcome.result.n == 3 and outcome.result.failures == 0
    predictor = outcome.program.predict
    if name in NEEDS_LM_TO_COMPILE:
        assert outcome.compile_lm_calls > 0
    if lm == "recorded":  # the estimate printed before a run bounds what compile spends (cache off)
        planned = sum(compile_calls(step, params, predictors=len(list(outcome.program.named_predictors())),
                                    per_example=calls_per_example(outcome.program), train=12, val=4)[0]
                      for step, params in steps_of(name, dict(BUDGETS[name])))
        assert outcome.compile_lm_calls <= planned, (outcome.compile_lm_calls, planned)
    if name in REPORTS_DEV_SCORE:  # logged as dev_score beside the test score (the dev-to-test gap)
        assert outcome.dev_score is not None and 0 <= outcome.dev_score <= 1, outcome.dev_score
    if name in SELECTS_ON_TRAIN:
        assert outcome.dev_score is None
    if name == "LabeledFewShot":
        assert len(predictor.demos) == 2
    if name == "retrieval_demos":
        assert outcome.program.demo_pool.k == 2 and outcome.compile_lm_calls == 0
    if name == "sequence":  # MIPROv2 searched instructions on the program retrieval_demos returned
        assert outcome.program.demo_pool.k == 2
    if name == "KNNFewShot":
        assert outcome.result.usage.calls >= 3  # it bootstraps at inference time, per query
    if name in EMBEDDED_ONLY:  # the evaluation ran on the adapter it trained
        import dspy

        assert spec.lm.lora and spec.lm.lora_sha256 and dspy.settings.lm.model.endswith(
            f"+lora-{spec.lm.lora_sha256[:12]}")


@pytest.mark.slow
def test_knn_fewshot_vectors_do_not_leak_between_runs():
    """Two KNNFewShot runs on different train sets in one process: each uses its own
    vectorizer (DSPy's embedding cache once returned the other run's vectors)."""
    for train in (12, 30):
        spec = load_spec(SPEC, [f"dataset.train={train}", "dataset.dev=4", "dataset.test=2", "tracking.enabled=false",
                                "optimizer.name=KNNFewShot", "lm.cache=false",
                                f"optimizer.params={json.dumps(BUDGETS['KNNFewShot'])}"])
        outcome = run(spec)
        assert outcome.result.failures == 0, outcome.result.most_common_error()
