"""RAG and function calling on the embedded LM: run -> export -> a copy of the bundle loaded
and served from another folder with the cache gone -> answers over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest

from tests.conftest import ROOT, Store, free_port, run_cli, stop, wait_for_http

pytestmark = pytest.mark.slow

CASES = {
    "rag_xquad": (["dataset.test=8", "dataset.dev=4", "dataset.train=150"],
                  {"question": "What is the name of the stadium where Super Bowl 50 was played?"}, "answer"),
    "tools_bfcl_simple": (["dataset.test=6", "dataset.dev=4"], None, "name"),
}


@pytest.mark.parametrize("spec", sorted(CASES))
def test_embedded_run_exports_and_a_copy_serves_without_the_cache(spec, tmp_path):
    overrides, request, answer_field = CASES[spec]
    store = Store(tmp_path / "mlruns")
    run = run_cli("run", str(ROOT / "experiments" / f"{spec}.yaml"), "--quiet",
                  *[a for o in [*overrides, *store.overrides] for a in ("--set", o)])
    assert run.returncode == 0, run.stderr[-2000:]
    run_id = run.stdout.split("run_id=")[1].split()[0]
    bundle = tmp_path / "bundle"
    exported = run_cli("export", run_id, "--out", str(bundle), "--tracking-uri", store.uri)
    assert exported.returncode == 0, exported.stderr[-2000:]
    report = json.loads((bundle / "report.json").read_text())
    assert abs(report["verified_score"] - report["score"]) <= report["tolerance"] and report["bundle_bytes"] > 0
    if request is None:  # function calling: a request as the run's own items look
        row = store.predictions(run_id)[0]
        request = {"question": row["question"], "functions": row["functions"]}

    copy = tmp_path / "elsewhere" / "bundle"
    shutil.copytree(bundle, copy)
    port = free_port()
    env = {**os.environ, "WORKBENCH_CACHE": str(tmp_path / "empty-cache")}
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", str(copy), "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", proc, seconds=180, what="workbench serve", log=lambda: "")
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json=request, timeout=120)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert answer_field in body or answer_field in json.dumps(body), body
        if spec == "rag_xquad":
            assert body["passages"] and body["passages"][0]["id"] in body["citations"]
        missing = httpx.post(f"http://127.0.0.1:{port}/predict", json={"nothing": "here"}, timeout=60)
        assert missing.status_code == 422
    finally:
        stop(proc)
    assert not (tmp_path / "empty-cache" / "indexes").exists()
