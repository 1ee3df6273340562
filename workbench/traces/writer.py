"""Write finished example traces to MLflow, in batches: MLflow's entities and the store loop.

`StoreWriter.submit()` returns at once; its thread turns each `TraceRecord` into MLflow's
entities (TraceInfo with its assessments, Span) and writes a batch at a time: `start_trace`
and `log_spans` per trace, then one link of the batch to the run. It runs in the trace
writer process (process.py), away from the evaluation's interpreter.
A store that fails (a tracking server that went away) never stops the evaluation: unwritten
traces stay in a bounded backlog and the store is tried again after 1, 2, 4 ... up to
`PAUSE_SECONDS` seconds, so a server that comes back gets them. At `close()` a failing
store is still retried with the same backoff for up to `grace` seconds (a server restarting
as the run ends keeps its traces); what is unwritten then is counted lost.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass

from workbench.traces.recorder import TraceRecord

log = logging.getLogger(__name__)

PAUSE_SECONDS = 10.0  # the longest wait before a failing store is tried again
CLOSE_GRACE_SECONDS = 20.0  # how long a failing store is still retried once no more traces come
MAX_BACKLOG = 5000  # unwritten traces kept while the store is down
HOLD_LIMIT = 2000  # held traces (see `hold`) written anyway beyond this many, before any is dropped
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


class StoreWriter:
    def __init__(self, uri: str, experiment_id: str, run_id: str | None, *, model_id: str | None = None,
                 batch_size: int = 64, interval: float = 0.5, hold: bool = False,
                 grace: float = CLOSE_GRACE_SECONDS):
        """`hold`: keep traces until `close()` (up to HOLD_LIMIT), for an evaluation whose LM keeps the
        CPU busy: writing beside it measured +5% on the embedded LM, writing after it ~2%.
        `grace`: seconds a failing store is still retried after the last trace came."""
        self.uri, self.experiment_id, self.run_id, self.model_id = uri, experiment_id, run_id, model_id
        self.hold, self.grace = hold, grace
        self.batch_size, self.interval = batch_size, interval
        self.stats = WriteStats()
        self._queue: queue.Queue[TraceRecord | None] = queue.Queue()
        self._backlog: collections.deque[TraceRecord] = collections.deque()
        self._failures = 0  # failed writes in a row
        self._retry_at = 0.0
        self._closing = False
        self._clients: tuple = ()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="workbench-trace-writer", daemon=True)
        self._thread.start()

    def submit(self, record: TraceRecord) -> None:
        with self._lock:  # examples finish in several threads
            self.stats.submitted += 1
            self.stats.truncated += record.truncated
        self._queue.put(record)

    def close(self, timeout: float = 120.0) -> WriteStats:
        """Write what is left (at most `timeout` seconds); what is still unwritten then is lost."""
        self._queue.put(None)
        self._thread.join(timeout)
        with self._lock:
            if self._thread.is_alive():
                self.stats.last_error = self.stats.last_error or f"writing traces took longer than {timeout:g} s"
            self.stats.lost = self.stats.submitted - self.stats.written
        return self.stats

    def _work(self) -> None:
        while True:
            self._collect()
            if self._closing:
                if self._backlog:
                    self._drain()
                return
            if self._backlog and time.monotonic() >= self._retry_at and \
                    (not self.hold or len(self._backlog) >= HOLD_LIMIT):
                self._write()  # a full batch, or what came within `interval`

    def _opened(self) -> tuple:
        """The store's clients, opened at the first write (a held writer imports MLflow after the
        evaluation); a store that cannot be opened fails that write like any other, so it is retried
        and its error reported."""
        if not self._clients:
            from mlflow.tracing.client import TracingClient

            from workbench.tracking import client as bound_client

            self._clients = (TracingClient(self.uri), bound_client(self.uri))
        return self._clients

    def _drain(self) -> None:
        """No more traces come: write the backlog now; a failing store is tried again on the
        usual backoff until `grace` seconds have passed, the first try at once."""
        give_up = time.monotonic() + self.grace
        self._retry_at = 0.0
        while self._backlog:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                if time.monotonic() + wait > give_up:
                    return
                time.sleep(wait)
            self._write()

    def _due(self) -> bool:
        """A full batch is waiting and may be written now (held traces: only past HOLD_LIMIT)."""
        return len(self._backlog) >= (HOLD_LIMIT if self.hold else self.batch_size) and \
            time.monotonic() >= self._retry_at

    def _collect(self) -> None:
        """Move finished traces from the queue to the backlog until a batch is due, the queue
        closes, or `interval` passes. It always blocks on the queue, so the worker never spins."""
        deadline = time.monotonic() + self.interval
        while not self._due():
            try:
                item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0) or 0.001)
            except queue.Empty:
                return
            if item is None:
                self._closing = True
                return
            self._backlog.append(item)
            while len(self._backlog) > MAX_BACKLOG:  # a long outage: the oldest unwritten traces go
                self._backlog.popleft()
            if time.monotonic() >= deadline:
                return

    def _write(self) -> bool:
        """Write up to a batch from the backlog; a trace counts as written once its info (with its
        assessments) and its spans are in, so a store failing mid-batch keeps the rest for later.
        Returns False when the store failed (it is then left alone for a while, longer each time)."""
        start = time.perf_counter()
        written: list[str] = []
        try:
            tracing, client = self._opened()
            while self._backlog and len(written) < self.batch_size:
                record = self._backlog[0]
                info, spans = to_entities(record, self.experiment_id, self.run_id, self.model_id)
                tracing.start_trace(info)
                tracing.log_spans(self.experiment_id, spans)
                self._backlog.popleft()
                written.append(record.trace_id)
            if self.run_id:  # the traces name their run in their metadata too
                for i in range(0, len(written), MAX_LINKS):
                    client.link_traces_to_run(written[i:i + MAX_LINKS], self.run_id)
            self._failures = 0
            return True
        except Exception as exc:  # noqa: BLE001  an unwritten trace is kept for later or counted lost, never fatal
            self._failures += 1
            self._retry_at = time.monotonic() + min(2.0 ** (self._failures - 1), PAUSE_SECONDS)
            self.stats.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            log.debug("trace write failed (%d in a row): %s", self._failures, self.stats.last_error)
            return False
        finally:
            with self._lock:
                self.stats.written += len(written)
            self.stats.seconds += time.perf_counter() - start
