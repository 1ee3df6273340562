"""Tools: schemas from Python signatures, the sandbox against misbehaving tools, the safe
calculator, and execution matching of the BFCL exec functions (all real subprocesses)."""

from __future__ import annotations

import json
import time
from typing import Literal

import pytest

import tests.tools.sandbox_tools  # noqa: F401  (registers the misbehaving tools)
from metrics.bfcl_exec import exec_match, results_match
from metrics.numeric import as_number, numbers_equal
from workbench.errors import UserError
from workbench.registry import datasets, tools
from workbench.tools.arith import ArithError, evaluate, literal, parse_call
from workbench.tools.functions import function_schema
from workbench.tools.sandbox import call_tool
from workbench.tools.schema import SchemaError


def test_sleeping_tool_is_stopped_at_its_timeout():
    start = time.perf_counter()
    observed = call_tool("test_sleeps_forever", {})
    assert not observed.ok and "timeout" in observed.error
    assert time.perf_counter() - start < 6  # 1 s limit + interpreter start-up, not forever


def test_socket_is_refused(tmp_path):
    observed = call_tool("test_opens_socket", {})
    assert not observed.ok and "socket" in observed.error and "not allowed" in observed.error


def test_write_outside_its_dir_is_refused_inside_is_fine(tmp_path):
    target = tmp_path / "escaped.txt"
    observed = call_tool("test_writes_outside", {"path": str(target)})
    assert not observed.ok and "outside" in observed.error and not target.exists()
    assert call_tool("test_writes_inside", {}).value == "ok"


@pytest.mark.parametrize("name, arguments, expected", [
    ("test_raises", {"message": "boom"}, "RuntimeError: boom"),
    ("test_returns_junk", {}, "not JSON-serialisable"),
    ("test_spawns_process", {}, "subprocess"),
    ("math_gcd", {"a": "twelve", "b": 18}, "TypeError"),
    ("no_such_tool", {}, "unknown tool"),
])
def test_tool_errors_are_observations(name, arguments, expected):
    observed = call_tool(name, arguments)
    assert not observed.ok and expected in observed.error
    assert observed.text().startswith("error:")


def test_sandboxed_exec_tool_gives_the_in_process_result():
    assert call_tool("math_gcd", {"a": 12, "b": 18}).value == 6
    assert call_tool("get_prime_factors", {"number": 4567}).value == [4567]  # 4567 is prime
    assert call_tool("calculator", {"expression": "(16 - 3 - 4) * 2"}).value == 18  # trusted: in-process


def test_calculator_walks_the_ast_and_refuses_everything_else():
    assert evaluate("2 ** 10 / 4 + sqrt(16)") == 260
    assert evaluate("3 ^ 2") == 9 and evaluate("7 // 2") == 3
    for bad in ("__import__('os').system('true')", "open('x')", "a + 1", "9 ** 99999", "1 / 0", "[1, 2]"):
        with pytest.raises(ArithError):
            evaluate(bad)
    observed = call_tool("calculator", {"expression": "__import__('os')"})
    assert not observed.ok and "ArithError" in observed.error
    assert literal("[1, 2/4, 'a', (3, 4)]") == [1, 0.5, "a", [3, 4]]
    assert parse_call("calc(n=20, p=1/6)") == {"name": "calc", "arguments": {"n": 20, "p": 1 / 6}}


def test_schema_from_a_typed_function():
    def area(radius: float, units: Literal["m", "cm"] = "m", tags: list[str] | None = None) -> float:
        """Area of a circle.

        Args:
            radius: the circle's radius.
            units: unit of length.
        """
        return 0.0

    schema = function_schema(area)
    assert schema["description"] == "Area of a circle."
    props = schema["parameters"]["properties"]
    assert props["radius"] == {"type": "number", "description": "the circle's radius."}
    assert props["units"]["enum"] == ["m", "cm"] and props["tags"]["type"] == "array"
    assert schema["parameters"]["required"] == ["radius"]


@pytest.mark.parametrize("fn, message", [
    (lambda x: x, "no type annotation"),
    (lambda *numbers: 0, "*args"),
])
def test_functions_without_a_schema_are_refused(fn, message):
    with pytest.raises(SchemaError) as info:
        function_schema(fn, "broken")
    assert message in str(info.value) and "broken" in str(info.value)


def test_every_exec_function_has_a_schema_matching_bfcl():
    for category in ("bfcl_exec_simple", "bfcl_exec_multiple"):
        data = datasets.get(category)()
        for functions in data.splits["test"]["functions"]:
            for bfcl in json.loads(functions):
                ours = tools.get(bfcl["name"]).schema()["parameters"]
                assert set(bfcl["parameters"]["properties"]) <= set(ours["properties"]), bfcl["name"]
                assert set(ours["required"]) <= set(bfcl["parameters"].get("required", [])), bfcl["name"]


def test_exec_match_runs_both_calls():
    import dspy

    data = datasets.get("bfcl_exec_simple")()
    row = data.splits["test"][0]  # calc_binomial_probability(n=20, k=5, p=0.6)
    example = dspy.Example(**row)
    right = dspy.Prediction(call=parse_call(json.loads(row["gold_calls"])[0]))
    wrong = dspy.Prediction(call={"name": right.call["name"], "arguments": {**right.call["arguments"], "k": 6}})
    broken = dspy.Prediction(call={"name": right.call["name"], "arguments": {"n": "x"}})
    assert exec_match(example, right) == 1.0
    assert exec_match(example, wrong) == 0.0 and exec_match(example, broken) == 0.0
    assert results_match([1.0, {"a": 2}], [1.0000000001, {"a": 2}]) and not results_match(5, 6)
    assert results_match({"a": 1}, {"a": 9}, "structural_match")


def test_numeric_answers():
    assert as_number("$1,234.50") == 1234.5 and as_number("no digits") is None and as_number(True) is None
    assert numbers_equal(18.0, "18") and not numbers_equal("17", "18")


def test_unknown_and_duplicate_tools_in_a_spec_are_one_line_errors():
    from programs.agent import tool_agent

    data = datasets.get("gsm8k")()
    with pytest.raises(UserError) as info:
        tool_agent(data, tools=["calculater"])
    assert info.value.field == "program.params.tools" and "calculator" in str(info.value)  # did you mean
    with pytest.raises(UserError) as info:
        tool_agent(data, tools=["calculator", "calculator"])
    assert "repeat" in str(info.value)


def test_two_tools_under_one_name_are_refused():
    from workbench.tools.functions import tool

    def first(x: int) -> int:
        return x

    def second(x: int) -> int:
        return -x

    tool("test_twice")(first)
    with pytest.raises(ValueError, match="registered twice"):
        tool("test_twice")(second)


def test_agent_survives_wrong_typed_tool_arguments_from_the_lm():
    """The LM asks for the calculator with a number where the schema wants a string: the
    step fails to validate, the trajectory ends there (recorded), the calculator never
    sees the bad call, and the agent still answers from what it has."""
    import dspy

    from programs.agent import ToolAgent
    from tests.fakes import FaultBackend
    from workbench.evaluate import evaluate
    from workbench.lm import build_lm
    from workbench.lm.adapters import CompactJSONAdapter
    from workbench.registry import metrics
    from workbench.spec import LMSpec

    backend = FaultBackend(['ok:{"next_thought": "add", "next_tool_name": "calculator", "next_tool_args": {"expression": 5}}',
                            'ok:{"reasoning": "16 - 3 - 4 = 9, times 2", "answer": 18}'])
    lm = build_lm(LMSpec(cache=False), backend=backend)
    example = dspy.Example(id="q", question="Janet's ducks...", answer="18").with_inputs("question")
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        result = evaluate(ToolAgent(["calculator"], max_steps=2), [example], metrics.get("numeric_match"),
                          output_field="answer")
    row = result.table.iloc[0]
    assert result.n == 1
    assert row.error_type == "" and row.score == 1.0
    assert row.tool_calls == 0 and row.steps == 0 and row.ended == "unparseable step"
