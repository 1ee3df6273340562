"""Evaluate a program on examples: per-example table, score with CI, failures counted.

A prediction that raises (the LM's output did not parse, the LM call failed, the program
hit a bug on one input) scores 0 and is recorded with its error type (`parse`: the model's
answer; `lm_error`: the endpoint failed the call after its retries; `lm_refused`: the LM
rejected the input, e.g. over its context window; `error`: anything else).
One failure never stops the evaluation; `max_failures` and `stop_when` (the LM's breaker)
stop one that is clearly broken, raising with the partial result so it can still be logged.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import dspy
import pandas as pd
from dspy.dsp.utils.settings import thread_local_overrides
from dspy.utils.exceptions import AdapterParseError, LMError

from workbench.errors import RunFailed
from workbench.lm.base import UsageCounter, UsageTotals
from workbench.lm.resilience import call_stats, is_endpoint_failure
from workbench.program_contract import table_fields
from workbench.stats import bootstrap_ci
from workbench.traces.recorder import example_trace, span


class EvaluationStopped(RunFailed):
    """The evaluation stopped early; `partial` holds the examples done so far."""

    def __init__(self, message: str, partial: EvalResult | None = None):
        super().__init__(message)
        self.partial = partial


class TooManyFailures(EvaluationStopped):
    """More predictions failed than eval.max_failures allows."""


@dataclass
class EvalResult:
    table: pd.DataFrame
    score: float
    ci: tuple[float, float]
    usage: UsageTotals
    seconds: float
    error_counts: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.table)

    @property
    def failures(self) -> int:
        return int((self.table.error_type != "").sum()) if len(self.table) else 0

    @property
    def parse_failures(self) -> int:
        return int((self.table.error_type == "parse").sum()) if len(self.table) else 0

    @property
    def lm_failures(self) -> int:
        """Examples lost to the endpoint (the call failed after its retries), not to the model."""
        return int((self.table.error_type == "lm_error").sum()) if len(self.table) else 0

    def metrics(self, prefix: str = "") -> dict[str, float]:
        n = max(self.n, 1)
        return {
            f"{prefix}score": self.score,
            f"{prefix}score_ci_low": self.ci[0],
            f"{prefix}score_ci_high": self.ci[1],
            f"{prefix}n_examples": float(self.n),
            f"{prefix}parse_failure_rate": self.parse_failures / n,
            f"{prefix}failure_rate": self.failures / n,
            f"{prefix}lm_error_rate": self.lm_failures / n,
            f"{prefix}lm_calls": float(self.usage.calls),
            f"{prefix}lm_retries": float(self.usage.retries),
            **({f"{prefix}lm_requests": float(self.usage.requests),
                f"{prefix}lm_cache_hits": float(self.usage.cache_hits),
                f"{prefix}cache_hit_rate": self.usage.cache_hits / self.usage.requests} if self.usage.requests else {}),
            f"{prefix}lm_wait_seconds": self.usage.wait_seconds,
            f"{prefix}prompt_tokens": float(self.usage.input_tokens),
            f"{prefix}completion_tokens": float(self.usage.output_tokens),
            f"{prefix}seconds": self.seconds,
            f"{prefix}seconds_per_example": self.seconds / n,
        }

    def most_common_error(self) -> str:
        errors = self.table.loc[self.table.error_type != "", "error"]
        return errors.value_counts().index[0] if len(errors) else ""


def _error_type(exc: Exception) -> str:
    """`parse`: the model's answer did not parse; `lm_error`: the endpoint failed the call
    (after retries); `lm_refused`: the LM rejected this input (context window, bad request);
    `error`: anything else (a program bug on this input)."""
    if isinstance(exc, AdapterParseError):
        return "parse"
    if isinstance(exc, LMError) or type(exc).__module__.startswith(("dspy._vendor.lm15", "dspy.lm15")):
        return "lm_error" if is_endpoint_failure(exc) else "lm_refused"
    return "error"


def score_of(value: Any) -> float:
    """A metric may return a number or a Prediction(score=..., feedback=...)."""
    if isinstance(value, dspy.Prediction):
        value = value.score
    return float(value)


@dataclass(frozen=True)
class _Fields:
    """Which columns of the per-example table come from where."""

    output: str | None
    gold: str | None
    from_example: tuple[str, ...]
    from_prediction: tuple[str, ...]


def _predict_one(program: dspy.Module, example: dspy.Example, metric: Callable, fields: _Fields,
                 tracer: Any = None) -> dict:
    if tracer is None or not tracer.wants(example):
        return _predict(program, example, metric, fields)[0]
    with example_trace(tracer.name, example.inputs().toDict()) as (trace, root):
        row, prediction = _predict(program, example, metric, fields)
        outputs = prediction.toDict() if prediction is not None else None
        trace.close(root, outputs, _RowError(row["error"]) if row["error_type"] else None)
    tracer.finish(trace, example, row, prediction)
    return row


class _RowError(Exception):
    """The root span's error: what the example's row says went wrong."""


def _predict(program: dspy.Module, example: dspy.Example, metric: Callable, fields: _Fields):
    start = time.perf_counter()
    prediction = None
    retries_before = call_stats.retries
    row: dict[str, Any] = {"id": example.get("id", ""), **example.inputs().toDict()}
    row["gold"] = example.get(fields.gold) if fields.gold else ""
    for name in fields.from_example:
        row[name] = example.get(name)
    try:
        prediction = program(**example.inputs())
        row["predicted"] = prediction.get(fields.output) if fields.output else str(prediction.toDict())
        with span("metric", "EVALUATOR", {"gold": row["gold"]}) as scored:
            row["score"] = scored["outputs"] = score_of(metric(example, prediction))
        row["error_type"], row["error"] = "", ""
        for name in fields.from_prediction:
            row[name] = prediction.get(name)
    except Exception as exc:  # counted, never fatal: see module docstring
        row.update(predicted=None, score=0.0, error_type=_error_type(exc),
                   error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
        partial = getattr(exc, "partial_fields", None) or {}  # what the program computed before failing
        for name in fields.from_prediction:
            row[name] = partial.get(name)
    row["seconds"] = time.perf_counter() - start
    row["retries"] = call_stats.retries - retries_before
    return row, prediction


def _prompts(lm: dspy.LM, calls: int, limit: int = 6000) -> str:
    """The user messages of the last `calls` LM calls (the system message is the same for all)."""
    if calls <= 0 or not lm.history:
        return ""
    texts = []
    for entry in lm.history[-calls:]:
        messages = entry.get("messages") or [{"role": "user", "content": entry.get("prompt") or ""}]
        texts.append("\n".join(str(m.get("content")) for m in messages if m.get("role") != "system"))
    return "\n---\n".join(texts)[:limit]


def evaluate(program: dspy.Module, examples: list[dspy.Example], metric: Callable, *, output_field: str | None,
             gold_field: str | None = None, example_fields: tuple[str, ...] = (),
             usage: UsageCounter | None = None, threads: int = 1, max_failures: int | None = None,
             on_progress: Callable[[int, float, int], None] | None = None, lm: dspy.LM | None = None,
             stop_when: Callable[[], str] | None = None, tracer: Any = None) -> EvalResult:
    """Run `program` on every example; `on_progress(done, mean_score, lm_calls)` after each;
    `stop_when()` returning a reason stops it (EvaluationStopped with the partial result).

    The table holds the inputs, `gold` (example[gold_field], default output_field),
    `predicted` (prediction[output_field]), the score and error, plus `example_fields` and
    the program's `table_fields` (prediction fields such as retrieved ids or candidates).
    With `lm` and one thread, `prompt` holds the user messages of the LM calls
    each example made, as the LM saw them. `tracer` (workbench.traces.evaluation.EvalTracer):
    a trace per example it wants, with the program's spans and the row's assessments.
    """
    fields = _Fields(output_field, gold_field or output_field, tuple(example_fields),
                     table_fields(program))
    before = usage.snapshot() if usage else UsageTotals()
    start = time.perf_counter()
    rows: list[dict] = [None] * len(examples)  # type: ignore[list-item]
    done, total, failed = 0, 0.0, 0

    def record(i: int, row: dict) -> None:
        nonlocal done, total, failed
        reason = stop_when() if stop_when else ""
        if reason and row["error_type"] and reason in row["error"]:
            # refused by the stop itself (a spent budget): never scored, so not a row of the table
            raise EvaluationStopped(f"evaluation stopped after {done} of {len(examples)} examples: {reason}",
                                    _result(rows, usage, before, start))
        rows[i] = row
        done += 1
        total += row["score"]
        failed += bool(row["error_type"])
        if max_failures is not None and failed > max_failures:
            raise TooManyFailures(f"{failed} predictions failed (limit {max_failures}); last: {row['error']}",
                                  _result(rows, usage, before, start))
        if reason:  # read once, before the row: a stop is a state of the run, not of this row
            raise EvaluationStopped(f"evaluation stopped after {done} of {len(examples)} examples: {reason}",
                                    _result(rows, usage, before, start))
        if on_progress:
            on_progress(done, total / done, usage.since(before).calls if usage else 0)

    if threads <= 1:
        for i, example in enumerate(examples):
            seen, calls_before = (len(lm.history) if lm is not None else 0), (usage.snapshot().calls if usage else 0)
            row = _predict_one(program, example, metric, fields, tracer)
            if lm is not None:  # history also records cached answers; at its size cap, fall back to usage
                grown = len(lm.history) - seen or (usage.snapshot().calls - calls_before if usage else 0)
                row["prompt"] = _prompts(lm, grown)
            record(i, row)
    else:
        parent = thread_local_overrides.get().copy()  # dspy.context(...) of the caller

        def in_context(example: dspy.Example) -> dict:
            token = thread_local_overrides.set({**thread_local_overrides.get(), **parent})
            try:
                return _predict_one(program, example, metric, fields, tracer)
            finally:
                thread_local_overrides.reset(token)

        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = {pool.submit(in_context, ex): i for i, ex in enumerate(examples)}
            try:
                for future in as_completed(futures):
                    record(futures[future], future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    return _result(rows, usage, before, start)


def _result(rows: list[dict | None], usage: UsageCounter | None, before: UsageTotals, start: float) -> EvalResult:
    """The examples done so far (all of them at the end) as an EvalResult."""
    done = [r for r in rows if r is not None]
    table = pd.DataFrame(done)
    scores = table["score"].to_numpy() if len(table) else []
    return EvalResult(
        table=table,
        score=float(table["score"].mean()) if len(table) else 0.0,
        ci=bootstrap_ci(scores),
        usage=usage.since(before) if usage else UsageTotals(),
        seconds=time.perf_counter() - start,
        error_counts=dict(Counter(r["error_type"] for r in done if r["error_type"])),
    )


def merge(result: EvalResult, kept: pd.DataFrame, order: list[str]) -> EvalResult:
    """`result` (re-run examples) laid over `kept` (an earlier run's other rows), in `order`:
    score and CI over all of them; usage and time are the re-run's own."""
    table = pd.concat([kept, result.table], ignore_index=True)
    rank = {i: n for n, i in enumerate(order)}
    table = table.iloc[sorted(range(len(table)), key=lambda r: rank.get(str(table["id"].iloc[r]), len(rank)))]
    table = table.reset_index(drop=True)
    errors = table.loc[table.error_type != "", "error_type"] if len(table) else []
    return EvalResult(table=table, score=float(table["score"].mean()) if len(table) else 0.0,
                      ci=bootstrap_ci(table["score"].to_numpy()), usage=result.usage, seconds=result.seconds,
                      error_counts=dict(Counter(errors)))
