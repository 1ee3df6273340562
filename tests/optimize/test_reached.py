"""COPRO rewrites only predictors the training data reaches: on BFCL simple_python the function
caller's `select` never runs (one function per request), and COPRO spent half its compile calls
scoring instructions for it that could not change a thing."""

from __future__ import annotations

import json

import dspy
import pytest

from programs.tool_use import FunctionCaller
from tests.conftest import FAST_LM, ROOT
from workbench.optimize.estimate import estimate
from workbench.optimize.reached import only_predictors
from workbench.program_contract import predictors_used
from workbench.runner import prepare, run
from workbench.spec import load_spec

SIMPLE = ROOT / "experiments" / "tools_bfcl_simple.yaml"
ONE = json.dumps([{"name": "f", "parameters": {}}])
TWO = json.dumps([{"name": "f", "parameters": {}}, {"name": "g", "parameters": {}}])


def test_select_is_reached_only_when_the_lm_selects_among_several_functions():
    one, two = dspy.Example(question="q", functions=ONE), dspy.Example(question="q", functions=TWO)
    assert predictors_used(FunctionCaller(select="lm"), [one, one]) == ["call"]
    assert predictors_used(FunctionCaller(select="lm"), [one, two]) == ["select", "call"]
    assert predictors_used(FunctionCaller(select="overlap"), [two]) == ["call"]


def test_only_predictors_hides_the_rest_for_the_block_and_copies_then_restores():
    program = FunctionCaller()
    with only_predictors(program, ["call"]) as restore:
        assert [n for n, _ in program.named_predictors()] == ["call"]
        copy = program.deepcopy()  # what COPRO works on
        assert [n for n, _ in copy.named_predictors()] == ["call"]
        copy.call.signature = copy.call.signature.with_instructions("rewritten")
        compiled = restore(copy)
    assert type(program) is FunctionCaller and type(compiled) is FunctionCaller
    assert [n for n, _ in compiled.named_predictors()] == ["select", "call"]
    assert {"select", "call"} <= set(compiled.dump_state())
    assert compiled.call.signature.instructions == "rewritten"


def _bfcl(name: str, params: dict, lm: list[str] = FAST_LM):
    return load_spec(SIMPLE, [*lm, "dataset.train=6", "dataset.dev=2", "dataset.test=2", "tracking.enabled=false",
                              "lm.cache=false", f"optimizer.name={name}", f"optimizer.params={json.dumps(params)}"])


@pytest.mark.parametrize("lm", ["recorded", pytest.param("embedded", marks=pytest.mark.slow)])
def test_copro_on_bfcl_simple_scores_candidates_for_call_only(lm):
    """COPRO with breadth 2, depth 1 on 6 training items. Shown both predictors it would score 4
    candidates (2 per predictor, re-scored together) = 24 program runs + 2 proposals; shown `call`
    alone, 2 candidates = 12 runs + 1 proposal, within the estimate, which counts the same."""
    spec = _bfcl("COPRO", {"breadth": 2, "depth": 1}, FAST_LM if lm == "recorded" else [])
    planned = estimate(spec, prepare(spec))
    assert planned.compile_calls == 2 * 6 + 1
    outcome = run(spec)
    assert 0 < outcome.compile_lm_calls <= planned.compile_calls
    assert type(outcome.program) is FunctionCaller
    assert outcome.program.select.signature.instructions == FunctionCaller().select.signature.instructions


def test_miprov2_on_bfcl_simple_proposes_and_searches_for_call_only(monkeypatch):
    """MIPROv2 proposes instructions for the predictors it is shown and searches one instruction
    index per predictor: only `call`'s appear in its trials."""
    from dspy.teleprompt import mipro_optimizer_v2

    proposed = []
    original = mipro_optimizer_v2.MIPROv2._propose_instructions

    def spy(self, program, *args, **kwargs):
        proposed.append([name for name, _ in program.named_predictors()])
        return original(self, program, *args, **kwargs)

    monkeypatch.setattr(mipro_optimizer_v2.MIPROv2, "_propose_instructions", spy)
    spec = _bfcl("MIPROv2", {"auto": None, "num_candidates": 2, "num_trials": 2, "minibatch": False,
                             "max_bootstrapped_demos": 0, "max_labeled_demos": 0})
    planned = estimate(spec, prepare(spec))
    outcome = run(spec)
    assert proposed == [["call"]]
    assert 0 < outcome.compile_lm_calls <= planned.compile_calls
    assert type(outcome.program) is FunctionCaller
    assert outcome.program.select.signature.instructions == FunctionCaller().select.signature.instructions
