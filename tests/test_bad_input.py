"""Bad specs, data and arguments: one line naming file and field, exit 2, no run created."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, SPEC, run_cli, write_spec
from workbench.cli import main


def _check_one_line(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


def _spec_text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


CASES = {
    "malformed_yaml": ("name: x\ndataset: [unclosed\n", ["malformed YAML", "line"]),
    "empty_spec": ("", ["the spec is empty"]),
    "top_level_list": ("- a\n- b\n", ["mapping"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_unparseable_spec(case, tmp_path, store, capsys):
    text, needles = CASES[case]
    path = _spec_text(tmp_path, text)
    code = main(["run", str(path), *sum((["--set", o] for o in store.overrides), [])])
    _check_one_line(capsys, code, str(path), *needles)
    assert store.runs() == []


FIELD_CASES = {
    "unknown_top_level_key": ({"colour": "blue"}, "colour", "unknown key"),
    "unknown_nested_key": ({"dataset": {"sise": 3}}, "dataset.sise", "unknown key"),
    "wrong_type": ({"dataset": {"test": "many"}}, "dataset.test", "integer"),
    "missing_required": ({"program": None}, "program", ""),
    "unknown_program": ({"program": {"name": "rooter"}}, "program.name", "did you mean 'router'"),
    "unknown_metric": ({"metric": {"name": "acuracy"}}, "metric.name", "unknown metric"),
    "unknown_summary": ({"metric": {"summaries": ["nope"]}}, "metric.summaries.0", "unknown summary"),
    "unknown_optimizer": ({"optimizer": {"name": "MIPROv9"}}, "optimizer.name", "unknown optimizer"),
    "unknown_optimizer_param": ({"optimizer": {"params": {"kk": 3}}}, "optimizer.params.kk", "unknown parameter"),
    "zero_optimizer_max_train": ({"optimizer": {"max_train": 0}}, "optimizer.max_train",
                                 "greater than or equal to 1"),
    "unknown_program_param": ({"program": {"name": "router", "params": {"cands": 2}}}, "program.params.cands",
                              "unknown parameter"),
    "unknown_dataset": ({"dataset": {"name": "clinc151"}}, "dataset.name", "unknown dataset"),
    "zero_test_size": ({"dataset": {"test": 0}}, "dataset.test", "greater than or equal to 1"),
    "split_too_large": ({"dataset": {"test": 999999}}, "dataset.test", "has 4500"),
    "openai_without_base": ({"lm": {"backend": "openai", "model": "m"}}, "lm", "api_base"),
    "unknown_embedded_model": ({"lm": {"model": "gpt-17"}}, "lm.model", "unknown embedded model"),
    "temperature_out_of_range": ({"lm": {"temperature": 9}}, "lm.temperature", "less than or equal to 2"),
    "bad_candidates": ({"program": {"name": "router", "params": {"candidates": 99}}}, "program.params",
                       "candidates must be between"),
    "bad_omit_optional": ({"task": "tools", "dataset": {"name": "bfcl_simple_python", "test": 5, "dev": 5},
                           "program": {"name": "function_caller", "params": {"omit_optional": "yes"}},
                           "metric": {"name": "ast_match", "summaries": []},
                           "optimizer": {"name": "none", "params": {}}},
                          "program.params", "omit_optional must be true or false"),
    "hint_from_without_hint": ({"program": {"name": "router", "params": {"candidates": 3, "hint_from": 0.5}}},
                               "program.params", "need ranker_hint: true"),
    "program_param_of_the_wrong_type": ({"program": {"name": "router", "params": {"candidates": "ten"}}},
                                        "program.params.candidates", "candidates must be an integer"),
    "hint_from_out_of_range": ({"program": {"name": "router", "params": {"candidates": 3, "ranker_hint": True,
                                                                         "hint_from": 1.5}}},
                               "program.params", "hint_from must be a number from 0 up to"),
    "bfcl_trains_on_its_test_category": ({"dataset": {"name": "bfcl_simple_python",
                                                      "params": {"train_from": ["exec_simple", "simple_python"]}}},
                                         "dataset.params.train_from", "the category this view tests on"),
    "bad_bfcl_fold": ({"dataset": {"name": "bfcl_simple_python", "params": {"fold": "3/2"}}},
                      "dataset.params.fold", "i between 1 and k"),
    "bad_fold": ({"dataset": {"fold": "half"}}, "dataset.fold", 'give the fold as "i/k"'),
    "fold_beyond_the_test_split": ({"dataset": {"fold": "1/9999"}}, "dataset.fold", "fewer than k = 9999"),
    "fold_with_dev_evaluation": ({"dataset": {"fold": "1/2"}, "eval": {"split": "dev"}}, "dataset.fold",
                                 "eval.split is 'dev'"),
    "api_key_env_unset": ({"lm": {"backend": "openai", "model": "m", "api_base": "http://127.0.0.1:9/v1",
                                  "api_key_env": "WORKBENCH_TEST_SURELY_UNSET"}}, "lm.api_key_env", "not set"),
}


@pytest.mark.parametrize("case", sorted(FIELD_CASES))
def test_bad_field(case, tmp_path, store, capsys):
    changes, field, needle = FIELD_CASES[case]
    path = write_spec(tmp_path / "spec.yaml", **changes)
    code = main(["run", str(path), *sum((["--set", o] for o in store.overrides), [])])
    _check_one_line(capsys, code, str(path), field, needle)
    assert store.runs() == []


def test_bad_override_and_missing_spec(tmp_path, store, capsys):
    code = main(["run", str(SPEC), "--set", "dataset.test"])
    _check_one_line(capsys, code, "--set", "key.path=value")
    code = main(["run", str(tmp_path / "nope.yaml")])
    _check_one_line(capsys, code, "nope.yaml", "not found")
    code = main(["run", str(SPEC), "--set", "dataset.name.x=1"])
    _check_one_line(capsys, code, "--set", "not a mapping")


def test_folds_arguments_that_cannot_work_are_one_line(tmp_path, store, capsys):
    sets = sum((["--set", o] for o in store.overrides), [])
    code = main(["run", str(SPEC), *sets, "--folds", "1"])
    _check_one_line(capsys, code, "--folds", "at least 2 folds")
    code = main(["run", str(SPEC), *sets, "--folds", "2", "--seeds", "2"])
    _check_one_line(capsys, code, "--seeds", "does not combine")
    code = main(["run", str(SPEC), *sets, "--folds", "2", "--set", "dataset.fold=1/2"])
    _check_one_line(capsys, code, str(SPEC), "dataset.fold", "leave dataset.fold ('1/2') unset")
    assert store.runs() == []


def test_bad_cli_arguments_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run"])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def _project_copy(tmp_path: Path) -> Path:
    """A project folder whose datasets/ we can break without touching the real one."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "datasets" / "clinc150", project / "datasets" / "clinc150")
    return project


def test_missing_dataset_file_via_subprocess(tmp_path, store):
    project = _project_copy(tmp_path)
    (project / "datasets" / "clinc150" / "domains.json").unlink()
    args = ["run", str(SPEC), *sum((["--set", o] for o in store.overrides), [])]
    result = run_cli(*args, env={"WORKBENCH_PROJECT": str(project)})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "domains.json" in lines[0] and "dataset file is missing" in lines[0], result.stderr
    assert store.runs() == []


def test_empty_split_via_subprocess(tmp_path, store):
    project = _project_copy(tmp_path)
    data_path = project / "datasets" / "clinc150" / "data_full.json"
    data = json.loads(data_path.read_text())
    data["test"] = []
    data_path.write_text(json.dumps(data))
    result = run_cli("run", str(SPEC), *sum((["--set", o] for o in store.overrides), []),
                     env={"WORKBENCH_PROJECT": str(project)})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "dataset.test" in result.stderr and "empty" in result.stderr
    assert store.runs() == []


def test_eval_refuses_pickle_and_foreign_state(tmp_path, store, capsys):
    pickle_path = tmp_path / "program.pkl"
    pickle_path.write_bytes(b"\x80\x04K\x01.")
    code = main(["eval", str(SPEC), "--program", str(pickle_path), *sum((["--set", o] for o in store.overrides), [])])
    _check_one_line(capsys, code, "program.pkl", "pickles are never loaded")
    foreign = tmp_path / "program.json"
    foreign.write_text(json.dumps({"something": {"else": 1}}))
    code = main(["eval", str(SPEC), "--program", str(foreign), *sum((["--set", o] for o in store.overrides), [])])
    _check_one_line(capsys, code, "program.json", "does not fit")
    assert store.runs() == []


def test_yaml_of_every_shipped_spec_validates():
    from workbench.spec import load_spec

    for path in sorted((ROOT / "experiments").glob("*.yaml")):
        spec = load_spec(path)
        assert spec.name == yaml.safe_load(path.read_text())["name"]
