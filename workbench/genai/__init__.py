"""A tracked run as MLflow GenAI objects, so MLflow's own UI does the exploring.

`RunObjects.start()` (after compiling, before evaluating) logs the evaluation set as the
run's dataset input and the experiment's evaluation dataset, creates the LoggedModel of
the compiled program, and opens the trace writer; the evaluation then writes a trace per
example (`tracking.traces`). `release_traces()` (when the evaluation ends) lets the writer
write what it holds while the run logs its other results; `finish()` registers the prompt
versions, finalizes the model, then waits for the writer and records how many traces were
written and lost (`close_traces()`). None of this can fail a run: what could not be written
is counted and reported.
"""

from __future__ import annotations

import contextlib
import logging
import time

from workbench import registry
from workbench.tracking import resolve_uri

log = logging.getLogger(__name__)

EVAL_RUN_TYPE = ("mlflow.runType", "genai_evaluate")


class RunObjects:
    def __init__(self, spec, tracked, prepared, reporter):
        self.spec, self.tracked, self.prepared, self.reporter = spec, tracked, prepared, reporter
        self.client = tracked.client
        self.experiment_id = self.client.get_run(tracked.run_id).info.experiment_id
        self.tracer = None
        self.model_id: str | None = None
        self.prompt_versions: dict[str, int] = {}
        self.problems: list[str] = []

    @contextlib.contextmanager
    def _guard(self, what: str):
        try:
            yield
        except Exception as exc:  # noqa: BLE001  MLflow's GenAI objects are extras; the run's results stand
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            self.problems.append(f"{what}: {first}")
            self.reporter.warn(f"MLflow: could not log {what} ({first})")

    def start(self, program, digest: str, lm=None) -> RunObjects:
        """`lm`: the run's LM; one computing in this process gets its traces written after the evaluation."""
        spec, tracking = self.spec, self.spec.tracking
        if tracking.genai:
            with self._guard("the evaluation dataset"):
                from workbench.genai.datasets import ensure_evaluation_dataset, log_input

                name, digest = log_input(self.client, self.tracked.run_id, self.prepared, digest)
                self.tracked.metric_links.update(dataset_name=name, dataset_digest=digest)
                ensure_evaluation_dataset(self.experiment_id, self.prepared, digest)
            with self._guard("the logged model"):
                from workbench.genai import models

                self.model_id = models.create(self.client, self.experiment_id, self.tracked.run_id, spec, program)
                self.tracked.metric_links["model_id"] = self.model_id
                self.tracked.set_tags({"workbench.model_id": self.model_id})
        if tracking.traces != "none":
            self._open_tracer(hold=bool(getattr(getattr(lm, "engine", None), "in_process", False)))
        return self

    def _open_tracer(self, hold: bool) -> None:
        from workbench.traces.dspy_spans import install
        from workbench.traces.evaluation import EvalTracer
        from workbench.traces.process import TraceWriter

        spec = self.spec
        install()
        feedback = f"{spec.metric.name}_feedback"
        rationale = None
        if feedback in registry.metrics.names():
            fn = registry.metrics.get(feedback)
            rationale = lambda example, prediction: getattr(fn(example, prediction), "feedback", None)  # noqa: E731
        writer = TraceWriter(resolve_uri(spec.tracking.uri), self.experiment_id, self.tracked.run_id,
                             model_id=self.model_id, hold=hold)
        self.tracer = EvalTracer(spec.tracking.traces, writer, metric=spec.metric.name, split=spec.eval.split,
                                 program=spec.program.name, ids=[str(e.get("id", "")) for e in self.prepared.evalset],
                                 rationale=rationale)
        self.tracked.set_tags({EVAL_RUN_TYPE[0]: EVAL_RUN_TYPE[1], "workbench.traces": spec.tracking.traces})

    def release_traces(self) -> None:
        """The evaluation is over: the writer may write everything now (see `close_traces`)."""
        if self.tracer is not None:
            self.tracer.end_input()

    def close_traces(self) -> None:
        if self.tracer is None:
            return
        started = time.perf_counter()
        submitted = self.tracer.writer.stats.submitted
        with self.reporter.phase(f"writing {submitted} traces to MLflow", None):
            stats = self.tracer.close(timeout=60 + submitted / 5)  # a store slower than 5 traces/s loses some
        self.tracer = None
        # trace_write_seconds: the writer's time spent writing (mostly during the evaluation);
        # trace_wait_seconds: what the run waited for it at its end (after logging its other results).
        metrics = {"traces_logged": stats.written, "traces_lost": stats.lost, "traces_truncated": stats.truncated,
                   "trace_write_seconds": round(stats.seconds, 3),
                   "trace_wait_seconds": round(time.perf_counter() - started, 3)}
        with self._guard("the trace counts"):
            self.tracked.log_metrics(metrics)
        if stats.lost:
            self.reporter.warn(f"MLflow: {stats.lost} of {stats.submitted} traces were not written "
                               f"({stats.last_error}); the scores and the per-example table are complete")

    def finish(self, program, *, failed: bool) -> None:
        try:
            if self.spec.tracking.genai and not failed:
                with self._guard("the prompt versions"):
                    from workbench.genai.prompts import register

                    self.prompt_versions = register(self.client, self.spec.name, program, self.tracked.run_id)
                    self.tracked.set_tags({"workbench.prompts": ",".join(f"{n}/{v}" for n, v in
                                                                         self.prompt_versions.items())[:5000]})
            if self.model_id is not None:
                with self._guard("the logged model's files"):
                    from workbench.genai import models

                    models.finish(self.client, self.model_id, self.client.get_run(self.tracked.run_id),
                                  self.prepared, program, failed=failed)
        finally:
            self.close_traces()  # last (the writer has been writing meanwhile), even after a Ctrl-C above
