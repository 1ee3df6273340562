"""`workbench serve` off loopback: a bearer key (401 without it), a per-client limit (429)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import ROOT, free_port, wait_for_http
from workbench.cli import main
from workbench.serve import create_app


class _Echo:
    """A stand-in for a loaded bundle: the guard is what is under test here."""

    manifest = {"program_class": "tests.Echo"}
    inputs = ["text"]

    def metadata(self):
        return {"inputs": self.inputs}

    def validate(self, payload):
        return {"text": str(payload.get("text", ""))}

    def predict(self, inputs):
        return {"label": inputs["text"].upper()}


def test_the_bearer_key_is_required_and_compared_exactly():
    client = TestClient(create_app(_Echo(), api_key="s3cret-token"))
    assert client.get("/health").status_code == 200  # load balancers probe without a key
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"},
                    {"Authorization": "Bearer s3cret-token "}):
        reply = client.post("/predict", json={"text": "hi"}, headers=headers)
        assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer", headers
        assert "s3cret" not in reply.text
    assert client.get("/metadata").status_code == 401
    ok = client.post("/predict", json={"text": "hi"}, headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and ok.json()["label"] == "HI"
    assert client.get("/health").json()["unauthorized"] == 5


def test_each_client_gets_its_own_rate_limit():
    client = TestClient(create_app(_Echo(), rate_limit=3))
    codes = [client.post("/predict", json={"text": "x"}).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    limited = client.post("/predict", json={"text": "x"})
    assert int(limited.headers["retry-after"]) >= 1 and "per minute" in limited.json()["error"]
    other = TestClient(create_app(_Echo(), rate_limit=3), client=("10.0.0.9", 5000))
    assert other.post("/predict", json={"text": "x"}).status_code == 200
    assert client.get("/health").status_code == 200  # never limited


@pytest.mark.parametrize("args, needle", [
    (["--host", "0.0.0.0"], "--host: listening on 0.0.0.0"),
    (["--host", "0.0.0.0", "--api-key-env", "WB_SURELY_UNSET_KEY"], "--api-key-env: environment variable"),
    (["--rate-limit", "-1"], "--rate-limit"),
])
def test_unsafe_serving_is_refused_before_loading(args, needle, capsys, tmp_path):
    code = main(["serve", str(tmp_path / "no-bundle-needed"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err


@pytest.mark.slow
def test_a_real_server_off_loopback_with_a_key_and_a_limit(bundle, monkeypatch):
    """The real CLI and uvicorn on 0.0.0.0 (probed through 127.0.0.1), key from the environment."""
    port = free_port()
    env = {"WB_SERVE_KEY": "tok-" + "7" * 20}
    import os

    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", str(bundle), "--host", "0.0.0.0",
                             "--port", str(port), "--api-key-env", "WB_SERVE_KEY", "--rate-limit", "4"],
                            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", proc, seconds=120, what="workbench serve", log=lambda: proc.stdout.read())
        assert httpx.post(f"{base}/predict", json={"text": "play jazz"}, timeout=30).status_code == 401
        auth = {"Authorization": f"Bearer {env['WB_SERVE_KEY']}"}
        codes = [httpx.post(f"{base}/predict", json={"text": "play jazz"}, headers=auth, timeout=60).status_code
                 for _ in range(5)]
        assert codes[:4] == [200] * 4 and codes[4] == 429, codes
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert env["WB_SERVE_KEY"] not in out
