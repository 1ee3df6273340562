"""Bad sweep input: one line naming the field, exit 2, nothing started (no LM needed)."""

from __future__ import annotations

import copy
import time

import optuna
import pytest

from tests.conftest import Store, run_cli
from tests.sweep.conftest import SEARCH, sweep_spec
from workbench.cli import main
from workbench.sweep.report import pareto_mask
from workbench.search import Distribution, SearchSpec


def _space(**dist) -> dict:
    search = copy.deepcopy(SEARCH)
    search["space"] = dist
    return search


@pytest.mark.parametrize("space, field, words", [
    ({"lm.temperature": {"type": "float", "low": 0.9, "high": 0.1}}, "search.space.lm.temperature", "greater than high"),
    ({"program.params.candidates": {"type": "categorical", "choices": []}}, "search.space.program.params.candidates",
     "at least one choice"),
    ({"lm.temperature": {"type": "float", "low": 0.0, "high": 5.0}}, "search.space.lm.temperature", "less than or equal to 2"),
    ({"program.params.no_such": {"type": "int", "low": 1, "high": 2}}, "search.space.program.params.no_such",
     "unknown parameter"),
    ({"lm.temperature": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}, "search.space.lm.temperature", "low > 0"),
])
def test_bad_distribution_is_one_line(tmp_path, capsys, space, field, words):
    """The CLI's own entry point in-process (the subprocess path is covered below)."""
    store = Store(tmp_path / "mlruns")
    spec = sweep_spec(tmp_path / "s.yaml", store, _space(**space))
    code = main(["sweep", str(spec), "--trials", "2", "--storage", f"sqlite:///{tmp_path}/optuna.db"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert field in err and words in err, err
    assert not (tmp_path / "optuna.db").exists() and not store.runs()


@pytest.mark.parametrize("flag", ["--max-lm-calls", "--max-tokens", "--max-cost-usd", "--timeout", "--trials"])
def test_zero_budget_is_refused(tmp_path, capsys, flag):
    store = Store(tmp_path / "mlruns")
    spec = sweep_spec(tmp_path / "s.yaml", store)
    args = ["--trials", "2"] if flag != "--trials" else []
    code = main(["sweep", str(spec), *args, flag, "0", "--storage", f"sqlite:///{tmp_path}/optuna.db"])
    err = capsys.readouterr().err
    assert code == 2 and flag in err, err
    assert len(err.strip().splitlines()) == 1
    assert not store.runs() and not (tmp_path / "optuna.db").exists()


def test_zero_budget_in_a_subprocess(tmp_path):
    store = Store(tmp_path / "mlruns")
    spec = sweep_spec(tmp_path / "s.yaml", store)
    result = run_cli("sweep", str(spec), "--trials", "2", "--max-lm-calls", "0")
    assert result.returncode == 2 and result.stderr.strip() == "error: --max-lm-calls: must be greater than 0 (got 0)"


def test_storage_that_does_not_answer_fails_fast(tmp_path):
    store = Store(tmp_path / "mlruns")
    spec = sweep_spec(tmp_path / "s.yaml", store)
    start = time.monotonic()
    result = run_cli("sweep", str(spec), "--trials", "2", "--storage", "postgresql://postgres@127.0.0.1:1/none")
    assert time.monotonic() - start < 10
    assert result.returncode == 2 and "--storage" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not store.runs()
    bad = run_cli("sweep", str(spec), "--trials", "2", "--storage", "redis://127.0.0.1:6379")
    assert bad.returncode == 2 and "unsupported storage URL" in bad.stderr


def test_spec_without_search_section(tmp_path, capsys):
    from tests.conftest import SPEC

    code = main(["sweep", str(SPEC), "--trials", "2", "--storage", f"sqlite:///{tmp_path}/optuna.db"])
    assert code == 2 and "no `search:` section" in capsys.readouterr().err


def test_study_with_another_space_needs_resume(tmp_path):
    from workbench.sweep.study import create_or_resume, open_storage

    url = f"sqlite:///{tmp_path}/optuna.db"
    other = SearchSpec.model_validate(_space(**{"optimizer.params.k": {"type": "int", "low": 1, "high": 3}}))
    create_or_resume(open_storage(url), "mine", other, attrs={}, resume=False)
    store = Store(tmp_path / "mlruns")
    spec = sweep_spec(tmp_path / "s.yaml", store)
    result = run_cli("sweep", str(spec), "--trials", "1", "--storage", url, "--study", "mine")
    assert result.returncode == 2 and "--study" in result.stderr and "--resume" in result.stderr, result.stderr
    assert not store.runs()


def test_worker_for_unknown_study(tmp_path, capsys):
    code = main(["sweep-worker", "--study", "nope", "--storage", f"sqlite:///{tmp_path}/optuna.db"])
    assert code == 2 and "no study named 'nope'" in capsys.readouterr().err


def test_mapping_choices_round_trip_and_pareto_mask():
    study = optuna.create_study()
    choice = Distribution(type="categorical", choices=[{"name": "none", "params": {}},
                                                       {"name": "retrieval_demos", "params": {"k": 5}}])
    seen = {str(choice.suggest(study.ask(), "optimizer")) for _ in range(20)}
    assert seen == {"{'name': 'none', 'params': {}}", "{'name': 'retrieval_demos', 'params': {'k': 5}}"}
    import numpy as np

    points = np.array([[0.9, 100], [0.8, 50], [0.7, 80], [0.9, 120]])
    assert pareto_mask(points, [True, False]).tolist() == [True, True, False, False]


def test_demo_count_beyond_the_window_is_refused_before_trial_0(tmp_path, capsys):
    """The upper end of a `k` range whose prompts cannot fit n_ctx: one line naming the search path,
    no study and no run (the embedded LM is named but never loaded)."""
    store = Store(tmp_path / "mlruns")
    spec = sweep_spec(tmp_path / "s.yaml", store, _space(**{"optimizer.params.k": {"type": "int", "low": 1,
                                                                                    "high": 2000}}), embedded=True)
    code = main(["sweep", str(spec), "--trials", "2", "--storage", f"sqlite:///{tmp_path}/optuna.db"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "search.space.optimizer.params.k" in err and "with the value 2000" in err and "at most ~" in err, err
    assert not (tmp_path / "optuna.db").exists() and not store.runs()
    ok = sweep_spec(tmp_path / "ok.yaml", store, _space(**{"optimizer.params.k": {"type": "int", "low": 1, "high": 8}}),
                    embedded=True)
    from workbench.data.loading import load_data
    from workbench.lm.window import check_space_fits
    from workbench.spec import load_spec

    loaded = load_spec(ok, [])
    check_space_fits(loaded, load_data(loaded).data)  # 8 demos fit: no error
