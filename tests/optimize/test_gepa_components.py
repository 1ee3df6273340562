"""GEPA rewrites only predictors the program called: on BFCL simple_python the function caller's
`select` never runs (one function is offered), and GEPA's plain round robin lost an iteration to it
every other turn."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tests.conftest import FAST_LM, ROOT
from workbench.optimize.gepa_components import CalledRoundRobin

SIMPLE = ROOT / "experiments" / "tools_bfcl_simple.yaml"


def _state(names: list[str]) -> SimpleNamespace:
    return SimpleNamespace(list_of_named_predictors=names, named_predictor_id_to_update_next_for_program_candidate=[0])


def _trajectory(*instructions: str) -> dict:
    steps = [(SimpleNamespace(signature=SimpleNamespace(instructions=text)), {}, None) for text in instructions]
    return {"trace": steps, "example": None, "prediction": None, "score": 0.0}


def test_a_predictor_the_minibatch_never_called_is_skipped():
    state, pick = _state(["select", "call"]), CalledRoundRobin()
    candidate = {"select": "Which function?", "call": "Call it."}
    picks = [pick(state, [_trajectory("Call it.")], [0.0], 0, candidate) for _ in range(3)]
    assert picks == [["call"]] * 3


def test_called_predictors_take_turns_and_none_called_falls_back_to_plain_round_robin():
    state, pick = _state(["select", "call"]), CalledRoundRobin()
    candidate = {"select": "Which function?", "call": "Call it."}
    both = [_trajectory("Which function?", "Call it.")]
    assert [pick(state, both, [0.0], 0, candidate) for _ in range(3)] == [["select"], ["call"], ["select"]]
    assert [pick(state, [], [], 0, candidate) for _ in range(2)] == [["call"], ["select"]]


def test_gepa_on_the_function_caller_never_reflects_on_the_uncalled_select(monkeypatch):
    """Recorded LM, a few iterations: every reflective dataset GEPA builds has examples; with GEPA's
    own round robin the first iteration picks `select` and finds none."""
    from dspy.teleprompt.gepa import gepa_utils

    from workbench.runner import run
    from workbench.spec import load_spec

    built = []
    original = gepa_utils.DspyAdapter.make_reflective_dataset

    def spy(self, candidate, eval_batch, components_to_update):
        try:
            out = original(self, candidate, eval_batch, components_to_update)
        except Exception as exc:
            built.append((components_to_update, str(exc)))
            raise
        built.append((components_to_update, "ok"))
        return out

    monkeypatch.setattr(gepa_utils.DspyAdapter, "make_reflective_dataset", spy)
    params = {"max_metric_calls": 16, "reflection_minibatch_size": 2}
    spec = load_spec(SIMPLE, [*FAST_LM, "dataset.test=2", "dataset.dev=4", "dataset.train=8", "tracking.enabled=false",
                              "lm.cache=false", "optimizer.name=GEPA", f"optimizer.params={json.dumps(params)}"])
    outcome = run(spec)
    assert outcome.result.n == 2
    assert built, "GEPA built no reflective dataset: raise max_metric_calls"
    assert all(status == "ok" and names == ["call"] for names, status in built), built


@pytest.mark.parametrize("setting", ["round_robin", "all"])
def test_a_spec_may_still_choose_gepas_own_selector(setting):
    from workbench.optimize import dspy_teleprompters

    seen = {}

    class Probe:  # GEPA's constructor, stopped once it has its arguments
        def __init__(self, metric=None, reflection_lm=None, num_threads=None, auto=None, track_stats=None,
                     component_selector=None):
            seen["component_selector"] = component_selector
            raise ValueError("stop here")

    ctx = SimpleNamespace(feedback_metric=None, reflection_lm=None, threads=1, checkpoint_dir=None, trainset=[],
                          valset=[], student=None, source="spec.yaml")
    with pytest.raises(Exception, match="stop here"):
        dspy_teleprompters._gepa(ctx, Probe, {"component_selector": setting})
    assert seen["component_selector"] == setting
