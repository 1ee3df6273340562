"""Bad input is reported before DSPy, MLflow, torch or llama.cpp is imported.

Each case runs the CLI in a fresh interpreter and asserts which heavy modules it imported,
not how long it took (timings live in benchmarks/endpoints.py, "Endpoint-errors").
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, write_spec
from tests.test_bad_input import FIELD_CASES

HEAVY = ("dspy", "mlflow", "torch", "llama_cpp", "litellm")
_PROBE = textwrap.dedent("""
    import json, sys
    from workbench.cli import main
    code = main(sys.argv[1:])
    print(json.dumps({"code": code, "imported": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,))


def _probe(*args: str, env_cache) -> dict:
    import os

    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "WORKBENCH_CACHE": str(env_cache)}, timeout=300)
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "err": proc.stderr}


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A cache folder whose registry index has been written (as `make setup` does)."""
    cache = tmp_path_factory.mktemp("cache")
    out = _probe("list", env_cache=cache)  # what `make setup` runs
    assert out["code"] == 0 and (cache / "registry-index.json").is_file()
    return cache


# this one needs the data (more candidates than the dataset has labels); the router's other parameters and
# combinations, and every program parameter's type, are checked with the spec
SPEC_CASES = sorted(set(FIELD_CASES) - {"bad_candidates"})


@pytest.mark.parametrize("case", SPEC_CASES)
def test_bad_specs_answer_without_heavy_imports(case, tmp_path, warm_cache):
    changes, field, needle = FIELD_CASES[case]
    path = write_spec(tmp_path / "spec.yaml", **changes)
    out = _probe("run", str(path), "--set", f"tracking.uri=sqlite:///{tmp_path}/m.db", env_cache=warm_cache)
    assert out["code"] == 2 and field in out["err"] and needle in out["err"], out["err"]
    assert out["imported"] == [], f"{case} imported {out['imported']}"


def test_help_imports_nothing_heavy():
    proc = subprocess.run([sys.executable, "-c", "import sys\nfrom workbench.cli import build_parser\n"
                           "build_parser().parse_args(['run', 'x.yaml'])\n"
                           "print([m for m in %r if m in sys.modules])" % (HEAVY,)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_a_cold_index_is_built_once_and_then_used(tmp_path):
    cold = tmp_path / "cold-cache"
    path = write_spec(tmp_path / "spec.yaml", program={"name": "rooter"})
    first = _probe("run", str(path), env_cache=cold)
    assert first["code"] == 2 and "did you mean 'router'" in first["err"] and "dspy" in first["imported"]
    assert (cold / "registry-index.json").is_file()
    second = _probe("run", str(path), env_cache=cold)
    assert second["code"] == 2 and second["err"] == first["err"] and second["imported"] == []


def test_the_index_goes_stale_when_a_source_changes(tmp_path, monkeypatch):
    from workbench import registry_index

    package = tmp_path / "wb_probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "entries.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = registry_index.source_key(["wb_probe_pkg"])
    assert registry_index.source_key(["wb_probe_pkg"]) == before
    (package / "entries.py").write_text("X = 2  # a new parameter, say\n")
    assert registry_index.source_key(["wb_probe_pkg"]) != before
    (package / "more.py").write_text("")
    changed = registry_index.source_key(["wb_probe_pkg"])
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "c"))
    registry_index.write(changed, {"program": {"p": {"params": [], "any": False, "check": None}}})
    assert registry_index.read(changed) is not None and registry_index.read(before) is None


def test_data_errors_come_before_dspy(tmp_path, warm_cache):
    path = write_spec(tmp_path / "spec.yaml", dataset={"test": 999999})
    out = _probe("run", str(path), env_cache=warm_cache)
    assert out["code"] == 2 and "has 4500" in out["err"]
    assert out["imported"] == [], out["imported"]
