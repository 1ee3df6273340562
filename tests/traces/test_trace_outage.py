"""The tracking server fails in the middle of an evaluation. Gone for a few seconds, then
back: the traces wait in the writer's backlog and all arrive. Its trace endpoints failing
for the rest of the run: the run still finishes (FINISHED, scores and table complete) and
the traces it could not write are counted and reported. Real `mlflow server`, a real CLI
subprocess, a mock LM endpoint, and a TCP proxy in between that the test cuts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import SPEC, free_port, mlflow_server
from workbench.lm.mock_server import MockEndpoint

pytestmark = pytest.mark.slow
N = 40


def _is_trace_request(data: bytes) -> bool:
    """A chunk that starts an HTTP request for a trace endpoint; a body that merely mentions
    traces (a program's JSON state has `"traces": []`) is not one."""
    method, _, rest = data.partition(b" ")
    path = rest.split(b" ", 1)[0]
    return method in (b"GET", b"POST", b"PUT", b"PATCH", b"DELETE") and b"traces" in path


class Proxy:
    """Forwards 127.0.0.1:port to the server; `cut()` drops every connection and refuses new
    ones until `restore()`."""

    def __init__(self, target: int):
        self.target, self.port = target, free_port()
        self.refuse_traces = False  # answer 503 to every trace request (the rest passes)
        self._up = threading.Event()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._up.set()
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def cut(self) -> None:
        self._up.clear()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; close() alone would not
        except OSError:
            pass
        self._listener.close()
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while self._up.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            self._conns += [client, upstream]
            for a, b, inspect in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, inspect), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket, inspect: bool) -> None:
        try:
            while data := a.recv(65536):
                if inspect and self.refuse_traces and _is_trace_request(data):
                    a.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass


@pytest.mark.parametrize("failure", ["outage", "trace_endpoints_down"])
def test_a_failing_tracking_server_costs_traces_at_most_never_the_run(tmp_path, failure):
    from mlflow.tracking import MlflowClient

    with mlflow_server(tmp_path) as direct:
        proxy = Proxy(int(direct.rsplit(":", 1)[1]))
        with MockEndpoint(latency=0.25) as lm:
            sets = [a for o in [f"dataset.test={N}", "dataset.train=2000", "metric.summaries=[]", "lm.backend=openai",
                                f"lm.model={lm.model}", f"lm.api_base={lm.base_url}", "lm.cache=false",
                                f"tracking.uri=http://127.0.0.1:{proxy.port}", "tracking.experiment=outage"]
                    for a in ("--set", o)]
            # One quick retry (a pooled connection the cut closed), so an outage fails fast instead of
            # waiting out MLflow's default backoff.
            env = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"}
            proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "run", str(SPEC), *sets], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            client = MlflowClient(direct)
            deadline = time.time() + 120
            while time.time() < deadline:  # until the evaluation is under way and some traces are in
                experiment = client.get_experiment_by_name("outage")
                if experiment is not None and len(client.search_traces(
                        locations=[experiment.experiment_id], max_results=50, include_spans=False)) >= 3:
                    break
                time.sleep(0.3)
            else:
                proc.kill()
                pytest.fail("the evaluation never wrote a trace")
            if failure == "outage":
                proxy.cut()
                time.sleep(4.0)
                proxy.restore()
            else:
                proxy.refuse_traces = True
            out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        [run] = client.search_runs([experiment.experiment_id])
        assert run.info.status == "FINISHED" and run.data.metrics["n_examples"] == N
        written, lost = run.data.metrics["traces_logged"], run.data.metrics["traces_lost"]
        print(f"{failure}: traces written {written:g}, lost {lost:g} of {N}")
        assert written + lost == N, (written, lost)
        if failure == "outage":  # kept in the backlog until the server was back
            assert lost == 0 and "traces were not written" not in err, err[-2000:]
        else:
            assert lost > 0 and f"{int(lost)} of {N} traces were not written" in err, err[-2000:]
        on_server = client.search_traces(locations=[experiment.experiment_id], max_results=200, include_spans=False)
        assert written <= len(on_server) <= written + 1  # at most the one trace cut between its info and spans
        import mlflow

        mlflow.set_tracking_uri(direct)
        trace = mlflow.get_trace(min(on_server, key=lambda t: t.info.request_time).info.trace_id)  # a whole one
        assert {"CHAT_MODEL", "RETRIEVER"} <= {s.span_type for s in trace.data.spans}  # spans stored over HTTP too
        assert "Traceback" not in err
