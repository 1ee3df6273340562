"""`workbench ui` in headless Chromium: the runs list, a metric chart and an artifact page
render for runs the workbench logged (screenshots in the test's temp dir)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.comparison.test_compare import _log

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                 reason="Chromium + ChromeDriver missing: apt-get install chromium chromium-driver "
                                        "(make browser)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ui(store):
    _log(store, "zero", [0, 0, 1, 1, 0, 1])
    tuned = _log(store, "tuned", [1, 1, 1, 1, 0, 1], instructions="Route the message to its domain.")
    port = _free_port()
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
                pytest.fail(f"the UI did not come up: {proc.stdout.read().decode()[-2000:] if proc.poll() else ''}")
            time.sleep(0.5)
        experiment = store.client().get_experiment_by_name("cmp").experiment_id
        yield base, experiment, tuned
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _page_shows(driver, url: str, texts: list[str], timeout: float = 45) -> str:
    driver.get(url)
    deadline = time.time() + timeout
    while True:
        body = driver.find_element("tag name", "body").text
        if all(t in body for t in texts) or time.time() > deadline:
            return body
        time.sleep(0.5)


def test_runs_metric_chart_and_artifacts_render(ui, browser, tmp_path):
    base, experiment, tuned = ui
    body = _page_shows(browser, f"{base}/#/experiments/{experiment}/runs", ["zero", "tuned"])
    browser.save_screenshot(str(tmp_path / "runs.png"))
    assert "zero" in body and "tuned" in body, body[:1500]
    body = _page_shows(browser, f"{base}/#/experiments/{experiment}/runs/{tuned}/model-metrics", ["score", "0.83"])
    browser.save_screenshot(str(tmp_path / "metrics.png"))
    assert "score" in body and "0.83" in body, body[:1500]  # the chart of the run's score (5 of 6)
    body = _page_shows(browser, f"{base}/#/experiments/{experiment}/runs/{tuned}/artifacts", ["predictions.json"])
    browser.save_screenshot(str(tmp_path / "artifacts.png"))
    assert "predictions.json" in body and "program.json" in body, body[:1500]
    assert all((tmp_path / name).stat().st_size > 10_000 for name in ("runs.png", "metrics.png", "artifacts.png"))
