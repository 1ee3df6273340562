"""`workbench serve`: a real uvicorn subprocess over a real bundle (recorded LM; the embedded LM's
serving is in tests/export/test_export_e2e.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import ROOT, free_port, wait_for_http

TEXTS = ["what is my checking account balance", "book a table for two at 7pm", "how do you say thanks in french",
         "set an alarm for 6 am", "is my flight to denver on time", "what's the weather tomorrow",
         "transfer 50 dollars to my savings", "play some jazz music"]


@pytest.fixture(scope="module")
def server(bundle):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", str(bundle), "--port", str(port),
                             "--max-body-bytes", "4096"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/health", proc, seconds=120, what="workbench serve", log=lambda: proc.stdout.read())
    yield base
    proc.terminate()
    proc.wait(timeout=20)


def test_predict_health_and_metadata(server, bundle):
    labels = json.loads((bundle / "program_config.json").read_text())["config"]["labels"]
    response = httpx.post(f"{server}/predict", json={"text": TEXTS[0]}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] in labels and len(body["candidates"]) == 2 and body["latency_ms"] > 0
    meta = httpx.get(f"{server}/metadata").json()
    assert meta["inputs"] == ["text"] and meta["manifest"]["program_class"] == "programs.routing.Router"
    assert meta["report"]["n"] == 24


@pytest.mark.parametrize("send, status, needle", [
    (dict(content=b"{not json"), 400, "not JSON"),
    (dict(json=["a list"]), 400, "JSON object"),
    (dict(json={}), 422, "required field is missing"),
    (dict(json={"text": "hi", "extra": 1}), 422, "unknown field"),
    (dict(json={"text": 42}), 422, "string"),
    (dict(json={"text": ""}), 422, "at least 1"),
    (dict(json={"text": "x" * 5000}), 413, "over 4096 bytes"),
])
def test_bad_requests_get_json_errors_and_the_server_stays_up(server, send, status, needle):
    response = httpx.post(f"{server}/predict", headers={"content-type": "application/json"}, timeout=30, **send)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]
    if status == 422 and "field" in response.json():
        assert response.json()["field"] in ("text", "extra")
    assert httpx.get(f"{server}/health").json()["status"] == "ok"


def test_oversized_chunked_body_is_refused(server):
    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    response = httpx.post(f"{server}/predict", content=chunks(), timeout=30)
    assert response.status_code == 413


def test_sixteen_concurrent_clients_all_answered(server):
    def call(i):
        return httpx.post(f"{server}/predict", json={"text": TEXTS[i % len(TEXTS)] + f" #{i}"}, timeout=120)

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(call, range(48)))
    assert [r.status_code for r in responses] == [200] * 48
    assert httpx.get(f"{server}/health").json()["requests"] >= 48


def test_a_failing_program_is_a_500_not_a_crash(bundle):
    """The LM returns garbage (the fault-injecting backend): each request fails alone."""
    from fastapi.testclient import TestClient

    import workbench
    from tests.fakes import FaultBackend
    from workbench.lm import build_lm
    from workbench.serve import create_app
    from workbench.spec import LMSpec

    program = workbench.load(bundle)
    program.lm = build_lm(LMSpec(cache=False), backend=FaultBackend(["garbage", "timeout"]))
    client = TestClient(create_app(program))
    first = client.post("/predict", json={"text": "hello"})
    assert first.status_code == 500 and "the program failed" in first.json()["error"]
    second = client.post("/predict", json={"text": "hello again"})
    assert second.status_code == 500 and "the program failed" in second.json()["error"]
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["errors"] == 2
