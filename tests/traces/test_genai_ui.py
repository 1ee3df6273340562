"""MLflow's GenAI UI in headless Chromium after a real run (embedded LM, 20 items, real CLI):
the Traces page lists the run's 20 traces, one trace shows the program's spans and its
assessments, the evaluation run's per-example table, the Datasets, Prompts and Agent
versions pages. A screenshot of each is saved under the test's temp dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.comparison.test_ui import CHROMEDRIVER, CHROMIUM, _page_shows, browser  # noqa: F401  (fixture)
from tests.conftest import ROOT, free_port, run_cli

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                 reason="Chromium + ChromeDriver missing: apt-get install chromium chromium-driver "
                                        "(make browser)")]
N = 20


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    from tests.conftest import Store

    store = Store(tmp_path_factory.mktemp("genai-ui") / "mlruns", genai=True)
    sets = [*store.overrides, f"dataset.test={N}", "tracking.experiment=genai-ui"]
    result = run_cli("run", str(ROOT / "experiments" / "routing_clinc150.yaml"), "--quiet",
                     *sum((["--set", s] for s in sets), []))
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = result.stdout.split("run_id=")[1].split()[0]
    return store, run_id


@pytest.fixture
def ui(ran):
    store, run_id = ran
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "ui", "--port", str(port), "--tracking-uri",
                             store.uri], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{base}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                pytest.fail("the UI did not come up")
            time.sleep(0.5)
        yield base, store, run_id
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _source_shows(driver, texts: list[str], timeout: float = 30) -> str:
    deadline = time.time() + timeout
    while True:
        source = driver.page_source
        if all(t in source for t in texts) or time.time() > deadline:
            return source
        time.sleep(0.5)


def test_traces_assessments_datasets_prompts_and_models_render(ui, browser, tmp_path):  # noqa: F811
    import mlflow

    base, store, run_id = ui
    client = store.client()
    run = client.get_run(run_id)
    experiment = run.info.experiment_id
    mlflow.set_tracking_uri(store.uri)
    traces = mlflow.search_traces(locations=[experiment], run_id=run_id, return_type="list")
    assert len(traces) == N
    first = sorted(traces, key=lambda t: t.info.request_time)[0]
    text = first.data.spans[0].inputs["text"]
    home = f"{base}/#/experiments/{experiment}"
    shots = {}

    body = _page_shows(browser, f"{home}/traces", [f"{N} of {N}", text])
    shots["traces"] = browser.save_screenshot(str(tmp_path / "traces.png"))
    assert f"{N} of {N}" in body and text in body and "accuracy" in body, body[:2000]

    browser.get(f"{home}/traces?selectedEvaluationId={first.info.trace_id}")
    source = _source_shows(browser, ["candidate labels", "retrieve demos", "CountingLM.__call__", "metric"])
    assert all(t in source for t in ("candidate labels", "retrieve demos", "CountingLM.__call__")), source[:2000]
    assess = [b for b in browser.find_elements("tag name", "button") if b.text.startswith("Assess")]
    assert assess, "the trace has no Assess button"
    assess[0].click()
    body = _wait_text(browser, ["Feedback (1)", "Expectations (1)", "expected_response"])
    shots["trace"] = browser.save_screenshot(str(tmp_path / "trace.png"))
    assert "Feedback (1)" in body and "Expectations (1)" in body, body[:2000]

    body = _page_shows(browser, f"{home}/runs/{run_id}/traces", [f"{N} of {N}", "Expected output", "accuracy"])
    shots["evaluation_run"] = browser.save_screenshot(str(tmp_path / "evaluation_run.png"))
    assert f"{N} of {N}" in body and "Expected output" in body and f"{run.data.metrics['score']:g}" in body, body[:2000]

    dataset = f"clinc150_domains.test.{N}-{run.data.tags['workbench.eval_fingerprint'][:8]}"
    body = _page_shows(browser, f"{home}/datasets", [dataset])
    shots["datasets"] = browser.save_screenshot(str(tmp_path / "datasets.png"))
    assert dataset in body, body[:2000]

    body = _page_shows(browser, f"{base}/#/prompts", ["routing_clinc150.predict"])
    shots["prompts"] = browser.save_screenshot(str(tmp_path / "prompts.png"))
    assert "routing_clinc150.predict" in body and run_id in body, body[:2000]

    body = _page_shows(browser, f"{home}/models", ["routing_clinc150", "Ready"])
    shots["models"] = browser.save_screenshot(str(tmp_path / "models.png"))
    assert "routing_clinc150" in body and "Ready" in body, body[:2000]

    assert all(shots.values())
    sizes = {name: (tmp_path / f"{name}.png").stat().st_size for name in shots}
    assert all(size > 10_000 for size in sizes.values()), sizes
    print(f"screenshots in {tmp_path}: {sizes}")


def _wait_text(driver, texts: list[str], timeout: float = 15) -> str:
    deadline = time.time() + timeout
    while True:
        body = driver.find_element("tag name", "body").text
        if all(t in body for t in texts) or time.time() > deadline:
            return body
        time.sleep(0.5)
