"""Export, serve and promote end to end on the embedded LM: a real run, a verified bundle,
`workbench serve` answering over HTTP, and the registry's champion serving the same labels."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from tests.conftest import ROOT, SPEC, Store, free_port, run_cli, wait_for_http
from tests.export.conftest import SMALL

pytestmark = pytest.mark.slow


def test_embedded_run_exports_serves_and_promotes(tmp_path):
    store = Store(tmp_path / "mlruns")
    run = run_cli("run", str(SPEC), "--quiet", *[a for o in [*SMALL, *store.overrides] for a in ("--set", o)])
    assert run.returncode == 0, run.stderr[-2000:]
    run_id = run.stdout.split("run_id=")[1].split()[0]
    bundle = tmp_path / "bundle"
    exported = run_cli("export", run_id, "--out", str(bundle), "--tracking-uri", store.uri)
    assert exported.returncode == 0, exported.stderr[-2000:]
    lm = json.loads((bundle / "lm.json").read_text())
    report = json.loads((bundle / "report.json").read_text())
    assert lm["backend"] == "embedded" and report["n"] == 24
    assert abs(report["verified_score"] - report["score"]) <= report["tolerance"]

    plain = run_cli("export", run_id, "--format", "prompt", "--out", str(tmp_path / "prompt"), "--tracking-uri", store.uri)
    assert plain.returncode == 0, plain.stderr[-2000:]
    scored = json.loads((tmp_path / "prompt" / "report.json").read_text())
    assert scored["endpoint"] == "llama_cpp.server (embedded model)" and scored["rendering_checked"] == 24
    assert scored["plain_score"] >= scored["dspy_score"] - scored["tolerance"] and scored["plain_failures"] == 0

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", str(bundle), "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", proc, seconds=120, what="workbench serve",
                      log=lambda: proc.stdout.read())
        labels = json.loads((bundle / "program_config.json").read_text())["config"]["labels"]
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"text": "book a flight to denver"}, timeout=60)
        assert answer.status_code == 200 and answer.json()["label"] in labels, answer.text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    promoted = run_cli("promote", run_id, "--name", "router_e2e", "--tracking-uri", store.uri)
    assert promoted.returncode == 0 and "as champion" in promoted.stdout, promoted.stderr[-2000:]
