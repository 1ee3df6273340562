"""The CI flow of docs/ci.md against a real `mlflow server` on 127.0.0.1 with proxied
artifacts: a run and `promote` over HTTP, then a spec gated against the champion over HTTP
(the recorded LM backend keeps it short; the tracking server is the thing under test)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.conftest import SPEC, mlflow_server, run_cli

pytestmark = pytest.mark.slow
FAST = ["lm.backend=recorded", "lm.model=synthetic", "dataset.train=2000", "dataset.dev=20", "dataset.test=60",
        "metric.summaries=[]"]


@pytest.fixture
def tracking_server(tmp_path):
    with mlflow_server(tmp_path) as url:
        yield url, tmp_path / "served"


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
