"""`workbench compare` on a real MLflow store: runs written through the workbench's own
tracking code (hand-made per-example tables, for exact expectations), two real routing
runs on the embedded LM end to end, and every bad reference as one line, exit 2."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import SPEC, Store, run_cli, run_main
from workbench.comparison.report import compare
from workbench.errors import UserError
from workbench.spec import TrackingSpec
from workbench.tracking import tracked_run


def _log(store: Store, name: str, scores: list[float], *, ids: list[str] | None = None, task: str = "routing",
         instructions: str = "Route it.", table: bool = True, experiment: str = "cmp") -> str:
    tracking = TrackingSpec(uri=store.uri, artifact_root=str(store.root / "artifacts"))
    ids = ids or [f"x{i}" for i in range(len(scores))]
    with tracked_run(tracking, kind="run", experiment=experiment, run_name=name,
                     tags={"workbench.task": task, "workbench.optimizer": name}) as run:
        run.log_metrics({"score": sum(scores) / len(scores), "score_ci_low": 0.0, "score_ci_high": 1.0,
                         "lm_calls": float(len(scores)), "seconds_per_example": 0.1 * len(name)})
        if table:
            run.log_table(pd.DataFrame({"id": ids, "text": [f"message {i}" for i in ids], "gold": ["a"] * len(ids),
                                        "predicted": ["a" if s else "b" for s in scores], "score": scores}),
                          "predictions.json")
        run.log_dict({"predict": {"signature": {"instructions": instructions, "fields": []}, "demos": []}},
                     "program.json")
        return run.run_id


@pytest.fixture
def two_runs(store):
    base = _log(store, "zero", [0, 0, 1, 1, 0, 1, 0, 1, 0, 0])
    tuned = _log(store, "tuned", [1, 1, 1, 1, 0, 1, 1, 1, 1, 0], instructions="Route the message to its domain.")
    return store, base, tuned


def test_leaderboard_pairs_changes_and_prompt_diff(two_runs):
    store, base, tuned = two_runs
    result = compare([base, tuned], tracking_uri=store.uri)
    assert list(result.leaderboard.run_id) == [tuned, base]  # best first
    [pair] = result.pairs.itertuples()
    assert pair.difference == pytest.approx(0.4) and (pair.better, pair.worse) == (4, 0)
    assert pair.test.startswith("McNemar") and pair.p_value == pytest.approx(2 * 1 / 16)
    changes = result.changes[(base, tuned)]
    assert set(changes.index) == {"x0", "x1", "x6", "x8"} and set(changes.change) == {"better"}
    diff = result.prompt_diff[(base, tuned)]
    assert "-[predict] instructions: Route it." in diff and "+[predict] instructions: Route the message" in diff


def test_cli_prints_writes_and_logs_the_comparison(two_runs, tmp_path):
    store, base, tuned = two_runs
    out = tmp_path / "report"
    result = run_main("compare", base[:8], tuned, "--tracking-uri", store.uri, "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    for text in ("leaderboard", "McNemar", "prompt diff", "Route the message"):
        assert text in result.stdout
    assert {p.name for p in out.iterdir()} >= {"report.md", "leaderboard.csv", "pairs.csv", "cost_quality.png",
                                               "breakdown.png"}
    logged = [r for r in store.runs() if r["name"].startswith("compare-")]
    assert len(logged) == 1 and logged[0]["status"] == "FINISHED"
    artifacts = {a.path for a in store.client().list_artifacts(logged[0]["run_id"])}
    assert {"report.md", "cost_quality.png"} <= artifacts
    # an experiment name expands to its finished evaluation runs, not the comparison run
    again = compare(["cmp"], tracking_uri=store.uri)
    assert set(again.leaderboard.run_id) == {base, tuned}


@pytest.mark.parametrize("case, message", [
    ("unknown", "neither an experiment nor a run id"),
    ("one_run", "at least two"),
    ("different_examples", "different examples"),
    ("different_tasks", "different tasks"),
    ("no_table", "no per-example table"),
    ("running", "still RUNNING"),
    ("empty_experiment", "no finished evaluation runs"),
])
def test_bad_references_are_one_line_exit_2(store, case, message, capsys):
    base = _log(store, "zero", [0, 1, 1])
    refs = [base]
    if case == "unknown":
        refs.append("no-such-thing")
    elif case == "different_examples":
        refs.append(_log(store, "other", [1, 1, 1], ids=["y0", "y1", "y2"]))
    elif case == "different_tasks":
        refs.append(_log(store, "rag", [1, 1, 1], task="rag"))
    elif case == "no_table":
        refs.append(_log(store, "bare", [1, 1, 1], table=False))
    elif case == "running":
        run = store.client().create_run(store.client().get_experiment_by_name("cmp").experiment_id)
        refs.append(run.info.run_id)
    elif case == "empty_experiment":
        store.client().create_experiment("empty")
        refs = ["empty"]
    with pytest.raises(UserError, match=message):
        compare(refs, tracking_uri=store.uri)
    if case in ("unknown", "different_examples"):  # through a real process; the others through the same CLI code
        result = run_main("compare", *refs, "--tracking-uri", store.uri, "--no-log")
        code, err = result.returncode, result.stderr
    else:
        from workbench.cli import main

        capsys.readouterr()
        code, err = main(["compare", *refs, "--tracking-uri", store.uri, "--no-log"]), capsys.readouterr().err
    assert code == 2 and message in err
    assert "Traceback" not in err and err.strip().count("\n") == 0


@pytest.mark.slow
def test_two_real_routing_runs_compare_end_to_end(store, tmp_path):
    sets = sum((["--set", o] for o in store.overrides + ["dataset.test=12", "dataset.dev=4"]), [])
    zero = run_cli("run", str(SPEC), *sets, "--set", "optimizer.name=none", "--set", "optimizer.params={}", "--quiet")
    tuned = run_cli("run", str(SPEC), *sets, "--quiet")
    assert zero.returncode == 0 and tuned.returncode == 0, (zero.stderr[-1500:], tuned.stderr[-1500:])
    ids = [line.split()[0].removeprefix("run_id=") for line in (zero.stdout, tuned.stdout)]
    result = run_cli("compare", *ids, "--tracking-uri", store.uri, "--out", str(tmp_path / "cmp"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "leaderboard" in result.stdout and "McNemar" in result.stdout
    assert "retrieves 5 demos per query" in result.stdout  # the prompt diff names what the optimizer changed


def test_runs_made_with_different_locks_are_flagged(two_runs, tmp_path):
    store, base, tuned = two_runs
    assert compare([base, tuned], tracking_uri=store.uri).environment == {}  # same lock, same versions
    store.client().set_tag(tuned, "workbench.lock_sha256", "f" * 64)
    store.client().set_tag(tuned, "workbench.versions", "python=3.11.7 dspy=3.4.9 mlflow=3.17.2")
    result = run_main("compare", base, tuned, "--tracking-uri", store.uri, "--out", str(tmp_path / "r"), "--no-log")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "different locks" in result.stderr and f"→ {'f' * 12}" in result.stderr and "→ 3.4.9" in result.stderr
    assert "## Software" in (tmp_path / "r" / "report.md").read_text()
