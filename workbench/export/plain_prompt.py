"""`workbench export RUN --format prompt --out DIR`: the compiled prompt, checked outside DSPy.

Writes `prompt.json` (the chat template in OpenAI format with `{field}` placeholders, the
demos or the demo pool and its selection rule, the reply's JSON schema, the decoding
settings), `prompt.md` for review, and `client.py` (httpx; numpy + scikit-learn only for
per-query demos or candidates), then proves two things before anything is moved into place:

1. **Same prompt**: for every evaluation item, the messages and schema the client renders
   are byte-identical to those DSPy sends (captured through the recorded LM, no model calls).
2. **Same score**: the client answers every item against the run's LM served as an
   OpenAI-compatible endpoint (`llama_cpp.server` on 127.0.0.1 for the embedded model; the
   run's own endpoint for `openai`), is scored by the run's metric, and the paired difference
   with the run's own per-example scores and its 95% CI go to `report.json`. A plain prompt
   that loses more than `--tolerance` is refused (exit 1, nothing left on disk).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy

from workbench.console import Reporter
from workbench.errors import RunFailed, UserError
from workbench.export.bundle import write_json
from workbench.tracking import default_uri

CLIENT_SOURCE = Path(__file__).with_name("prompt_client.py")
FORMAT = "dspy-workbench-prompt"


class PromptDrift(RunFailed):
    """The plain prompt renders differently from DSPy, or scores worse than allowed."""


@dataclass
class PromptExportResult:
    path: Path
    run_id: str
    dspy_score: float
    plain_score: float
    difference_ci: tuple[float, float]
    n: int
    seconds: float


def refuse_unless_fixed(program: dspy.Module, spec) -> dict[str, Any]:
    """The program's plain-prompt steps, or one line saying which predictor and why not."""
    predictors = ", ".join(name for name, _ in program.named_predictors()) or "none"
    if not callable(getattr(program, "plain_prompt", None)):
        reason = getattr(program, "no_plain_prompt", "it does not describe its prompt for a client (no plain_prompt())")
        raise UserError(f"program {spec.program.name!r} (predictors: {predictors}) cannot be exported as a plain prompt: "
                        f"{reason}", field="--format")
    if spec.lm.adapter != "compact_json":
        raise UserError(f"plain-prompt export renders the compact_json adapter's messages; this run used "
                        f"{spec.lm.adapter!r}", field="lm.adapter")
    steps = program.plain_prompt()
    predictor = dict(program.named_predictors())[steps["predictor"]]
    if len(predictor.signature.output_fields) != 1:
        raise UserError(f"predictor {steps['predictor']!r} has {len(predictor.signature.output_fields)} output fields; "
                        "the plain-prompt client handles one label-like output", field="--format")
    return steps


def document(program: dspy.Module, spec, steps: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    from typing import Literal

    from workbench.lm.adapters import MAX_INLINE_CHOICES, CompactJSONAdapter

    signature = dict(program.named_predictors())[steps["predictor"]].signature
    output = next(iter(signature.output_fields))
    plain = signature.with_updated_fields(output, type_=Literal["a", "b"])  # few choices: none in the system message
    template = {"inputs": list(signature.input_fields), "output": output,
                "system": CompactJSONAdapter().format_system_message(plain),
                "system_choices": f"{output} is one of: {{choices}}", "user_choices": f"{output} must be one of: {{choices}}",
                "inline_choices_limit": MAX_INLINE_CHOICES}
    schema = json.loads(json.dumps(schema))
    schema["properties"][output]["enum"] = []  # filled with the allowed labels per query
    response_format = spec.lm.response_format if spec.lm.backend == "openai" else "openai_json_schema"
    return {"format": FORMAT, "version": 1, "spec": spec.name, "template": template, "steps": steps,
            "response_schema": schema, "response_format": response_format,
            "sampling": {"temperature": spec.lm.temperature, "max_tokens": spec.lm.max_tokens, "seed": spec.lm.seed},
            "model": spec.lm.model}


def review(doc: dict[str, Any], example: list[dict[str, str]]) -> str:
    steps = doc["steps"]
    pool = steps.get("pool") or {}
    listed = "in the label set's order" if steps.get("candidate_order") == "label" else "by score"
    lines = [f"# Plain prompt of `{doc['spec']}`", "", "## System message", "", "```", doc["template"]["system"], "```", "",
             f"Output: JSON object with `{doc['template']['output']}` (schema in prompt.json).", "",
             f"Labels: {len(steps['labels'])}; candidates per query: {steps.get('candidates') or 'all'} "
             "(top n of a TF-IDF logistic-regression ranker over the pool, listed "
             f"{listed})." if steps.get("candidates") else
             f"Labels: {len(steps['labels'])} (all offered).",
             f"Demos per query: {pool.get('k', 0)} nearest pool examples by TF-IDF cosine, least similar first "
             f"(pool of {len(pool.get('examples', []))})." if pool.get("k") else
             f"Fixed demos: {len(steps.get('fixed_demos') or [])}.", "", "## One rendered request", ""]
    lines += [f"**{m['role']}**\n\n```\n{m['content']}\n```\n" for m in example]
    return "\n".join(lines)


def load_client(folder: Path):
    """The exported folder's own client.py, imported without leaving a __pycache__ in the export."""
    spec = importlib.util.spec_from_file_location(f"workbench_prompt_client_{os.getpid()}", folder / "client.py")
    module = importlib.util.module_from_spec(spec)
    writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = writes
    return module.PlainPrompt(folder / "prompt.json"), module


def dspy_requests(program: dspy.Module, evalset: list[dspy.Example], input_fields: list[str]) -> list[tuple]:
    """The (messages, schema) DSPy sends for each item, captured on the recorded LM (no model calls)."""
    from workbench.lm import build_lm
    from workbench.lm.adapters import build_adapter
    from workbench.spec import LMSpec

    lm = build_lm(LMSpec.model_validate({"backend": "recorded", "model": "synthetic", "cache": False}))
    captured: list[tuple] = []
    generate = lm.engine._generate

    def capture(messages, schema, config):
        captured.append((json.loads(json.dumps(messages)), schema))
        return generate(messages, schema, config)

    lm.engine._generate = capture
    requests = []
    with dspy.context(lm=lm, adapter=build_adapter("compact_json")):
        for example in evalset:
            captured.clear()
            program(**{name: example[name] for name in input_fields})
            requests.append(captured[-1])
    return requests


def check_rendering(prompt, requests: list[tuple], evalset, input_fields: list[str]) -> int:
    for example, (messages, schema) in zip(evalset, requests):
        mine, my_schema = prompt.render({name: example[name] for name in input_fields})
        if mine != messages or my_schema != schema:
            where = next((i for i, (a, b) in enumerate(zip(mine, messages)) if a != b), min(len(mine), len(messages)))
            raise PromptDrift(f"the plain prompt renders item {example.get('id', '?')} differently from DSPy "
                              f"(message {where} of {len(messages)}{', schema' if my_schema != schema else ''}); "
                              "nothing written")
    return len(requests)


def export_prompt(ref: str, out: str | Path, *, force: bool = False, tolerance: float = 0.01,
                  tracking_uri: str | None = None, reporter: Reporter | None = None,
                  base_url: str | None = None) -> PromptExportResult:
    from workbench.comparison.runs import client_for
    from workbench.export.exporter import check_target, find_run, load_run, staged
    from workbench.export.rescore import preflight, rescore

    reporter = reporter or Reporter(quiet=True)
    if not 0 <= tolerance <= 1:
        raise UserError(f"must be between 0 and 1, got {tolerance}", field="--tolerance")
    out = Path(out)
    check_target(out, force)
    if base_url:
        preflight(base_url)
    tracking_uri = tracking_uri or default_uri()  # flag > environment > default
    client = client_for(tracking_uri)
    run = find_run(client, ref)
    start = time.perf_counter()
    with staged(out) as staging:
        prepared = load_run(client, run, staging)
        spec, program, data = prepared.spec, prepared.program, prepared.data
        steps = refuse_unless_fixed(program, spec)
        inputs = list(data.input_fields)
        with reporter.phase("capturing the prompts DSPy sends (no LM calls)", None):
            requests = dspy_requests(program, prepared.evalset, inputs)
        doc = document(program, spec, steps, requests[0][1])
        write_json(staging / "prompt.json", doc)
        shutil.copyfile(CLIENT_SOURCE, staging / "client.py")
        prompt, _ = load_client(staging)
        checked = check_rendering(prompt, requests, prepared.evalset, inputs)
        (staging / "prompt.md").write_text(review(doc, requests[0][0]), encoding="utf-8")
        report = rescore(prompt, prepared, run, client, reporter, base_url=base_url)
        report.update(rendering_checked=checked, tolerance=tolerance, run_id=run.info.run_id)
        write_json(staging / "report.json", report)
        if report["plain_score"] < report["dspy_score"] - tolerance:
            raise PromptDrift(f"the plain prompt scores {report['plain_score']:.4f} through client.py but "
                              f"{report['dspy_score']:.4f} inside DSPy on the same {report['n']} items (paired "
                              f"difference {report['difference']:+.4f}, 95% CI [{report['difference_ci'][0]:+.4f}, "
                              f"{report['difference_ci'][1]:+.4f}]): it loses more than --tolerance {tolerance}; "
                              "nothing written")
    return PromptExportResult(out, run.info.run_id, report["dspy_score"], report["plain_score"],
                              tuple(report["difference_ci"]), report["n"], time.perf_counter() - start)
