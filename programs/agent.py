"""A multi-step tool agent (DSPy ReAct) whose tools run through the workbench's sandbox.

`tools: [calculator]` gives the agent the registered tools by name; every call goes
through `call_tool`, so a tool that raises, hangs or returns junk becomes an observation
the agent reads, and arguments of the wrong type are refused by the tool's schema before
anything runs. `max_steps` caps the loop. `tools: []` is the same question answered by
one reasoning step and no tools (the "without the calculator" row). Free-text fields
(thoughts, reasoning) carry a length limit in their type, so the embedded LM's grammar
stops a 135M model from rambling until its token budget runs out.
"""

from __future__ import annotations

import json
from typing import Annotated, Union

import dspy
from dspy.utils.exceptions import AdapterParseError
from pydantic import StringConstraints

from workbench.data import TaskData
from workbench.errors import UserError
from workbench.registry import program, tools
from workbench.tools.sandbox import call_tool
from workbench.tools.schema import ArgumentsModel, arguments_of, model_for

INSTRUCTIONS = "Solve the math word problem. Use the calculator for arithmetic. Give the final answer as a number."


def short_text(chars: int):
    return Annotated[str, StringConstraints(max_length=chars)]


def as_dspy_tool(name: str) -> dspy.Tool:
    """A registered tool as a dspy.Tool that runs through the sandbox and never raises."""
    schema = tools.get(name).schema()

    def run(**arguments):
        return call_tool(name, arguments).text()

    return dspy.Tool(run, name=name, desc=schema["description"], args=schema["parameters"]["properties"])


class _Step(dspy.Predict):
    """ReAct's step predictor; a step whose output does not parse (e.g. arguments of the
    wrong type) ends the trajectory — ReAct then answers from what it has — instead of
    failing the whole example."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except AdapterParseError as exc:
            raise ValueError(f"the step's output did not parse: {str(exc).splitlines()[0][:200]}") from exc


class FinishArguments(ArgumentsModel):
    """`finish` takes no arguments."""


def arguments_union(names: list[str]):
    """ReAct's `next_tool_args` as a closed type — one arguments model per tool, or none for
    finish — instead of DSPy's open `dict[str, Any]` (which gets no schema, so the embedded
    LM would write free JSON). The models are mappings, so ReAct's `tool(**args)` still works."""
    models = [model_for(tools.get(n).schema()["parameters"], f"{n}_arguments") for n in names]
    return Union[tuple(models + [FinishArguments])]  # noqa: UP007  (a runtime-built union)


class ToolAgent(dspy.Module):
    """question -> answer (a number), with the trajectory and tool-call counts."""

    table_fields = ("steps", "tool_calls", "tool_errors", "ended", "trajectory")

    def __init__(self, tool_names: list[str], *, max_steps: int = 4, thought_chars: int = 160,
                 instructions: str = INSTRUCTIONS):
        super().__init__()
        self.tool_names = list(tool_names)
        self._settings = {"tools": self.tool_names, "max_steps": max_steps, "thought_chars": thought_chars}
        signature = dspy.Signature({"question": (str, dspy.InputField()),
                                    "answer": (float, dspy.OutputField(desc="the final answer, a number"))}, instructions)
        if self.tool_names:
            self.agent = dspy.ReAct(signature, tools=[as_dspy_tool(n) for n in self.tool_names], max_iters=max_steps)
            self.agent.react = _Step(self.agent.react.signature
                                     .with_updated_fields("next_thought", type_=short_text(thought_chars))
                                     .with_updated_fields("next_tool_args", type_=arguments_union(self.tool_names)))
            self.max_steps = max_steps
            extract = self.agent.extract.predict
            extract.signature = extract.signature.with_updated_fields("reasoning", type_=short_text(thought_chars * 2))
        else:
            self.agent = dspy.Predict(signature.prepend("reasoning", dspy.OutputField(desc="step by step"),
                                                        type_=short_text(thought_chars * 3)))

    no_plain_prompt = ("ReAct prompts once per step with the tools' observations, so there is no single fixed prompt; "
                       "export it as a bundle")

    def export_config(self) -> dict:
        return dict(self._settings)

    def export_files(self, folder, **_) -> dict:
        from workbench.export.tool_records import write_tools

        return {"tools": write_tools(folder, self.tool_names)}

    @classmethod
    def from_export_config(cls, config: dict, folder=None) -> ToolAgent:
        return cls(list(config["tools"]), max_steps=int(config["max_steps"]), thought_chars=int(config["thought_chars"]))

    def forward(self, question: str) -> dspy.Prediction:
        out = self.agent(question=question)
        trajectory = {k: arguments_of(v) if isinstance(v, ArgumentsModel) else v
                      for k, v in (getattr(out, "trajectory", {}) or {}).items()}
        calls = [v for k, v in trajectory.items() if k.startswith("tool_name_") and v != "finish"]
        observations = [str(v) for k, v in trajectory.items() if k.startswith("observation_")]
        errors = sum(o.startswith(("error:", "Execution error")) for o in observations)
        steps = sum(k.startswith("thought_") for k in trajectory)
        if not self.tool_names:
            ended = "no tools"
        elif steps and trajectory.get(f"tool_name_{steps - 1}") == "finish":
            ended = "finish"
        else:
            ended = "step limit" if steps >= self.max_steps else "unparseable step"
        return dspy.Prediction(answer=out.answer, steps=steps, tool_calls=len(calls), tool_errors=errors, ended=ended,
                               trajectory=json.dumps(trajectory, default=str)[:4000])


@program("tool_agent")
def tool_agent(data: TaskData, *, tools: list[str] | None = None, max_steps: int = 4, thought_chars: int = 160,
               instructions: str = INSTRUCTIONS) -> ToolAgent:
    """ReAct over registered tools (sandboxed), with a step limit; no tools = one reasoning step."""
    names = list(tools if tools is not None else ["calculator"])
    if len(set(names)) != len(names):
        raise UserError(f"tool names repeat: {names}", field="program.params.tools")
    for name in names:
        _lookup(name)
    if not isinstance(max_steps, int) or max_steps < 1:
        raise UserError(f"max_steps must be a positive integer, got {max_steps!r}", field="program.params.max_steps")
    return ToolAgent(names, max_steps=max_steps, thought_chars=thought_chars, instructions=instructions)


def _lookup(name: str):
    from workbench.registry import tools as registry
    from workbench.tools.schema import SchemaError

    entry = registry.get(name, field="program.params.tools")
    try:
        return entry.schema()
    except SchemaError as exc:
        raise UserError(str(exc), field="program.params.tools") from None
