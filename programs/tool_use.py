"""Single-step function calling: pick one of the given functions, then fill its arguments.

Functions arrive as JSON schemas (BFCL's dialect or standard). With several offered, the
function is chosen by word overlap between the request and each function's name and
description (`select: overlap`, no LM call; right on 181 of BFCL multiple's 200 items) or by
the LM as a `Literal` of the offered names (`select: lm`; the 135M LM picks wrong ~60%). The arguments are an
output field whose type is a pydantic model built from the chosen function's schema
(`workbench/tools/schema.py`), so the embedded LM decodes them under a grammar and they
are always well-typed. A schema that cannot be converted is a counted outcome (the
prediction carries `call=None` and `error`), never a crash.

Demos (`retrieval_demos`): the k training questions most like the query, each shown with
its function and an accepted call, teach the call format without any LM calls.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Literal

import dspy

from metrics.bfcl_ast import accepted_calls, match_call
from programs.pool import ExamplePool
from workbench.baselines import BaselineScore, task_baseline
from workbench.data import TaskData
from workbench.program_contract import own_demos
from workbench.registry import program
from workbench.tools.schema import SchemaError, arguments_of, model_for

CALL_INSTRUCTIONS = "Call the function to answer the request: fill in its arguments from the request."
SELECT_INSTRUCTIONS = "Which function answers the request?"


def describe(function: dict, max_chars: int = 600) -> str:
    """A compact text rendering of a function: name, description, arguments."""
    params = function.get("parameters", {}) or {}
    required = set(params.get("required") or [])
    lines = [f"{function['name']}: {function.get('description', '')}"]
    for arg, sub in (params.get("properties") or {}).items():
        sub = sub if isinstance(sub, dict) else {}
        flag = "required" if arg in required else "optional"
        lines.append(f"- {arg} ({sub.get('type', 'any')}, {flag}): {sub.get('description', '')}")
    return "\n".join(lines)[:max_chars]


def call_signature(instructions: str = CALL_INSTRUCTIONS) -> type[dspy.Signature]:
    return dspy.Signature({
        "request": (str, dspy.InputField()),
        "function": (str, dspy.InputField(desc="the function to call")),
        "arguments": (dict[str, Any], dspy.OutputField(desc="the function's arguments")),
    }, instructions)


def select_signature() -> type[dspy.Signature]:
    return dspy.Signature({
        "request": (str, dspy.InputField()),
        "functions": (str, dspy.InputField(desc="the functions available")),
        "name": (str, dspy.OutputField(desc="the name of the function to call")),
    }, SELECT_INSTRUCTIONS)


def _first_accepted(options: dict, omit_optional: bool = False) -> dict:
    """{key: [accepted values]} -> {key: the first accepted value}, recursively; keys whose
    only accepted value is "" (may be omitted) are left out, and with `omit_optional` every key
    whose accepted values include "" (BFCL's mark of an argument the call may leave out)."""
    chosen = {}
    for key, values in options.items():
        if omit_optional and isinstance(values, list) and "" in values:
            continue
        given = [v for v in values if v != ""] if isinstance(values, list) else [values]
        if given:
            chosen[key] = _concrete(given[0], omit_optional)
    return chosen


def _concrete(value: Any, omit_optional: bool = False) -> Any:
    if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        return _first_accepted(value, omit_optional)
    if isinstance(value, list):
        return [_concrete(v, omit_optional) for v in value]
    return value


def example_call(accepted: list[dict], omit_optional: bool = False) -> dict:
    """The first accepted call as plain arguments (BFCL lists alternatives per argument);
    `omit_optional`: without the arguments the call may leave out."""
    [(name, arguments)] = accepted[0].items()
    return {"name": name, "arguments": _first_accepted(arguments, omit_optional)}


def _offered(functions: Any) -> list[dict]:
    """An example's `functions` field (a JSON list, or the list itself) as a list of function dicts."""
    return json.loads(functions) if isinstance(functions, str) else list(functions or [])


class FunctionCaller(dspy.Module):
    """request, functions (JSON list) -> call {name, arguments}."""

    table_fields = ("call_error",)

    def __init__(self, *, pool: ExamplePool | None = None, instructions: str = CALL_INSTRUCTIONS,
                 select: str = "overlap", omit_optional: bool = False):
        super().__init__()
        if select not in ("overlap", "lm"):
            raise ValueError("select must be 'overlap' or 'lm'")
        if not isinstance(omit_optional, bool):
            raise ValueError(f"omit_optional must be true or false, got {omit_optional!r}")
        self.selection = select
        self.omit_optional = omit_optional  # gold calls shown (demos, fine-tuning answers) leave optional ones out
        self.select = dspy.Predict(select_signature())
        self.call = dspy.Predict(call_signature(instructions))
        self.demo_pool = pool or ExamplePool("question", "accepted", extra_fields=("functions",))
        self._models: dict[str, type] = {}

    no_plain_prompt = ("its predictor's argument schema is built per request from the functions offered, so its prompt "
                       "has no fixed shape; export it as a bundle")

    def export_config(self) -> dict:
        return {"select": self.selection, "omit_optional": self.omit_optional}

    @classmethod
    def from_export_config(cls, config: dict) -> FunctionCaller:
        return cls(select=str(config["select"]), omit_optional=bool(config.get("omit_optional", False)))

    @property
    def lm_calls_per_example(self) -> int:
        """For cost estimates: the arguments call always, the selection call only when the LM selects."""
        return 2 if self.selection == "lm" else 1

    def predictors_used(self, examples: list[Any]) -> set[str]:
        """`call` always; `select` only when the LM selects and some request offers several functions
        (BFCL simple_python offers one, so an optimizer rewriting `select` there would pay for nothing)."""
        several = self.selection == "lm" and any(len(_offered(e.get("functions"))) > 1 for e in examples)
        return {"call", "select"} if several else {"call"}

    def finetune_gold(self, example: dspy.Example) -> dict:
        """What each predictor should answer for a training example (finetune's gold pairs): the
        function's name and the first accepted value of each argument (none of the optional ones
        with `omit_optional`)."""
        call = example_call(accepted_calls(example), self.omit_optional)
        return {"name": call["name"], "arguments": call["arguments"]}

    def warm_up(self) -> None:
        if self.demo_pool.k and self.demo_pool.examples:
            self.demo_pool.index()

    def _model(self, function: dict):
        key = json.dumps(function, sort_keys=True)
        if key not in self._models:
            self._models[key] = model_for(function.get("parameters") or {}, f"{function['name']}_arguments")
        return self._models[key]

    def as_demo(self, predictor: str, example: Any) -> Any:
        """A demo as the named predictor reads it. Compiled demos that are raw training examples
        (question, functions, accepted: what LabeledFewShot and the labeled part of the bootstrap
        optimizers copy in) become the predictor's own fields; a demo already in them is kept;
        None when the example names no offered function."""
        if "question" not in example or "accepted" not in example:
            return example
        call = example_call(accepted_calls(dspy.Example(accepted=example["accepted"])), self.omit_optional)
        offered = _offered(example.get("functions"))
        function = next((f for f in offered if f["name"] == call["name"]), None)
        if function is None:
            return None
        if predictor == "select":
            return dspy.Example(request=example["question"], functions="\n\n".join(describe(f, 300) for f in offered),
                                name=call["name"])
        return dspy.Example(request=example["question"], function=describe(function), arguments=call["arguments"])

    def _demos(self, question: str) -> dict:
        """The call predictor's demos for this request: the retrieved ones when the pool retrieves,
        else its compiled ones in its own fields (never `demos=[]`, which would replace them)."""
        if not (self.demo_pool.k and self.demo_pool.examples):
            return own_demos(self, "call")
        demos = [self.as_demo("call", item) for item in self.demo_pool.nearest(question, self.demo_pool.k)]
        return {"demos": [d for d in demos if d is not None]}

    def forward(self, question: str, functions: str) -> dspy.Prediction:
        offered = _offered(functions)
        names = [f["name"] for f in offered]
        if len(offered) == 1:
            chosen = offered[0]
        elif self.selection == "overlap":
            chosen = most_overlapping(question, offered)
        else:
            signature = self.select.signature.with_updated_fields("name", type_=Literal[tuple(names)])
            picked = self.select(request=question, functions="\n\n".join(describe(f, 300) for f in offered),
                                 signature=signature, **own_demos(self, "select")).name
            chosen = offered[names.index(picked)]
        try:
            model = self._model(chosen)
        except SchemaError as exc:
            return dspy.Prediction(call=None, call_error=f"schema: {exc}")
        signature = self.call.signature.with_updated_fields("arguments", type_=model)
        out = self.call(request=question, function=describe(chosen), signature=signature, **self._demos(question))
        return dspy.Prediction(call={"name": chosen["name"], "arguments": arguments_of(out.arguments)}, call_error="")


@program("function_caller")
def function_caller(data: TaskData, *, instructions: str = CALL_INSTRUCTIONS, select: str = "overlap",
                    omit_optional: bool = False) -> FunctionCaller:
    """Choose a function (when several are offered: by word overlap or by the LM) and fill its
    arguments under its schema. `omit_optional`: the gold calls the LM is shown (retrieved demos,
    fine-tuning answers) leave out every argument the data marks as one the call may omit."""
    train = data.splits["train"]
    pool = ExamplePool("question", "accepted", [{"question": q, "accepted": a, "functions": f} for q, a, f in
                                                zip(train["question"], train["accepted"], train["functions"])],
                       extra_fields=("functions",))
    return FunctionCaller(pool=pool, instructions=instructions, select=select, omit_optional=omit_optional)


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"[\"'“‘]([^\"'”’]{1,60})[\"'”’]")
_NAME = re.compile(r"\b[A-Z][\w-]*(?:\s+[A-Z][\w-]*)*")


def most_overlapping(question: str, functions: list[dict]) -> dict:
    """The function whose name and description share most words with the request."""
    words = set(re.findall(r"[a-z]+", question.lower()))
    return max(functions, key=lambda f: len(words & set(re.findall(r"[a-z]+", (
        f["name"].replace("_", " ").replace(".", " ") + " " + f.get("description", "")).lower()))))


def rule_based_call(question: str, functions: list[dict]) -> dict:
    """No LM: the most overlapping function; numbers of the question fill its numeric
    parameters in order, quoted or capitalised phrases its string parameters."""
    chosen = most_overlapping(question, functions)
    params = chosen.get("parameters", {}) or {}
    numbers = [float(n) for n in _NUMBER.findall(question)]
    strings = _QUOTED.findall(question) or [m for m in _NAME.findall(question) if m.split()[0] not in ("I", "What", "How",
                                                                                                     "Find", "Calculate")]
    arguments = {}
    for arg in params.get("required") or []:
        kind = ((params.get("properties") or {}).get(arg) or {}).get("type")
        if kind in ("integer", "float", "number") and numbers:
            value = numbers.pop(0)
            arguments[arg] = int(value) if kind == "integer" and value.is_integer() else value
        elif kind == "string" and strings:
            arguments[arg] = strings.pop(0)
    return {"name": chosen["name"], "arguments": arguments}


@task_baseline("tools")
def rule_baseline(data: TaskData, questions: list[str], accepted: list[str]) -> list[BaselineScore]:
    """The rule-based call (no LM), AST-matched, on the same items."""
    start = time.perf_counter()
    functions_of = {q: f for split in data.splits.values() for q, f in zip(split["question"], split["functions"])}
    scores = [float(match_call(rule_based_call(q, json.loads(functions_of[q])), accepted_calls(
        dspy.Example(accepted=a))) == "correct") for q, a in zip(questions, accepted)]
    return [BaselineScore("rules_ast", scores, time.perf_counter() - start)]
