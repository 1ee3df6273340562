"""Function calling and the calculator agent on the real embedded LM (a few items each, slow
tier); a tracked tools run on the recorded LM (fast tier)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FAST_LM, ROOT, labeled_run, last_sent_to_lm, run_cli
from workbench.runner import run
from workbench.spec import load_spec

SIMPLE = ROOT / "experiments" / "tools_bfcl_simple.yaml"
OFF = ["tracking.enabled=false", "dataset.dev=4"]
JSON_TYPES = {"integer": int, "float": (int, float), "number": (int, float), "string": str, "boolean": bool,
              "array": list, "tuple": list, "dict": dict, "object": dict}


@pytest.fixture(scope="module")
def simple():
    return run(load_spec(SIMPLE, OFF + ["dataset.test=4"]))


@pytest.mark.slow
def test_arguments_are_well_typed_under_the_schema_grammar(simple):
    table = simple.result.table
    assert simple.result.failures == 0
    for _, row in table.iterrows():
        [function] = json.loads(row.functions)
        assert row.predicted["name"] == function["name"]
        properties = function["parameters"]["properties"]
        for arg, value in row.predicted["arguments"].items():
            assert arg in properties  # no invented argument: the grammar only has the schema's
            assert isinstance(value, JSON_TYPES[properties[arg]["type"]]), (arg, value)
    assert set(simple.summary_metrics) >= {"calls.correct", "calls.wrong_value", "calls.missing_argument"}
    assert [b.name for b in simple.baselines] == ["rules_ast"]


@pytest.mark.slow
def test_multiple_picks_one_of_the_offered_functions():
    out = run(load_spec(ROOT / "experiments" / "tools_bfcl_multiple.yaml", OFF + ["dataset.test=2"]))
    for _, row in out.result.table.iterrows():
        assert row.predicted["name"] in [f["name"] for f in json.loads(row.functions)]


@pytest.mark.slow
def test_exec_spec_runs_predicted_calls_in_the_sandbox():
    out = run(load_spec(ROOT / "experiments" / "tools_bfcl_exec.yaml", OFF + ["dataset.test=2", "dataset.dev=2"]))
    assert out.result.failures == 0 and out.result.n == 2
    assert set(out.result.table.result_type) <= {"exact_match", "real_time_match", "structural_match"}


@pytest.mark.slow
def test_agent_stays_within_its_step_limit_and_records_its_trajectory():
    spec = load_spec(ROOT / "experiments" / "agent_gsm8k_calculator.yaml",
                     OFF + ["dataset.test=1", "program.params.max_steps=2"])
    row = run(spec).result.table.iloc[0]
    if row.error_type:  # a 135M LM may fail to produce a number: counted, not fatal
        assert row.score == 0.0
    else:
        trajectory = json.loads(row.trajectory)
        assert row.steps <= 2 and row.tool_calls <= 2
        assert all(trajectory[f"tool_name_{i}"] in ("calculator", "finish") for i in range(row.steps))


def test_tracked_tools_run_logs_error_types(store):
    sets = sum((["--set", o] for o in store.overrides), [])
    result = run_cli("run", str(SIMPLE), "--set", "dataset.test=2", "--set", "dataset.dev=2", *sets, "--quiet",
                     *sum((["--set", o] for o in FAST_LM), []))
    assert result.returncode == 0, result.stderr[-2000:]
    [row] = store.runs()
    run_info = store.client().get_run(row["run_id"])
    assert run_info.info.status == "FINISHED" and "calls.correct" in run_info.data.metrics
    # one function offered, chosen without the LM: one LM call per item is planned, not one per predictor
    assert run_info.data.metrics["planned_lm_calls"] == 2
    assert "error_types.csv" in {a.path for a in store.client().list_artifacts(row["run_id"])}


def test_unknown_tool_in_a_spec_is_one_line_exit_2():
    result = run_cli("run", str(ROOT / "experiments" / "agent_gsm8k_calculator.yaml"), "--set",
                     "program.params.tools=[calculater]", "--set", "tracking.enabled=false")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "program.params.tools" in result.stderr and "calculator" in result.stderr


def _prompt_of(caller, question: str) -> str:
    """The text the call predictor sent for one request (a DummyLM records it)."""
    import dspy
    from dspy.utils.dummies import DummyLM

    lm = DummyLM([{"arguments": '{"city": "Paris"}'}])
    function = {"name": "weather", "description": "Weather in a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        out = caller(question=question, functions=json.dumps([function]))
    assert out.call == {"name": "weather", "arguments": {"city": "Paris"}}
    return "\n".join(str(m["content"]) for m in lm.history[-1]["messages"])


def test_compiled_demos_reach_the_prompt_when_nothing_is_retrieved():
    """BootstrapFewShot/LabeledFewShot/MIPROv2 store demos on the `call` predictor; without a
    retrieving pool they must be sent, not replaced by an empty retrieved list."""
    import dspy

    from programs.tool_use import FunctionCaller

    caller = FunctionCaller()
    assert "Rome in spring" not in _prompt_of(caller, "weather in Paris?")
    caller.call.demos = [dspy.Example(request="What is the weather in Rome in spring?", function="weather: ...",
                                      arguments={"city": "Rome"})]
    assert "Rome in spring" in _prompt_of(caller, "weather in Paris?")


def test_retrieved_demos_reach_the_prompt():
    from programs.pool import ExamplePool
    from programs.tool_use import FunctionCaller

    accepted = [{"weather": {"city": ["Oslo"]}}]
    functions = json.dumps([{"name": "weather", "description": "Weather in a city.",
                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])
    pool = ExamplePool("question", "accepted", [{"question": "weather in Oslo tomorrow", "accepted": accepted,
                                                 "functions": functions}], k=1, extra_fields=("functions",))
    assert "weather in Oslo tomorrow" in _prompt_of(FunctionCaller(pool=pool), "weather in Paris?")


def test_demos_a_predictor_cannot_show_are_named():
    import dspy

    from workbench.optimize.demo_check import unshown_demos

    class TwoStage(dspy.Module):
        def __init__(self):
            super().__init__()
            self.call = dspy.Predict("request, function -> arguments")

    program = TwoStage()
    assert unshown_demos(program) == []
    program.call.demos = [dspy.Example(question="weather in Rome?", accepted="..."),
                          dspy.Example(request="weather in Oslo?", function="weather", arguments="{}")]
    [line] = unshown_demos(program)
    assert line.startswith("1 of 2 demos on predictor `call` lack its fields (request, function -> arguments)"), line


def test_labeled_demos_become_the_function_callers_own_fields():
    """LabeledFewShot copies raw BFCL examples (question/functions/accepted) in as demos; the
    `call` predictor reads request/function -> arguments. The caller shows them in its fields."""
    import dspy

    from programs.tool_use import FunctionCaller
    from workbench.optimize.demo_check import unshown_demos
    from workbench.prompts import render_program

    function = {"name": "weather", "description": "Weather in a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    caller = FunctionCaller()
    caller.call.demos = [dspy.Example(question="Weather in Rome in spring?", functions=json.dumps([function]),
                                      accepted=[{"weather": {"city": ["Rome"]}}])]
    assert unshown_demos(caller) == []
    prompt = _prompt_of(caller, "weather in Paris?")
    assert "Weather in Rome in spring?" in prompt and '"city": "Rome"' in prompt
    rendered = render_program(caller)  # the logged prompts show the demo as the predictor reads it
    assert "**request**: Weather in Rome in spring?" in rendered and "**accepted**" not in rendered


def test_a_labeled_run_on_the_function_caller_keeps_its_demos_without_a_warning(capsys):
    out, _ = labeled_run(SIMPLE, OFF + FAST_LM + ["dataset.test=2"], 3, "call", capsys.readouterr)
    assert out.result.n == 2


@pytest.mark.slow
def test_labeled_demos_reach_the_embedded_lms_prompt(capsys):
    """End to end on the embedded LM: LabeledFewShot's raw BFCL examples are in the messages the
    model decodes from (before 9393f9b they were dropped and the run measured zero-shot)."""
    out, questions = labeled_run(SIMPLE, OFF + ["dataset.test=2"], 2, "call", capsys.readouterr)
    sent = last_sent_to_lm()
    assert all(q in sent for q in questions)
    assert out.result.n == 2 and out.result.failures == 0


@pytest.mark.slow
@pytest.mark.parametrize("omit", [False, True])
def test_omit_optional_leaves_the_optional_argument_out_of_the_demo_the_embedded_lm_reads(omit, embedded_backend):
    import dspy

    from programs.pool import ExamplePool
    from programs.tool_use import FunctionCaller
    from workbench.lm import build_lm
    from workbench.lm.adapters import CompactJSONAdapter
    from workbench.spec import LMSpec

    function = {"name": "weather", "description": "Weather forecast for a city.",
                "parameters": {"type": "object", "required": ["city"], "properties": {
                    "city": {"type": "string"}, "days": {"type": "integer", "description": "days ahead, default 3"}}}}
    functions = json.dumps([function])
    pool = ExamplePool("question", "accepted", [{"question": "forecast for Oslo", "functions": functions,
                                                 "accepted": [{"weather": {"city": ["Oslo"], "days": ["", 3]}}]}],
                       k=1, extra_fields=("functions",))
    lm = build_lm(LMSpec(cache=False, max_tokens=64), backend=embedded_backend)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        out = FunctionCaller(pool=pool, omit_optional=omit)(question="forecast for Bergen", functions=functions)
    sent = "\n".join(str(m["content"]) for m in lm.history[-1]["messages"])
    assert "Oslo" in sent and ('"days"' in sent) is not omit, sent  # the demo's answer, with or without `days`
    assert out.call["name"] == "weather" and set(out.call["arguments"]) <= {"city", "days"}
