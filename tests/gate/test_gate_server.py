"""The CI flow of docs/ci.md against a real `mlflow server` on 127.0.0.1 with proxied
artifacts: a run and `promote` over HTTP, then a spec gated against the champion over HTTP
(the recorded LM backend keeps it short; the tracking server is the thing under test)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import SPEC, free_port, run_cli, stop, wait_for_http

pytestmark = pytest.mark.slow
FAST = ["lm.backend=recorded", "lm.model=synthetic", "dataset.train=2000", "dataset.dev=20", "dataset.test=60",
        "metric.summaries=[]"]


@pytest.fixture
def tracking_server(tmp_path):
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", str(tmp_path / "served"),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT,
                            env={**__import__("os").environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/health", proc, seconds=90, what="mlflow server", log=lambda: (tmp_path / "server.log").read_text())
    yield url, tmp_path / "served"
    stop(proc, log)


def test_run_promote_and_gate_over_http(tracking_server, tmp_path):
    url, served = tracking_server
    sets = [a for o in [*FAST, f"tracking.uri={url}"] for a in ("--set", o)]
    run = run_cli("run", str(SPEC), "--quiet", *sets)
    assert run.returncode == 0, run.stderr[-2000:]
    run_id = run.stdout.split("run_id=")[1].split()[0]
    assert list(served.rglob("predictions.json"))  # artifacts went to the server, not this client's disk
    promoted = run_cli("promote", run_id, "--name", "routing_clinc150", "--tracking-uri", url)
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    junit = tmp_path / "gate.xml"
    gated = run_cli("gate", str(SPEC), "--against", "champion", "--tracking-uri", url, "--junit", str(junit),
                    *[a for o in [*FAST, "optimizer.name=none", "optimizer.params={}"] for a in ("--set", o)])
    assert gated.returncode == 1, gated.stdout[-3000:] + gated.stderr[-2000:]
    score = next(c for c in ET.parse(junit).getroot().iter("testcase") if c.get("name") == "score")
    assert score.find("failure") is not None
    same = run_cli("gate", str(SPEC), "--against", "champion", "--tracking-uri", url, "--quiet",
                   *[a for o in FAST for a in ("--set", o)])
    assert same.returncode == 0 and "gate=passed" in same.stdout, same.stdout + same.stderr[-2000:]
