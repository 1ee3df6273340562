"""The benchmark scripts' report code: what RESULTS.md says is computed from the saved rows the
way its prose claims (pairing by item id, the ranker-copy figures of a narrowed router, goals,
stale and missing rows), on synthetic rows so no LM runs."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest

from benchmarks import finetune_report as ft
from benchmarks import optimizers as opt
from tests.conftest import ROOT


def _row(key: str, scores: list[float], *, ids: list[str] | None = None, **extra) -> dict:
    ids = ids or [f"q{i}" for i in range(len(scores))]
    return {"task": "clinc", "key": key, "params": {}, "extra": [], "n": len(scores), "ids": ids, "scores": scores,
            "score": sum(scores) / len(scores), "ci": [0.0, 1.0], "compile_lm_calls": 0, "compile_minutes": 0.0,
            "eval_seconds_per_item": 0.1, "commit": "HEAD", "run_id": f"run-{key}", "instructions": "predict: x",
            "measured": "2026-12-05 10:00", "dev_score": None, **extra}


def test_paired_matches_items_by_id_not_position():
    base = _row("zero-shot", [0.0] * 10 + [1.0] * 30)  # q0..q9 wrong
    by_id = {f"q{i}": 1.0 if i < 20 else 0.0 for i in range(40)}  # q0..q19 right
    order = list(reversed(base["ids"]))
    mine = _row("x", [by_id[i] for i in order], ids=order)
    # by id: 10 items better, 20 worse (exact McNemar p = 0.0987); zipped by position it would be
    # 0 better, 10 worse (p = 0.00195). The mean difference is the same either way.
    assert opt.paired(mine, base).startswith("-0.250 [")
    assert opt.paired(mine, base).endswith("p=0.0987")
    assert opt.paired(base, base) == "" and opt.paired(mine, None) == ""
    assert opt.paired(_row("y", [1.0] * 29), base) == "n/a"  # under 30 shared items: no test


def test_narrowing_figures_of_a_router_that_narrowed():
    table = pd.DataFrame({
        "candidates": [["a", "b"], ["b", "a"], ["c", "b"], ["a", "c"]],
        "gold": ["a", "a", "a", "c"],
        "predicted": ["a", "a", "c", "a"],
    })
    out = ft.narrowing(table)
    assert out["ranker_scores"] == [1.0, 0.0, 0.0, 0.0]
    assert out["first_pick_share"] == 0.75  # the LM departed from the first label once
    assert out["gold_in_candidates"] == 0.75  # "a" was not among ["c", "b"]
    assert ft.narrowing(table.drop(columns="candidates")) == {}
    assert ft.narrowing(table.assign(candidates=[[]] * 4)) == {}  # not narrowed: all labels allowed


def test_finetune_report_names_goals_missing_rows_and_the_ranker_pairing():
    ids = [f"q{i}" for i in range(40)]
    row = {"run_id": "abcdef123456", "commit": "HEAD", "score": 0.975, "ci": [0.95, 0.99], "n": 40,
           "logreg": 0.9, "paired_vs_logreg": [0.075, 0.0, 0.15, 0.04], "train_minutes": 12.0, "train_steps": 100,
           "train_planned_steps": 100, "train_pairs": 800, "train_skipped": 3, "eval_seconds_per_item": 0.2,
           "speed": [0.3, 0.25], "speed_n": 20, "ids": ids, "scores": [1.0] * 39 + [0.0],
           "ranker_scores": [1.0] * 30 + [0.0] * 10, "first_pick_share": 0.8, "gold_in_candidates": 0.99}
    text = ft.report({"clinc-domains": row})
    line = next(x for x in text.splitlines() if x.startswith("| CLINC150 domains, 3,200 training messages (abcdef12"))
    assert "≥ 0.97: met" in line and "0.300 / 0.250 = 1.20 (n=20)" in line
    assert "12.0 (100/100 steps, 800 pairs, 3 without)" in line
    assert "| BANKING77 | not measured | tfidf_logreg |" in text
    ranker = next(x for x in text.splitlines() if "the ranker's first label, no LM (0.750)" in x)
    assert "took it on 80.0%" in ranker and "+0.225 [" in ranker  # 0.975 - 0.750 on the same 40 items
    # the combination row pairs against the part measured alone; absent, it says so
    assert ft._paired_with({"scores": [1.0]}, None) == "not measured"


def test_a_cross_fitted_row_pools_its_folds_items_and_sums_their_training():
    def fold(i: int, scores: list[float], baseline: list[float]) -> dict:
        ids = [f"f{i}-{n}" for n in range(len(scores))]
        return {"run_id": f"run{i}abcdefgh", "commit": "HEAD", "n": len(scores), "ids": ids, "scores": scores,
                "baseline_scores": baseline, "baseline": "rules_ast", "train_minutes": 10.0, "train_steps": 50,
                "train_planned_steps": 50, "train_pairs": 300, "train_skipped": 2, "eval_seconds_per_item": 0.5 * i,
                "speed": [3.0, 1.0], "speed_n": 10, "score": sum(scores) / len(scores), "ci": [0.0, 1.0],
                "logreg": sum(baseline) / len(baseline), "paired_vs_logreg": [0.1, 0.0, 0.2, 0.05]}

    one, two = fold(1, [1.0] * 30 + [0.0] * 10, [1.0] * 10 + [0.0] * 30), fold(2, [1.0] * 20, [0.0] * 20)
    row = ft.cross_fitted([one, two])
    assert row["n"] == 60 and row["ids"] == one["ids"] + two["ids"] and row["score"] == pytest.approx(50 / 60)
    assert row["logreg"] == pytest.approx(10 / 60) and row["paired_vs_logreg"][0] == pytest.approx(40 / 60)
    assert row["train_minutes"] == 20.0 and row["train_pairs"] == 600
    assert row["eval_seconds_per_item"] == pytest.approx((0.5 * 40 + 1.0 * 20) / 60)
    old = {k: v for k, v in two.items() if k != "baseline_scores"}  # a row measured before they were kept
    assert ft.cross_fitted([one, None]) is None and ft.cross_fitted([one, old]) is None
    text = ft.report({"bfcl-simple-fold1of2": one, "bfcl-simple-fold2of2": two})
    line = next(x for x in text.splitlines() if x.startswith("| BFCL simple_python (AST), 2-fold cross-fitted"))
    assert "(run1abcd+run2abcd, HEAD)" in line and "0.833 [" in line and "n=60" in line
    assert "20.0 (100/100 steps, 600 pairs, 4 without)" in line and "≥ 0.6: met" in line
    assert "| BFCL simple_python (AST), 2-fold cross-fitted" in ft.report({"bfcl-simple-fold1of2": one})  # listed
    assert "not measured" in next(x for x in ft.report({}).splitlines() if "2-fold cross-fitted" in x)


def test_the_combination_pairs_with_the_adapter_alone_and_the_default_specs_demos(monkeypatch):
    ids = [f"test-{i}" for i in range(40)]
    alone = {"run_id": "aaaaaaaa1", "commit": "HEAD", "score": 0.5, "ci": [0.3, 0.7], "n": 40, "logreg": 0.9,
             "paired_vs_logreg": [0.0, 0.0, 0.0, 1.0], "train_minutes": 1.0, "train_steps": 1, "train_pairs": 8,
             "eval_seconds_per_item": 0.2, "ids": ids, "scores": [1.0] * 20 + [0.0] * 20}
    both = {**alone, "run_id": "bbbbbbbb1", "scores": [1.0] * 30 + [0.0] * 10, "score": 0.75}
    # the optimizers table scored the same items in another order and only 35 of them
    shipped = _row("retrieval_demos", [1.0] * 35, ids=list(reversed(ids))[:35])
    monkeypatch.setattr(opt, "load_rows", lambda: {"clinc/retrieval_demos": shipped})
    lines = ft.report({"clinc-domains": alone, "clinc-domains+retrieval_demos": both}).splitlines()
    vs_alone = next(x for x in lines if x.startswith("| CLINC150 domains, finetune → retrieval_demos | clinc-domains"))
    assert "+0.250 [" in vs_alone  # 30 right against 20 on the same 40 items
    vs_shipped = next(x for x in lines if "(clinc/retrieval_demos of the optimizers table)" in x)
    # on the 35 shared items (test-5..test-39): the combination right on test-5..29 (25), the default spec on all 35
    assert "-0.286 [" in vs_shipped and "top-2 candidates" in vs_shipped
    assert vs_shipped.endswith("(n=35: only this row right on 0, only the other on 10) |")
    assert "(n=40: only this row right on 10, only the other on 0)" in vs_alone


def test_optimizer_section_lists_missing_rows_shared_cpu_and_pairs(monkeypatch):
    monkeypatch.setattr(opt, "leaked_ids", lambda task: set())
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode:
        pytest.skip("not a git checkout")
    zero = _row("zero-shot", [0.0] * 10 + [1.0] * 30, commit=head.stdout.strip())
    gepa = _row("GEPA", [1.0] * 40, commit=head.stdout.strip(), dev_score=0.9, shared_cpu=True)
    text = opt.section("clinc", {"clinc/zero-shot": zero, "clinc/GEPA": gepa})
    gepa_line = next(x for x in text.splitlines() if x.startswith("| GEPA "))
    assert "| 0.900 |" in gepa_line and "0.10†" in gepa_line and "+0.250 [" in gepa_line
    assert "† The CPU was shared" in text and "§" not in text
    assert "Not measured yet: retrieval_demos, MIPROv2," in text


def test_stale_marks_rows_older_than_the_fix_that_changed_them():
    task, fixed, keys, _ = opt.STALE[0]
    known = subprocess.run(["git", "cat-file", "-e", f"{fixed}^{{commit}}"], cwd=ROOT, capture_output=True)
    if known.returncode:
        pytest.skip("history before the fix is not in this checkout")
    key = sorted(keys)[0]
    assert opt.stale({"task": task, "key": key, "commit": f"{fixed}~1"}).startswith(f"before {fixed} ")
    assert opt.stale({"task": task, "key": key, "commit": "HEAD"}) == ""
    assert opt.stale({"task": task, "key": "zero-shot", "commit": f"{fixed}~1"}) == ""  # not touched by it
