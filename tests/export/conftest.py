"""Two routing runs in one temp MLflow store, shared by the export, serve and registry tests:
`good` (5 retrieved demos + top-2 candidates) and `zero_shot` (no demos, all labels), on the
deterministic recorded LM (the embedded LM's export, serve and registry path is
tests/export/test_export_e2e.py, in the slow tier)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FAST_LM, SPEC, Store, run_main

SMALL = ["dataset.train=400", "dataset.dev=20", "dataset.test=24"]


def routing_run(store: Store, *overrides: str) -> str:
    result = run_main("run", str(SPEC), "--quiet", *[a for o in [*SMALL, *store.overrides, *overrides]
                                                     for a in ("--set", o)])
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("run_id="))
    return line.split()[0].removeprefix("run_id=")


@pytest.fixture(scope="session")
def routing_store(tmp_path_factory) -> tuple[Store, dict[str, str]]:
    store = Store(tmp_path_factory.mktemp("export-store") / "mlruns")
    runs = {"good": routing_run(store, *FAST_LM),
            "zero_shot": routing_run(store, *FAST_LM, "optimizer.name=none", "optimizer.params={}",
                                      "program.params.candidates=0")}
    return store, runs


@pytest.fixture(scope="session")
def bundle(routing_store, tmp_path_factory) -> Path:
    store, runs = routing_store
    out = tmp_path_factory.mktemp("bundles") / "good"
    result = run_main("export", runs["good"], "--out", str(out), "--tracking-uri", store.uri)
    assert result.returncode == 0, result.stderr
    return out
