"""Human-readable rendering of a compiled program: what each predictor will tell the LM.

For every predictor: its instructions, input/output fields with types, its fixed demos,
and the demo pool it retrieves from. Then the exact chat messages of one real call (the
first evaluation example), as the LM saw them.
"""

from __future__ import annotations

import json
from typing import Any

import dspy

from workbench.program_contract import demo_pool, own_demos


def _field_lines(fields: dict[str, Any]) -> list[str]:
    lines = []
    for name, info in fields.items():
        annotation = getattr(info.annotation, "__name__", None) or str(info.annotation).replace("typing.", "")
        desc = (info.json_schema_extra or {}).get("desc", "")
        lines.append(f"- `{name}` ({annotation}){': ' + desc if desc and not desc.startswith('${') else ''}")
    return lines


def render_predictor(name: str, predictor, program: dspy.Module | None = None) -> list[str]:
    """One predictor's instructions, fields and fixed demos (markdown lines); given the program,
    the demos as it shows them to the predictor (its `as_demo`), not as stored."""
    signature = predictor.signature
    parts = [f"## Predictor `{name}`", "", "### Instructions", "", signature.instructions or "(none)", "",
             "### Inputs", *_field_lines(signature.input_fields), "", "### Outputs",
             *_field_lines(signature.output_fields), ""]
    demos = (predictor.demos or []) if program is None else own_demos(program, name).get("demos", [])
    parts += [f"### Fixed demos ({len(demos)})", ""]
    for i, demo in enumerate(demos, 1):
        data = demo.toDict() if hasattr(demo, "toDict") else dict(demo)
        parts.append(f"{i}. " + " · ".join(f"**{k}**: {str(v)[:300]}" for k, v in data.items() if k != "augmented"))
    parts.append("")
    return parts


def render_program(program: dspy.Module) -> str:
    parts = ["# Program prompts", ""]
    for name, predictor in program.named_predictors():
        parts += render_predictor(name, predictor, program)
    pool = demo_pool(program)
    if pool is not None and pool.k:
        parts += ["## Retrieved demos", "",
                  f"Each call retrieves the {pool.k} most similar of {len(pool.examples)} pool examples "
                  f"(TF-IDF cosine on `{pool.input_field}`) as its demos.", ""]
    candidates = getattr(program, "candidates", 0)
    if candidates:
        order = "in the label set's order" if getattr(program, "candidate_order", "rank") == "label" else "best first"
        hint_from = getattr(program, "hint_from", 0.0)
        hint = ("; the ranker's best label and its probability are an input (`ranker_guess`)"
                + (f", or none where that probability is below {hint_from:g}" if hint_from else "")
                if getattr(program, "ranker_hint", False) else "")
        parts += ["## Candidate labels", "",
                  f"A TF-IDF logistic-regression ranker narrows the allowed labels to its top {candidates} per call "
                  f"(listed {order}{hint}); the LM chooses among them under a grammar.", ""]
    return "\n".join(parts)


def render_call(messages: list[dict[str, Any]], *, title: str = "One real call") -> str:
    parts = [f"# {title}", ""]
    for message in messages:
        content = message.get("content")
        if not isinstance(content, str):
            content = json.dumps(content, indent=2, default=str)
        parts += [f"## {message.get('role', '?')}", "", "```text", content, "```", ""]
    return "\n".join(parts)


def last_call_messages(lm: dspy.LM) -> list[dict[str, Any]]:
    if not lm.history:
        return []
    entry = lm.history[-1]
    return list(entry.get("messages") or [{"role": "user", "content": entry.get("prompt") or ""}])
