"""The gate end to end on the real embedded LM, real MLflow store and registry, real CLI:
retrieval_demos promoted as champion; a zero-shot spec (all ten labels, no demos) gated
against it fails (exit 1), and the champion's run gated against the zero-shot run passes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.conftest import SPEC, Store, run_cli, write_spec

pytestmark = pytest.mark.slow
SMALL = ["dataset.train=2000", "dataset.dev=20", "dataset.test=24", "metric.summaries=[]"]


def _sets(*overrides: str) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def test_gate_both_directions_on_the_embedded_lm(tmp_path):
    store = Store(tmp_path / "mlruns")
    good = run_cli("run", str(SPEC), "--quiet", *_sets(*SMALL, *store.overrides))
    assert good.returncode == 0, good.stderr[-2000:]
    good_id = good.stdout.split("run_id=")[1].split()[0]
    promoted = run_cli("promote", good_id, "--name", "routing_gate", "--tracking-uri", store.uri)
    assert promoted.returncode == 0 and "as champion" in promoted.stdout, promoted.stderr[-2000:]

    zero_shot = write_spec(tmp_path / "zero_shot.yaml", name="routing_gate", optimizer={"name": "none", "params": {}},
                           program={"name": "router", "params": {"candidates": 10}})
    junit, md = tmp_path / "gate.xml", tmp_path / "gate.md"
    worse = run_cli("gate", str(zero_shot), "--against", "champion", "--junit", str(junit), "--markdown", str(md),
                    *_sets(*SMALL, *store.overrides))
    assert worse.returncode == 1, worse.stdout[-3000:] + worse.stderr[-2000:]
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert cases["score"].find("failure") is not None
    assert "❌ worse than the baseline" in md.read_text()
    zero_id = next(r["run_id"] for r in store.runs() if "-gate-" in (r["name"] or ""))

    better = run_cli("gate", good_id, "--against", zero_id, "--tracking-uri", store.uri, "--quiet",
                     "--max-cost-increase", "10", "--max-latency-increase", "10")
    assert better.returncode == 0, better.stdout + better.stderr[-2000:]
    assert better.stdout.startswith("gate=passed")
    assert all(r["status"] == "FINISHED" for r in store.runs())
