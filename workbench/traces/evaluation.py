"""An evaluation's traces: which examples get one, what each carries, where it goes.

`tracking.traces` picks the examples: `all`, `failures` (an error, or a score below 1),
`sample:N` (N examples chosen by a hash of their ids, the same N on every run of the same
items), or `none`. Each kept trace carries assessments: the metric's score as feedback
(with the rationale of the metric's `<name>_feedback` variant where one is registered),
the gold answer as the expectation, and the error type of a failed example.
"""

from __future__ import annotations

import hashlib
from typing import Any

from workbench.traces.process import TraceWriter
from workbench.traces.recorder import TraceRecord
from workbench.traces.writer import WriteStats


def parse_policy(value: str) -> tuple[str, int]:
    """('all'|'failures'|'none', 0) or ('sample', N); ValueError names what is accepted."""
    text = str(value).strip()
    if text in ("all", "failures", "none"):
        return text, 0
    if text.startswith("sample:"):
        count = text.removeprefix("sample:").strip()
        if count.isdigit() and int(count) > 0:
            return "sample", int(count)
    raise ValueError(f"{value!r} is not one of all, failures, sample:N (N > 0), none")


def _rank(example_id: str) -> str:
    return hashlib.sha256(f"trace-sample:{example_id}".encode()).hexdigest()


class EvalTracer:
    """Handed to `evaluate()`: `wants(example)` before an example runs, `finish(...)` after it."""

    def __init__(self, policy: str, writer: TraceWriter, *, metric: str, split: str, program: str,
                 ids: list[str], rationale=None, gold_field: str | None = None):
        self.mode, count = parse_policy(policy)
        self.writer, self.metric, self.split, self.program = writer, metric, split, program
        self.rationale, self.gold_field = rationale, gold_field
        self.sampled = set(sorted(ids, key=_rank)[:count]) if self.mode == "sample" else set()

    @property
    def name(self) -> str:
        return self.program

    def wants(self, example) -> bool:
        if self.mode == "sample":
            return str(example.get("id", "")) in self.sampled
        return self.mode in ("all", "failures")

    def finish(self, trace: TraceRecord, example, row: dict[str, Any], prediction) -> None:
        """Assessments from the example's row; the trace is written unless the policy drops it."""
        failed = bool(row.get("error_type")) or float(row.get("score", 0.0)) < 1.0
        if self.mode == "failures" and not failed:
            return
        example_id = str(row.get("id", ""))
        trace.tags.update({"workbench.example_id": example_id, "workbench.split": self.split,
                           "workbench.score": f"{float(row['score']):g}"})
        if row.get("error_type"):
            trace.tags["workbench.error_type"] = row["error_type"]
        rationale = None
        if self.rationale is not None and prediction is not None:
            try:
                rationale = self.rationale(example, prediction)
            except Exception:  # noqa: BLE001  a rationale is a courtesy; the score stands without it
                rationale = None
        if row.get("error"):
            rationale = f"{row['error_type']}: {row['error']}"
        trace.assessments.append({"kind": "feedback", "name": self.metric, "value": float(row["score"]),
                                  "rationale": rationale, "source_id": f"workbench.metric.{self.metric}"})
        gold = row.get("gold")
        if gold is not None and gold != "":
            trace.assessments.append({"kind": "expectation", "name": "expected_response", "value": _plain(gold),
                                      "source_type": "HUMAN", "source_id": "dataset"})
        if row.get("error_type"):
            trace.assessments.append({"kind": "feedback", "name": "error_type", "value": row["error_type"],
                                      "rationale": row.get("error"), "source_id": "workbench.evaluate"})
        self.writer.submit(trace)

    def end_input(self) -> None:
        self.writer.end_input()

    def close(self, timeout: float = 120.0) -> WriteStats:
        return self.writer.close(timeout)


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)
