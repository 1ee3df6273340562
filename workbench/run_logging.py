"""What a tracked run records besides its metrics' first line: the per-example table, the
program's JSON state and rendered prompts, summaries' tables and figures, what an evaluation
that stopped early finished, and the optimizer's trials (MLflow's DSPy autologging)."""

from __future__ import annotations

import json

import dspy

from workbench import program_contract as contract
from workbench import registry
from workbench.evaluate import EvalResult
from workbench.prompts import last_call_messages, render_call, render_program
from workbench.spec import Spec


class autolog_trials:
    """Optimizers that evaluate candidates log each evaluation as a nested MLflow run."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        if self.enabled:
            import mlflow.dspy

            mlflow.dspy.autolog(log_traces=False, log_traces_from_eval=False, log_compiles=True, log_evals=True,
                                silent=True)

    def __exit__(self, *exc):
        if self.enabled:
            import mlflow.dspy

            mlflow.dspy.autolog(disable=True, silent=True)


def log_results(tracked, prepared, outcome, program: dspy.Module, lm: dspy.LM) -> None:
    spec = prepared.spec
    result = outcome.result
    metrics = {**result.metrics(), "compile_seconds": outcome.compile_seconds,
               "compile_lm_calls": float(outcome.compile_lm_calls), **outcome.summary_metrics}
    for baseline in outcome.baselines:
        metrics[f"baseline.{baseline.name}.score"] = baseline.score
    tracked.log_metrics(metrics)
    tracked.log_table(result.table, "predictions.json")
    state = program.dump_state()
    tracked.log_dict(state, "program.json")
    tracked.log_text(render_program(program), "prompts.md")
    if prepared.evalset and spec.lm.cache:
        try:
            program(**prepared.evalset[0].inputs())  # answered from the cache: records the exact messages
        except Exception:  # noqa: BLE001  this example failed in the evaluation too (counted there);
            pass           # the messages of its last LM call are still what we want to show
        tracked.log_text(render_call(last_call_messages(lm), title=f"Call for example {prepared.evalset[0].get('id')}"),
                         "prompt_example.md")
    elif lm.history:  # without a cache a repeat call would be paid for: show the evaluation's last call
        tracked.log_text(render_call(last_call_messages(lm), title="The evaluation's last LM call"), "prompt_example.md")
    tracked.log_text(json.dumps(spec.model_dump(mode="json"), indent=2), "spec.json")
    for folder in contract.index_dirs(program):
        tracked.log_dir(folder, f"indexes/{folder.name}")
    outcome.program_path = tracked.artifact_path("program.json")


def summaries(spec: Spec, prepared, result: EvalResult, tracked) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for name in spec.metric.summaries:
        fn = registry.summaries.get(name, file=spec.source, field="metric.summaries")
        out = fn(result.table, prepared.data)
        metrics.update(out.get("metrics", {}))
        if tracked is None:
            continue
        for path, frame in out.get("tables", {}).items():
            tracked.log_csv(frame, path)
        for path, figure in out.get("figures", {}).items():
            tracked.log_figure(figure, path)
    return metrics


def log_partial(tracked, result: EvalResult, reason: str, spec: Spec, program: dspy.Module) -> None:
    """What an evaluation that stopped early did finish: metrics (with their n) and table, plus
    the spec and program, so `workbench eval --retry-failed` can finish it later."""
    tracked.set_tags({"workbench.failure_reason": reason[:5000], "workbench.partial": "true"})
    tracked.log_metrics(result.metrics())
    if len(result.table):
        tracked.log_table(result.table, "predictions.json")
    tracked.log_dict(program.dump_state(), "program.json")
    tracked.log_text(json.dumps(spec.model_dump(mode="json"), indent=2), "spec.json")


def log_lora(tracked, spec: Spec, report: dict | None, model_id: str) -> None:
    """The LoRA adapter `finetune` trained is part of the compiled program: its file (artifact
    `lora/`), its digest and the LM id that includes it, and what training did."""
    from pathlib import Path

    tracked.log_file(Path(spec.lm.lora), "lora")
    tracked.set_tags({"workbench.lora_sha256": spec.lm.lora_sha256,
                      "workbench.lm": model_id})
    if report:
        tracked.log_metrics({f"finetune.{k}": float(v) for k, v in report.items() if isinstance(v, (int, float))})
        if report.get("precision"):
            tracked.set_tags({"workbench.finetune_precision": str(report["precision"])})
        if report.get("reused"):
            tracked.set_tags({"workbench.finetune_reused": str(report["reused"])})
        if report.get("stopped"):
            tracked.set_tags({"workbench.finetune_stopped": str(report["stopped"])[:5000]})
