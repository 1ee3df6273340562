"""`workbench gate` on a real MLflow store with the deterministic recorded LM backend: a
few-shot run (nearest-neighbour-like, ~0.9) and a zero-shot run (~0.5) on the same items,
gated in both directions through the real CLI; a spec gated against the registry's
champion on the champion's own examples; every bad input one line, exit 2, nothing written."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.comparison.test_compare import _log
from tests.conftest import SPEC, Store, run_main, write_spec
from workbench.cli import main

FAST = ["lm.backend=recorded", "lm.model=synthetic", "lm.cache=false", "dataset.train=2000", "dataset.dev=20",
        "dataset.test=120", "metric.summaries=[]"]
ZERO_SHOT = ["optimizer.name=none", "optimizer.params={}"]


def _sets(*overrides: str) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def _run(store: Store, *overrides: str) -> str:
    """A tracked run through the CLI's code in this process (the gate itself goes through real processes)."""
    result = run_main("run", str(SPEC), "--quiet", *_sets(*FAST, *store.overrides, *overrides))
    assert result.returncode == 0, result.stderr[-2000:]
    return next(x for x in result.stdout.splitlines() if x.startswith("run_id=")).split()[0].removeprefix("run_id=")


@pytest.fixture(scope="module")
def gate_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("gate") / "mlruns")
    runs = {"few_shot": _run(store), "zero_shot": _run(store, *ZERO_SHOT)}
    promoted = run_main("promote", runs["few_shot"], "--name", "gate_fast", "--tracking-uri", store.uri)
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    return store, runs


def _junit(path) -> dict[str, str]:
    """{check name: passed | failed | skipped | error} from a JUnit file."""
    cases = ET.parse(path).getroot().iter("testcase")
    status = {}
    for case in cases:
        kind = next((child.tag for child in case if child.tag in ("failure", "skipped", "error")), "passed")
        status[case.get("name")] = {"failure": "failed"}.get(kind, kind)
    return status


def test_worse_run_fails_the_gate_with_reports(gate_store, tmp_path):
    store, runs = gate_store
    junit, md = tmp_path / "gate.xml", tmp_path / "gate.md"
    result = run_main("gate", runs["zero_shot"], "--against", runs["few_shot"], "--tracking-uri", store.uri,
                     "--junit", str(junit), "--markdown", str(md))
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "gate FAILED: score" in result.stdout
    status = _junit(junit)
    assert set(status) == {"score", "failure_rate", "cost_per_example", "latency"} and status["score"] == "failed"
    root = ET.parse(junit).getroot()
    assert int(root.get("failures")) >= 1 and int(root.get("tests")) == 4
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["baseline_run"] == runs["few_shot"] and props["n"] == "120" and float(props["p_value"]) < 0.05
    text = md.read_text()
    assert "❌ worse than the baseline" in text and "McNemar" in text and "Worst changed examples" in text
    assert "retrieves 5 demos per query" in text  # the prompt diff: the baseline's demos are gone
    tags = store.client().get_run(runs["zero_shot"]).data.tags
    assert tags["workbench.gate"] == "failed" and tags["workbench.gate_against"] == runs["few_shot"]


def test_better_run_passes_and_cost_is_checked(gate_store, tmp_path):
    store, runs = gate_store
    common = ["--against", runs["zero_shot"], "--tracking-uri", store.uri, "--quiet"]
    passed = run_main("gate", runs["few_shot"], *common, "--max-cost-increase", "20", "--max-latency-increase", "50")
    assert passed.returncode == 0, passed.stdout + passed.stderr[-2000:]
    assert passed.stdout.startswith("gate=passed") and "difference=+" in passed.stdout
    # five demos per query cost several times the zero-shot prompt: the default allows +25%
    costly = run_main("gate", runs["few_shot"], *common, "--max-latency-increase", "50", "--junit",
                     str(tmp_path / "cost.xml"))
    assert costly.returncode == 1 and "failed=cost_per_example" in costly.stdout
    assert _junit(tmp_path / "cost.xml")["score"] == "passed"


def test_max_drop_fails_a_drop_the_test_calls_noise(store, capsys):
    base = _log(store, "base", [1.0] * 20)
    worse = _log(store, "worse", [1.0] * 18 + [0.0, 0.0])  # -0.10, McNemar p = 0.5: not significant
    args = ["gate", worse, "--against", base, "--tracking-uri", store.uri, "--quiet"]
    assert main(args) == 0
    assert main([*args, "--max-drop", "0.05"]) == 1
    out = capsys.readouterr().out
    assert "gate=passed" in out and "gate=failed" in out and "failed=score" in out
    # a run is never its own baseline: an experiment's best run other than the candidate is taken
    assert main(["gate", base, "--against", "cmp", "--tracking-uri", store.uri, "--quiet"]) == 0
    assert f"baseline={worse}" in capsys.readouterr().out


def test_spec_is_run_on_the_champions_examples(gate_store, tmp_path):
    store, runs = gate_store
    # the candidate spec asks for other test items (40, another seed): the gate evaluates the champion's 120
    spec = write_spec(tmp_path / "candidate.yaml", name="gate_fast", optimizer={"name": "none", "params": {}},
                      dataset={"test": 40, "seed": 7})
    junit = tmp_path / "spec.xml"
    result = run_main("gate", str(spec), "--against", "champion", "--junit", str(junit),
                     *_sets(*FAST[:3], "dataset.train=2000", "dataset.dev=20", "metric.summaries=[]", *store.overrides))
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert _junit(junit)["score"] == "failed"
    client = store.client()
    gated = [r for r in store.runs() if "-gate-" in (r["name"] or "")]
    assert len(gated) == 1 and gated[0]["status"] == "FINISHED"
    candidate, champion = client.get_run(gated[0]["run_id"]), client.get_run(runs["few_shot"])
    assert candidate.data.metrics["n_examples"] == 120
    assert candidate.data.tags["workbench.eval_fingerprint"] == champion.data.tags["workbench.eval_fingerprint"]
    assert candidate.data.tags["workbench.gate_against"] == runs["few_shot"]


@pytest.mark.parametrize("case, field", [
    ("no_champion", "--against: the registry has no models:/nobody@champion"),
    ("different_examples", "different examples"),
    ("max_drop", "--max-drop: must be within [0, 1]"),
    ("alpha", "--alpha: must be within (0, 1)"),
    ("junit_folder", "--junit: folder"),
    ("junit_unwritable", "--junit:"),
    ("unknown_run", "neither an experiment nor a run id"),
    ("spec_other_task", "nothing to pair"),
    ("run_other_task", "nothing to pair"),
    ("set_on_run", "--set applies to a spec"),
])
def test_bad_input_is_one_line_exit_2(gate_store, tmp_path, capsys, case, field):
    store, runs = gate_store
    uri = ["--tracking-uri", store.uri]
    junit = tmp_path / "out.xml"
    other = _run(store, "dataset.test=30") if case == "different_examples" else None
    rag = _log(store, "rag", [1.0] * 3, task="rag") if case == "run_other_task" else None
    before = {r["run_id"]: r["status"] for r in store.runs()}
    args = {
        "no_champion": [runs["zero_shot"], "--against", "champion", "--model", "nobody", *uri],
        "different_examples": [runs["zero_shot"], "--against", other, *uri],
        "max_drop": [runs["zero_shot"], "--against", runs["few_shot"], "--max-drop", "1.5", *uri],
        "alpha": [runs["zero_shot"], "--against", runs["few_shot"], "--alpha", "0", *uri],
        "junit_folder": [runs["zero_shot"], "--against", runs["few_shot"], "--junit", str(tmp_path / "no" / "x.xml"),
                         *uri],
        "junit_unwritable": [runs["zero_shot"], "--against", runs["few_shot"], "--junit", str(tmp_path), *uri],
        "unknown_run": ["0123456789abcdef", "--against", runs["few_shot"], *uri],
        "spec_other_task": [str(write_spec(tmp_path / "rag.yaml", task="rag")), "--against", runs["few_shot"], *uri],
        "run_other_task": [rag, "--against", runs["few_shot"], *uri],
        "set_on_run": [runs["zero_shot"], "--against", runs["few_shot"], "--set", "lm.cache=false", *uri],
    }[case]
    assert main(["gate", *args, "--junit", str(junit)] if "--junit" not in args else ["gate", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and field in err[0], err
    assert not junit.exists()
    after = {r["run_id"]: r["status"] for r in store.runs()}
    assert after == before and "RUNNING" not in after.values()


def test_a_candidate_the_budget_cut_short_cannot_pass(gate_store, tmp_path):
    """A spec whose budget stops its evaluation part-way, and a finished run tagged partial, fail
    the gate as candidate failures (exit 1, an <error> JUnit case), never a pass on fewer items."""
    store, runs = gate_store
    junit = tmp_path / "gate.xml"
    spec = write_spec(tmp_path / "cand.yaml", **{})
    result = run_main("gate", str(spec), "--against", runs["few_shot"], "--junit", str(junit),
                     *_sets(*FAST, *store.overrides, "budget.max_lm_calls=30", "budget.allow_over_estimate=true"))
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "stopped early" in result.stderr and "a gate needs all 120 examples" in result.stderr
    assert list(_junit(junit).values()) == ["error"]
    partial = _run(store, *ZERO_SHOT, "budget.max_lm_calls=40", "budget.allow_over_estimate=true")
    assert store.client().get_run(partial).data.tags["workbench.partial"] == "true"
    again = run_main("gate", partial, "--against", runs["few_shot"], "--tracking-uri", store.uri)
    assert again.returncode == 1 and "was evaluated on part of its items only" in again.stderr
