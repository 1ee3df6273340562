"""Shared fixtures: the real embedded LM, a temp MLflow store, CLI runners, a local server.

The LM response cache is pointed at a fresh folder for the whole session, so tests reach
the real model instead of answers cached by earlier runs on this machine (converted models are
shared through it too, and the folder is removed at the end). Two tiers:
`make test` runs what is not marked `slow` (logic, mostly on the deterministic `recorded`
backend: `FAST_LM`); `make test-all` adds the end-to-end tests on the embedded LM.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "experiments" / "routing_clinc150.yaml"
# The deterministic LM of the fast tier (workbench/lm/recorded.py), as spec overrides.
FAST_LM = ["lm.backend=recorded", "lm.model=synthetic"]
if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("WORKBENCH_TEST_SESSION_CACHE"):
    # a pytest-xdist worker shares the controller's folder (inherited through the environment): the base
    # model's float32 copy and the built indexes are made once per session, not once per worker, and two
    # processes filling one cache is what the cache is built for; the controller removes it at its exit
    _SESSION_CACHE = os.environ["WORKBENCH_TEST_SESSION_CACHE"]
else:
    _SESSION_CACHE = tempfile.mkdtemp(prefix="workbench-test-cache-")
    os.environ["WORKBENCH_TEST_SESSION_CACHE"] = _SESSION_CACHE
    atexit.register(shutil.rmtree, _SESSION_CACHE, True)  # half a gigabyte once a base model is saved
os.environ["WORKBENCH_CACHE"] = _SESSION_CACHE
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")  # names this process's own files in the shared folder
# models converted or unpacked once (fine-tuning's float32 base, the dense encoder): shared by the
# session's tests, also those that point WORKBENCH_CACHE at a folder of their own
os.environ["WORKBENCH_MODELS"] = str(Path(_SESSION_CACHE) / "models")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


_TEMPLATE: list[Path] = []


def _migrated_store() -> Path:
    """An empty MLflow SQLite store with every migration applied, made once per session:
    a new store copies it instead of running MLflow's migrations again (~2 s each)."""
    if not _TEMPLATE:
        import logging

        from mlflow.tracking import MlflowClient

        path = Path(_SESSION_CACHE) / f"template-mlflow-{_WORKER}.db"
        quiet = logging.getLogger("mlflow")
        level, quiet.level = quiet.level, logging.WARNING  # its migration notes are not the test's output
        try:
            MlflowClient(f"sqlite:///{path}").search_experiments()
        finally:
            quiet.setLevel(level)
        _TEMPLATE.append(path)
    return _TEMPLATE[0]


def labeled_run(spec: Path, overrides: list[str], k: int, predictor: str, err_of) -> tuple:
    """A LabeledFewShot run with k demos that must not warn about demos its prompt cannot show;
    returns the outcome and the demos' questions (`err_of`: capsys.readouterr)."""
    from workbench.console import Reporter
    from workbench.runner import run
    from workbench.spec import load_spec

    out = run(load_spec(spec, [*overrides, "optimizer.name=LabeledFewShot", f'optimizer.params={{"k": {k}}}']),
              reporter=Reporter(quiet=False))
    assert "lack its fields" not in err_of().err
    questions = [d["question"] for d in getattr(out.program, predictor).demos]
    assert len(questions) == k
    return out, questions


def last_sent_to_lm() -> str:
    """The messages of the last call any DSPy LM made in this process."""
    from dspy.clients import base_lm

    return "\n".join(str(m["content"]) for m in base_lm.GLOBAL_HISTORY[-1]["messages"])


# A run's MLflow GenAI extras (a trace-writer process, the evaluation dataset, prompt versions, the
# logged model) cost seconds per run and are the subject of tests/traces/ only: other tests' stores
# leave them out (`Store(..., genai=True)` keeps the defaults).
NO_GENAI = ["tracking.traces=none", "tracking.genai=false"]


class Store:
    """A temporary MLflow store; `overrides` point a spec at it."""

    def __init__(self, root: Path, genai: bool = False):
        self.root = root
        self.db = root / "mlflow.db"
        if not self.db.exists():
            root.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_migrated_store(), self.db)
        self.uri = f"sqlite:///{self.db}"
        self.overrides = [f"tracking.uri={self.uri}", f"tracking.artifact_root={root / 'artifacts'}",
                          *([] if genai else NO_GENAI)]

    def runs(self) -> list[dict]:
        """Rows of the runs table (no MLflow import needed): run_uuid, status, name."""
        if not self.db.exists():
            return []
        with sqlite3.connect(self.db) as conn:
            try:
                rows = conn.execute("select run_uuid, status, name from runs").fetchall()
            except sqlite3.OperationalError:
                return []
        return [{"run_id": r[0], "status": r[1], "name": r[2]} for r in rows]

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.uri, registry_uri=self.uri)  # never the registry another test made the default

    def predictions(self, run_id: str) -> list[dict]:
        """A run's per-example table (its predictions.json artifact) as one dict per row."""
        local = self.client().download_artifacts(run_id, "predictions.json", tempfile.mkdtemp(prefix="predictions-"))
        table = json.loads(Path(local).read_text(encoding="utf-8"))
        return [dict(zip(table["columns"], row)) for row in table["data"]]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "mlruns")


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """`workbench ARGS` as a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_main(*args: str) -> subprocess.CompletedProcess:
    """`workbench ARGS` in this process (the CLI's own code, without a new interpreter's
    seconds of imports), returned like `run_cli`'s result; usable from any fixture scope."""
    import contextlib
    import io

    from workbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's refusals exit, as the interpreter would
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(["workbench", *args], code, out.getvalue(), err.getvalue())


def write_spec(path: Path, **changes) -> Path:
    """The default spec with top-level sections replaced or merged (dicts merge one level)."""
    data = yaml.safe_load(SPEC.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def embedded_backend():
    from workbench.lm.embedded import EmbeddedBackend

    return EmbeddedBackend()


def wait_for_http(url: str, proc: subprocess.Popen, *, seconds: float, what: str, log=lambda: "") -> None:
    """Poll `url` until it answers 200; fail with the process's log if it exits or times out."""
    import httpx

    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited: {log()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.4)
    proc.kill()
    pytest.fail(f"{what} did not start within {seconds:.0f} s: {log()[-2000:]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(folder: Path):
    """A real `mlflow server` on 127.0.0.1 with its own SQLite store (folder/server.db) and
    artifact folder (folder/served); yields its URL, stops it after."""
    port = free_port()
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{folder / 'server.db'}", "--artifacts-destination", str(folder / "served"),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", proc, seconds=90, what="mlflow server", log=lambda: (folder / "server.log").read_text())
        yield url
    finally:
        stop(proc, log)


@pytest.fixture(scope="session")
def llama_server():
    """A real OpenAI-compatible server (`python -m llama_cpp.server`) on loopback."""
    from workbench.lm.embedded import resolve_model_path

    port = free_port()
    model = resolve_model_path("smollm2-135m-instruct")
    log = open(Path(_SESSION_CACHE) / f"llama_server-{_WORKER}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "4096", "--model_alias", "smollm2"],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    wait_for_http(f"{base}/models", proc, seconds=120, what="llama_cpp.server", log=lambda: Path(log.name).read_text())
    yield base
    stop(proc, log)


def stop(proc: subprocess.Popen, log=None) -> None:
    """End a server started by a fixture: SIGTERM, SIGKILL after 20 s; close its log."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    if log is not None:
        log.close()


@pytest.fixture
def mock_endpoint():
    """`mock_endpoint(**script)`: a started MockEndpoint on 127.0.0.1 (stopped after the test)."""
    from workbench.lm.mock_server import MockEndpoint

    started = []

    def start(**script):
        server = MockEndpoint(**script).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def endpoint_spec(path: Path, server, *, test: int = 20, lm: dict | None = None, **changes) -> Path:
    """The default routing spec pointed at a mock endpoint (small, no cache, no demos pool limit)."""
    return write_spec(path, lm={"backend": "openai", "model": server.model, "api_base": server.base_url,
                                "cache": False, "max_tokens": 32, "timeout_s": 2.0, **(lm or {})},
                      dataset={"test": test, "dev": 20, "train": 2000}, **changes)
