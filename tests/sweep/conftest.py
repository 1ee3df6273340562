"""Sweep specs small enough for the suite: 400 training messages, 8 dev items per trial,
two evaluation increments, and short heartbeats so a killed worker's trial is re-queued fast."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import SPEC, Store

os.environ.setdefault("WORKBENCH_SWEEP_HEARTBEAT_S", "1")
os.environ.setdefault("WORKBENCH_SWEEP_GRACE_S", "8")
PG = "postgresql://postgres@127.0.0.1:5432"

SEARCH = {"space": {"optimizer.params.k": {"type": "int", "low": 1, "high": 6},
                    "program.params.candidates": {"type": "categorical", "choices": [0, 2, 3]}},
          "objectives": [{"metric": "score", "direction": "maximize"}],
          "split": "dev", "steps": 2, "sampler": "random"}


def sweep_spec(path: Path, store: Store, search: dict | None = None, dev: int = 8, embedded: bool = False) -> Path:
    """A small sweep spec; on the recorded LM unless `embedded` (trials long enough to be killed mid-way)."""
    data = yaml.safe_load(SPEC.read_text())
    if not embedded:
        data["lm"].update({"backend": "recorded", "model": "synthetic"})
    data["dataset"].update({"train": 400, "dev": dev, "test": 8})
    data["metric"]["summaries"] = []
    data["tracking"] = {"uri": store.uri, "artifact_root": str(store.root / "artifacts"), "experiment": "sweep-test",
                        "traces": "none", "genai": False}  # tests/traces/ covers those
    data["search"] = search or SEARCH
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def pg_database():
    """A fresh PostgreSQL database on the local server, dropped afterwards; yields its URL."""
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"wb_test_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(f"{PG}/postgres", connect_timeout=5)
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield f"{PG}/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()
