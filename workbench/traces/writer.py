"""Write finished example traces to MLflow in the background, in batches.

`TraceWriter.submit()` returns at once; a worker thread turns each `TraceRecord` into
MLflow's entities (TraceInfo with its assessments, Span) and writes a batch at a time:
`start_trace` per trace, one `log_spans` for the batch, then links the batch to the run.
A store that fails (a tracking server that went away) never stops the evaluation: the
batch's traces are counted as lost, and after `GIVE_UP_AFTER` failed batches in a row the
batches that follow are counted lost without trying for `PAUSE_SECONDS`, then one batch
tries again (a restarted server gets the rest). `close()` waits for the queue, bounded.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass

from workbench.traces.recorder import TraceRecord

log = logging.getLogger(__name__)

GIVE_UP_AFTER = 3
PAUSE_SECONDS = 10.0
MAX_LINKS = 100  # MLflow links at most 100 traces to a run per request
PREVIEW_CHARS = 1000


@dataclass
class WriteStats:
    submitted: int = 0
    written: int = 0
    lost: int = 0
    truncated: int = 0
    seconds: float = 0.0  # the worker's time spent writing
    last_error: str = ""


def _b64(value: int, size: int) -> str:
    return base64.b64encode(value.to_bytes(size, "big")).decode()


def _span_dicts(record: TraceRecord) -> list[dict]:
    out = []
    request_id = json.dumps(record.trace_id)
    for span in record.spans:
        attributes = {k: json.dumps(v, default=str) for k, v in span.attributes.items() if not k.startswith("_")}
        attributes.update({"mlflow.traceRequestId": request_id, "mlflow.spanType": json.dumps(span.span_type),
                           "mlflow.spanInputs": span.inputs, "mlflow.spanOutputs": span.outputs})
        events = []
        if span.error:
            name, _, message = span.error.partition(": ")
            events.append({"name": "exception", "time_unix_nano": span.end_ns,
                           "attributes": {"exception.type": name, "exception.message": message}})
        out.append({
            "trace_id": _b64(record.otel_trace_id, 16), "span_id": _b64(span.span_id, 8),
            "parent_span_id": _b64(span.parent_id, 8) if span.parent_id is not None else None,
            "name": span.name, "start_time_unix_nano": span.start_ns,
            "end_time_unix_nano": span.end_ns or span.start_ns,
            "events": events, "attributes": attributes,
            "status": {"code": "STATUS_CODE_ERROR" if span.error else "STATUS_CODE_OK", "message": span.error},
        })
    return out


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 3] + "..."


def to_entities(record: TraceRecord, experiment_id: str, run_id: str | None, model_id: str | None):
    """The MLflow TraceInfo (assessments included) and Spans of a finished example trace."""
    from mlflow.entities import Span, TraceInfo, TraceLocation, TraceState
    from mlflow.entities.assessment import Expectation, Feedback
    from mlflow.entities.assessment_source import AssessmentSource

    root = record.root
    span_id = f"{root.span_id:016x}"
    metadata = {"mlflow.traceInputs": _preview(root.inputs), "mlflow.traceOutputs": _preview(root.outputs),
                "mlflow.trace_schema.version": "3"}
    if run_id:
        metadata["mlflow.sourceRun"] = run_id
    if model_id:
        metadata["mlflow.modelId"] = model_id
    if record.usage["input_tokens"] or record.usage["output_tokens"]:
        metadata["mlflow.trace.tokenUsage"] = json.dumps({**record.usage, "total_tokens": sum(record.usage.values())})
    tags = {"mlflow.traceName": root.name, **record.tags}
    if record.truncated:
        tags["workbench.truncated"] = "true"
    assessments = []
    for a in record.assessments:
        source = AssessmentSource(source_type=a.get("source_type", "CODE"), source_id=a.get("source_id", "workbench"))
        meta = {"mlflow.assessment.sourceRunId": run_id} if run_id else {}
        if a["kind"] == "expectation":
            assessments.append(Expectation(name=a["name"], value=a["value"], source=source, trace_id=record.trace_id,
                                           metadata=meta, span_id=span_id))
        else:
            assessments.append(Feedback(name=a["name"], value=a["value"], rationale=a.get("rationale"), source=source,
                                        trace_id=record.trace_id, metadata=meta, span_id=span_id))
    info = TraceInfo(trace_id=record.trace_id, trace_location=TraceLocation.from_experiment_id(experiment_id),
                     request_time=root.start_ns // 1_000_000, state=TraceState.ERROR if root.error else TraceState.OK,
                     request_preview=_preview(root.inputs), response_preview=_preview(root.outputs),
                     client_request_id=record.tags.get("workbench.example_id"),
                     execution_duration=max((root.end_ns - root.start_ns) // 1_000_000, 0),
                     trace_metadata=metadata, tags=tags, assessments=assessments)
    return info, [Span.from_dict(d) for d in _span_dicts(record)]


class TraceWriter:
    def __init__(self, uri: str, experiment_id: str, run_id: str | None, *, model_id: str | None = None,
                 batch_size: int = 64, interval: float = 0.5):
        self.uri, self.experiment_id, self.run_id, self.model_id = uri, experiment_id, run_id, model_id
        self.batch_size, self.interval = batch_size, interval
        self.stats = WriteStats()
        self._queue: queue.Queue[TraceRecord | None] = queue.Queue()
        self._failed_batches = 0
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="workbench-trace-writer", daemon=True)
        self._thread.start()

    def submit(self, record: TraceRecord) -> None:
        with self._lock:  # examples finish in several threads
            self.stats.submitted += 1
            self.stats.truncated += record.truncated
        self._queue.put(record)

    def close(self, timeout: float = 120.0) -> WriteStats:
        """Write what is queued (at most `timeout` seconds); what is still queued then is lost."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.stats.last_error = self.stats.last_error or f"writing traces took longer than {timeout:g} s"
            self.stats.lost = self.stats.submitted - self.stats.written
        return self.stats

    def _work(self) -> None:
        from mlflow.tracing.client import TracingClient

        from workbench.tracking import client as bound_client

        tracing, client = TracingClient(self.uri), bound_client(self.uri)
        done = False
        while not done:
            batch: list[TraceRecord] = []
            deadline = time.monotonic() + self.interval
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
                except queue.Empty:
                    if batch:
                        break
                    deadline = time.monotonic() + self.interval
                    continue
                if item is None:
                    done = True
                    break
                batch.append(item)
            if batch:
                self._write(batch, tracing, client)

    def _write(self, batch: list[TraceRecord], tracing, client) -> None:
        if self._failed_batches >= GIVE_UP_AFTER and time.monotonic() < self._retry_at:
            self.stats.lost += len(batch)
            return
        start = time.perf_counter()
        written: list[str] = []
        try:
            spans = []
            for record in batch:
                info, record_spans = to_entities(record, self.experiment_id, self.run_id, self.model_id)
                tracing.start_trace(info)
                written.append(record.trace_id)
                spans.extend(record_spans)
            tracing.log_spans(self.experiment_id, spans)
            if self.run_id:
                for i in range(0, len(written), MAX_LINKS):
                    client.link_traces_to_run(written[i:i + MAX_LINKS], self.run_id)
            self.stats.written += len(batch)
            self._failed_batches = 0
        except Exception as exc:  # noqa: BLE001  a lost trace is counted, never fatal
            self._failed_batches += 1
            if self._failed_batches >= GIVE_UP_AFTER:
                self._retry_at = time.monotonic() + PAUSE_SECONDS
            self.stats.lost += len(batch)
            self.stats.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            log.debug("trace batch lost: %s", self.stats.last_error)
        finally:
            self.stats.seconds += time.perf_counter() - start
