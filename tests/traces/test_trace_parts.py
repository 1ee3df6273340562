"""The pieces of per-example tracing: span capture, size bounds, sampling, the background writer."""

from __future__ import annotations

import json
import time

import dspy
import pytest

from tests.conftest import Store, free_port
from workbench.traces import recorder
from workbench.traces.evaluation import EvalTracer, parse_policy
from workbench.traces.process import TraceWriter
from workbench.traces.recorder import MAX_TRACE_CHARS, MAX_VALUE_CHARS, example_trace, span
from workbench.traces.writer import StoreWriter, to_entities


def test_span_outside_a_traced_example_does_nothing():
    with span("retrieve", "RETRIEVER", {"q": "x"}) as out:
        out["outputs"] = [1, 2]
    assert recorder.current() is None


def test_spans_nest_and_an_exception_marks_its_span():
    with example_trace("router", {"text": "hi"}) as (trace, root):
        with span("candidates", "RETRIEVER", {"text": "hi"}) as out:
            out["outputs"] = ["a", "b"]
        with pytest.raises(ValueError), span("step", "CHAIN"):
            raise ValueError("bad step")
        trace.close(root, {"label": "a"})
    names = [(s.name, s.parent_id == root.span_id) for s in trace.spans]
    assert names == [("router", False), ("candidates", True), ("step", True)]
    assert json.loads(trace.spans[1].outputs) == ["a", "b"]
    assert trace.spans[2].error == "ValueError: bad step" and not root.error
    assert recorder.current() is None


def test_a_huge_value_is_cut_with_a_marker_and_the_trace_stays_bounded():
    with example_trace("p", {"text": "x" * (MAX_VALUE_CHARS * 3)}) as (trace, root):
        for _ in range(80):
            with span("big", "CHAIN", {"blob": "y" * MAX_VALUE_CHARS}):
                pass
        trace.close(root, None)
    assert trace.truncated and root.attributes["workbench.truncated"] is True
    assert "truncated by workbench" in json.loads(root.inputs) and len(root.inputs) <= MAX_VALUE_CHARS + 10
    assert trace.chars <= MAX_TRACE_CHARS + 200 * len(trace.spans)


@pytest.mark.parametrize("value,expected", [("all", ("all", 0)), ("none", ("none", 0)), ("failures", ("failures", 0)),
                                            ("sample:25", ("sample", 25))])
def test_policies(value, expected):
    assert parse_policy(value) == expected


@pytest.mark.parametrize("value", ["some", "sample:0", "sample:x", "sample:", ""])
def test_bad_policies_say_what_is_accepted(value):
    with pytest.raises(ValueError, match="all, failures, sample:N"):
        parse_policy(value)


class _Sink:
    def __init__(self):
        self.records = []

    def submit(self, record):
        self.records.append(record)


def _finish(tracer, example_id: str, score: float, error_type: str = ""):
    example = dspy.Example(id=example_id, text="t", label="a").with_inputs("text")
    with example_trace("p", {"text": "t"}) as (trace, root):
        trace.close(root, {"label": "a"})
    row = {"id": example_id, "score": score, "gold": "a", "error_type": error_type,
           "error": "AdapterParseError: no json" if error_type else ""}
    if tracer.wants(example):
        tracer.finish(trace, example, row, None)


def test_failures_keeps_wrong_and_failed_examples_only():
    sink = _Sink()
    tracer = EvalTracer("failures", sink, metric="accuracy", split="test", program="router", ids=["1", "2", "3"])
    _finish(tracer, "1", 1.0)
    _finish(tracer, "2", 0.0)
    _finish(tracer, "3", 0.0, "parse")
    assert [r.tags["workbench.example_id"] for r in sink.records] == ["2", "3"]
    failed = sink.records[1]
    assert failed.tags["workbench.error_type"] == "parse"
    kinds = [(a["kind"], a["name"]) for a in failed.assessments]
    assert kinds == [("feedback", "accuracy"), ("expectation", "expected_response"), ("feedback", "error_type")]
    assert failed.assessments[0]["rationale"].startswith("parse: AdapterParseError")


def test_sample_picks_the_same_n_examples_every_time():
    ids = [str(i) for i in range(50)]
    picks = []
    for _ in range(2):
        sink = _Sink()
        tracer = EvalTracer("sample:7", sink, metric="accuracy", split="test", program="router", ids=ids)
        for i in ids:
            _finish(tracer, i, 1.0)
        picks.append([r.tags["workbench.example_id"] for r in sink.records])
    assert len(picks[0]) == 7 and picks[0] == picks[1]


def _record(i: int, run_id: str | None = None):
    with example_trace("router", {"text": f"message {i}"}) as (trace, root):
        with span("CountingLM.__call__", "CHAT_MODEL", {"messages": [{"role": "user", "content": "hi"}]}) as out:
            out["outputs"] = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "{}"}}]}
        trace.close(root, {"label": "a"})
    trace.tags.update({"workbench.example_id": str(i), "workbench.split": "test"})
    trace.assessments += [{"kind": "feedback", "name": "accuracy", "value": float(i % 2), "rationale": "why"},
                          {"kind": "expectation", "name": "expected_response", "value": "a", "source_type": "HUMAN"}]
    return trace


def test_entities_round_trip_through_mlflow():
    info, spans = to_entities(_record(3), "1", "run123", "m-abc")
    assert info.trace_id.startswith("tr-") and info.client_request_id == "3"
    assert info.trace_metadata["mlflow.sourceRun"] == "run123" and info.trace_metadata["mlflow.modelId"] == "m-abc"
    assert [s.name for s in spans] == ["router", "CountingLM.__call__"]
    assert spans[1].parent_id == spans[0].span_id and spans[1].span_type == "CHAT_MODEL"
    assert spans[1].inputs["messages"][0]["content"] == "hi"
    assert [a.name for a in info.assessments] == ["accuracy", "expected_response"]


@pytest.mark.parametrize("hold", [False, True], ids=["as_they_come", "held_to_the_end"])
def test_writer_writes_links_and_counts(tmp_path, hold):
    """More traces than a batch, in both modes: a held writer (an in-process LM's) must still
    write them all at close, in batches, within close's timeout (past it, close reports an error: a
    wall-clock bound here failed under a loaded CPU, 56 s for the store's first write)."""
    store = Store(tmp_path / "mlruns")
    client = store.client()
    experiment = client.create_experiment("traces")
    run = client.create_run(experiment)
    writer = TraceWriter(store.uri, experiment, run.info.run_id, batch_size=4, interval=0.05, hold=hold)
    for i in range(10):
        writer.submit(_record(i))
    stats = writer.close(timeout=60)
    assert (stats.submitted, stats.written, stats.lost) == (10, 10, 0), stats.last_error
    assert not stats.last_error
    import mlflow

    mlflow.set_tracking_uri(store.uri)
    traces = mlflow.search_traces(locations=[experiment], run_id=run.info.run_id, return_type="list")
    assert len(traces) == 10
    by_id = {t.info.client_request_id: t for t in traces}
    feedback = [a for a in by_id["3"].info.assessments if a.name == "accuracy"][0]
    assert feedback.value == 1.0 and feedback.rationale == "why"
    assert len(by_id["3"].data.spans) == 2



@pytest.mark.parametrize("hold", [False, True], ids=["as_they_come", "held"])
def test_only_a_writer_beside_the_evaluation_lowers_its_priority(tmp_path, monkeypatch, capsys, hold):
    """A held writer writes after the evaluation: at nice 19 beside other busy processes (a second run,
    a test suite) it got no CPU for over a minute and the run lost every trace. So it keeps its
    priority, and opens no MLflow store while it only reads its pipe (here: no traces at all)."""
    import io
    import os
    import types

    from workbench.traces import process

    niced: list[int] = []
    monkeypatch.setattr(os, "nice", niced.append)
    monkeypatch.setattr(process.sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(b"")))
    config = {"uri": f"sqlite:///{tmp_path / 'traces.db'}", "experiment_id": "1", "run_id": None, "model_id": None,
              "batch_size": 4, "interval": 0.05, "hold": hold, "grace": 1.0}
    process.main([json.dumps(config)])
    stats = json.loads(capsys.readouterr().out.split(process.STATS_PREFIX)[1])
    assert niced == ([] if hold else [19]) and stats == {"written": 0, "seconds": 0, "last_error": ""}
    assert not (tmp_path / "traces.db").exists()  # the store was never opened

def test_a_dead_store_loses_traces_counted_never_raising():
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    import os

    old = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="2")
    try:
        writer = TraceWriter(uri, "1", "run", batch_size=2, interval=0.05, grace=2)
        start = time.perf_counter()
        for i in range(20):
            writer.submit(_record(i))
        stats = writer.close(timeout=60)
    finally:
        for key, value in old.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    assert (stats.submitted, stats.written, stats.lost) == (20, 0, 20)
    assert stats.last_error and time.perf_counter() - start < 30


@pytest.mark.parametrize("grace", [0.0, 20.0], ids=["no_grace", "grace"])
def test_a_store_failing_as_the_run_ends_gets_its_traces_within_the_grace(tmp_path, monkeypatch, grace):
    """The store fails the first two writes of the final flush (a server restarting as the run
    ends): retried on the backoff within the grace, every trace arrives; with no grace they are lost."""
    from mlflow.tracing.client import TracingClient

    store = Store(tmp_path / "mlruns")
    client = store.client()
    experiment = client.create_experiment("traces")
    run = client.create_run(experiment)
    real, failures = TracingClient.start_trace, []

    def flaky(self, info):
        if len(failures) < 2:
            failures.append(time.monotonic())
            raise ConnectionError("the tracking server is restarting")
        return real(self, info)

    monkeypatch.setattr(TracingClient, "start_trace", flaky)
    writer = StoreWriter(store.uri, experiment, run.info.run_id, batch_size=4, interval=0.05, hold=True, grace=grace)
    for i in range(6):
        writer.submit(_record(i))
    stats = writer.close(timeout=60)
    if grace:
        assert (stats.written, stats.lost) == (6, 0) and len(failures) == 2
        assert failures[1] - failures[0] >= 0.9  # retried on the backoff, not in a tight loop
    else:
        assert (stats.written, stats.lost) == (0, 6) and len(failures) == 1


@pytest.mark.parametrize("opens_after", [2, None], ids=["opens_on_the_third_try", "never_opens"])
def test_a_store_that_cannot_be_opened_is_retried_and_reported(tmp_path, monkeypatch, opens_after):
    """The clients are opened at the first write. Opening them failing (a store not reachable yet, an
    unwritable folder) used to end the writer's thread: every trace lost and no reason given. It now
    fails that write like any other: retried on the backoff within the grace, and its error reported."""
    from mlflow.tracing.client import TracingClient

    store = Store(tmp_path / "mlruns")
    client = store.client()
    experiment = client.create_experiment("traces")
    run = client.create_run(experiment)
    real, tries = TracingClient.__init__, []

    def opening(self, *args, **kwargs):
        tries.append(time.monotonic())
        if opens_after is None or len(tries) <= opens_after:
            raise PermissionError("the store's folder is not writable")
        real(self, *args, **kwargs)

    monkeypatch.setattr(TracingClient, "__init__", opening)
    writer = StoreWriter(store.uri, experiment, run.info.run_id, batch_size=4, interval=0.05, hold=True, grace=4.0)
    for i in range(6):
        writer.submit(_record(i))
    stats = writer.close(timeout=60)
    if opens_after:
        assert (stats.written, stats.lost) == (6, 0), stats.last_error
        assert tries[2] - tries[0] >= 2.5  # retried on the backoff (1 s, then 2 s), not in a tight loop
    else:
        assert (stats.written, stats.lost) == (0, 6) and len(tries) >= 2
        assert stats.last_error == "PermissionError: the store's folder is not writable"
