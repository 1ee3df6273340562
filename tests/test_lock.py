"""The lock file: it matches pyproject.toml (and a test fails when it does not), every run is
tagged with its digest and the versions that matter, and compare says when two runs differ."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, Store
from workbench import environment
from workbench.environment import LOCK_TAG, VERSIONS_TAG, difference, stale_reasons


def test_the_committed_lock_matches_pyproject():
    assert stale_reasons(ROOT / "pyproject.toml", ROOT / "requirements.lock") == []


def test_every_pin_is_exact_and_hashed_and_torch_is_the_cpu_build():
    text = (ROOT / "requirements.lock").read_text()
    pins = environment.locked_versions(ROOT / "requirements.lock")
    assert len(pins) > 100 and "llama-cpp-python" not in pins  # built from source by the Makefile
    assert pins["torch"].endswith("+cpu") and not any(name.startswith("nvidia-") for name in pins)
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 3)[3])
    assert all("--hash=sha256:" in block for block in blocks if "==" in block.split("\n")[0])


@pytest.fixture
def project(tmp_path):
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("change, expected", [
    (('"pyyaml>=6",', '"pyyaml>=6",\n    "rapidfuzz>=3",'), "rapidfuzz is required by pyproject.toml but not pinned"),
    (('"mlflow>=3.17,<4"', '"mlflow>=4.1"'), "pins mlflow==3.17"),
    (('"pytest>=8",', '"pytest>=8", "hypothesis>=6",'), "hypothesis is required"),
], ids=["added", "bound_moved", "dev_extra"])
def test_a_stale_lock_is_reported_with_what_changed(project, change, expected):
    _edit(project / "pyproject.toml", *change)
    reasons = stale_reasons(project / "pyproject.toml", project / "requirements.lock")
    assert any("dependency sections of pyproject.toml changed" in r for r in reasons)
    assert any(expected in r for r in reasons), reasons


def test_a_lock_without_its_digest_line_or_missing_is_stale(project):
    lock = project / "requirements.lock"
    lock.write_text(lock.read_text().split("\n", 1)[1])  # a hand-made or foreign lock
    assert stale_reasons(project / "pyproject.toml", lock) == [
        "the dependency sections of pyproject.toml changed since requirements.lock was made"]
    lock.unlink()
    assert "missing" in stale_reasons(project / "pyproject.toml", lock)[0]


def test_the_check_command_exits_1_on_a_stale_lock(project):
    _edit(project / "pyproject.toml", '"pyyaml>=6",', '"pyyaml>=6",\n    "rapidfuzz>=3",')
    result = subprocess.run([sys.executable, "-m", "workbench.environment", "check"], capture_output=True, text=True,
                            env={"WORKBENCH_PROJECT": str(project), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1 and "stale lock: rapidfuzz" in result.stderr and "make lock" in result.stderr


def test_runs_carry_the_lock_digest_and_versions(store: Store):
    from workbench.spec import TrackingSpec
    from workbench.tracking import tracked_run

    with tracked_run(TrackingSpec(uri=store.uri), kind="run", experiment="env", run_name="r") as run:
        run_id = run.run_id
    tags = store.client().get_run(run_id).data.tags
    import hashlib

    assert tags[LOCK_TAG] == hashlib.sha256((ROOT / "requirements.lock").read_bytes()).hexdigest()
    assert re.search(r"python=3\.\d+\.\d+ dspy=3\.4\.\d+ mlflow=3\.\d+", tags[VERSIONS_TAG])


def test_difference_names_the_lock_and_the_versions_that_moved():
    a = {LOCK_TAG: "a" * 64, VERSIONS_TAG: "python=3.11.7 dspy=3.4.1 mlflow=3.17.2"}
    b = {LOCK_TAG: "b" * 64, VERSIONS_TAG: "python=3.11.7 dspy=3.4.2 mlflow=3.17.2"}
    assert difference(a, b) == f"different locks: {'a' * 12} → {'b' * 12} (dspy 3.4.1 → 3.4.2)"
    assert difference(a, dict(a)) == ""
    assert difference(a, {**b, VERSIONS_TAG: a[VERSIONS_TAG]}).endswith("(same Python, DSPy and MLflow versions)")
    assert "same lock, different versions installed: dspy 3.4.1 → 3.4.2" == difference(a, {**b, LOCK_TAG: a[LOCK_TAG]})
    assert difference({}, b) == ""  # a run from before runs were tagged


def test_make_lets_python_cache_bytecode_whatever_the_shell_says():
    """With PYTHONDONTWRITEBYTECODE set, no process wrote .pyc files and every CLI call and test
    subprocess recompiled DSPy, MLflow, sklearn... (~10 s each); make's targets unset it."""
    import os

    done = subprocess.run(["make", "-s", "--no-print-directory", "--eval",
                           "show-env: ; @printenv PYTHONDONTWRITEBYTECODE || echo unset", "show-env"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.stdout.strip() == "unset", done.stdout + done.stderr
