"""`sequence`: optimizers one after another, each compiling what the previous one returned.

    optimizer:                        # the short form: a list
      - {name: retrieval_demos, params: {k: 5}}
      - {name: MIPROv2, params: {auto: light, max_bootstrapped_demos: 0, max_labeled_demos: 0}}

is `optimizer: {name: sequence, params: {steps: [...]}}`. Every step is a registered optimizer
with its own parameters, checked when the spec is read; the optimizer-level settings
(`prompt_max_tokens`, `seed`, `reflection_lm`) apply to every step. The run's budget, estimate
and dev-size advice count the steps together.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from workbench import registry
from workbench.errors import UserError
from workbench.optimize import SELECTS_ON_DEV, CompileContext, dev_score
from workbench.registry import optimizer

NAME = "sequence"


def steps_of(name: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """[(optimizer, params)] of a spec's optimizer: its steps for a sequence, else itself."""
    if name == "BetterTogether":  # a sequence under DSPy's name: its steps from the strategy
        from workbench.optimize.better_together import steps

        try:
            return [(s["name"], s["params"]) for s in steps(params.get("strategy", "p -> w -> p"),
                                                            params.get("prompt_optimizer", "BootstrapFewShot"),
                                                            params.get("prompt_params"), params.get("finetune_params"))]
        except ValueError:  # reported by rules.check
            return [(name, dict(params))]
    if name != NAME:
        return [(name, dict(params))]
    return [(s["name"], dict(s.get("params") or {})) for s in params.get("steps", [])]


def label(name: str, params: dict[str, Any]) -> str:
    """How runs name the optimizer: a sequence as its steps joined by '+'."""
    return "+".join(n for n, _ in steps_of(name, params)) if name == NAME else name


def check_steps(params: dict[str, Any], source: str) -> None:
    """Spec-time: the steps are a non-empty list of {name, params} with registered names and
    accepted parameters (no DSPy import)."""
    from workbench.spec import check_optimizer_params

    steps = params.get("steps")
    if not isinstance(steps, list) or not steps:
        raise UserError("a sequence needs a non-empty list of steps ({name, params})", file=source,
                        field="optimizer.params.steps")
    for i, step in enumerate(steps):
        field = f"optimizer.params.steps.{i}"
        if not isinstance(step, dict) or not isinstance(step.get("name"), str) or set(step) - {"name", "params"}:
            raise UserError("each step is a mapping with name and (optional) params", file=source, field=field)
        if step["name"] == NAME:
            raise UserError("a sequence cannot contain a sequence", file=source, field=f"{field}.name")
        if not isinstance(step.get("params") or {}, dict):
            raise UserError("params must be a mapping", file=source, field=f"{field}.params")
        check_optimizer_params(step["name"], step.get("params") or {}, source, field)


@optimizer(NAME)
def sequence(ctx: CompileContext, *, steps: list[dict[str, Any]]):
    """Run each step's optimizer on the previous step's program; returns the last one's."""
    program, chosen = ctx.student, None
    for i, (name, params) in enumerate(steps_of(NAME, {"steps": steps})):
        factory = registry.optimizers.get(name, file=ctx.source, field=f"optimizer.params.steps.{i}.name")
        step = replace(ctx, student=program)
        program = factory(step, **params)
        if step.finetune_report is not None:  # what a finetune step trained is logged with the run (the last one's)
            ctx.finetune_report = step.finetune_report
        # A later step copies the earlier one's attributes: only a step that chose on dev may report.
        chosen = dev_score(program) if name in SELECTS_ON_DEV else chosen if name == "none" else None
    for stale in ("score", "candidate_programs", "detailed_results"):
        if stale in program.__dict__:
            delattr(program, stale)
    if chosen is not None:
        program.score = chosen
    return program
