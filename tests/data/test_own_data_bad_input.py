"""Every bad input of a user's own data, tools or code: one line naming the file and field,
exit 2, no MLflow run, nothing written."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli
from tests.data.conftest import write_spec, write_tickets, write_tool_task
from workbench.cli import main


def _routing(path="tickets.csv", **params):
    return {"name": "file", "params": {"path": path, "options": {"sep": ";"}, "input": "message", "label": "queue",
                                       **params}, "dev": None}


def _case(tmp_path, name):
    """(spec dataset section, extra spec keys, what the error line must say)."""
    write_tickets(tmp_path / "tickets.csv")
    if name == "missing file":
        return _routing("nope.csv"), {}, ["nope.csv", "dataset.params.path", "data file not found"]
    if name == "unknown format":
        (tmp_path / "t.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
        return _routing("t.xlsx"), {}, ["t.xlsx", "unknown format '.xlsx'"]
    if name == "absent column":
        return _routing(label="team"), {}, ["dataset.params.label", "column 'team' is not in the data",
                                            "columns: id, message, queue"]
    if name == "empty file":
        (tmp_path / "empty.csv").write_text("")
        return _routing("empty.csv"), {}, ["empty.csv", "the file is empty"]
    if name == "header only":
        (tmp_path / "head.csv").write_text("id;message;queue\n")
        return _routing("head.csv"), {}, ["head.csv", "no rows"]
    if name == "not utf-8":
        (tmp_path / "latin.csv").write_bytes("id;message;queue\n1;caf\xe9 card;cards\n".encode("latin-1"))
        return _routing("latin.csv"), {}, ["latin.csv", "not UTF-8 text (byte 22)", "options.encoding"]
    if name == "one class":
        (tmp_path / "one.csv").write_text("id;message;queue\n" + "".join(f"{i};msg {i};cards\n" for i in range(20)))
        return _routing("one.csv"), {}, ["one.csv", "dataset.params.label", "1 class", "at least 2"]
    if name == "split fraction 1":
        return _routing(split={"test": 1.0}), {}, ["dataset.params.split", "between 0 and 1"]
    if name == "fractions add to 1":
        return _routing(split={"validation": 0.5, "test": 0.5}), {}, ["dataset.params.split", "add up to 1"]
    if name == "unknown param":
        return _routing(labels="queue"), {}, ["dataset.params.labels", "unknown key"]
    if name == "label named like the input":
        (tmp_path / "named.csv").write_text("id;message;text\n" + "".join(f"{i};msg {i};q{i % 2}\n" for i in range(20)))
        return _routing("named.csv", label="text"), {}, ["named.csv", "dataset.params.label",
                                                         "the label column is named 'text'"]
    if name == "import fails":
        (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
        return _routing(), {"imports": ["broken.py"]}, ["imports.0", "cannot import", "ModuleNotFoundError",
                                                        "not_a_module_anywhere"]
    if name == "import missing":
        return _routing(), {"imports": ["gone/tools.py"]}, ["imports.0", "module file not found"]
    if name == "duplicate tool":
        (tmp_path / "dup_tools.py").write_text(
            "from workbench.tools.functions import tool\n\n@tool('calculator')\ndef calc(expression: str) -> str:\n"
            "    '''Not the built-in.'''\n    return expression\n")
        return _routing(), {"imports": ["dup_tools.py"]}, ["imports.0", "tool 'calculator' is registered twice"]
    if name == "unknown tool":
        module, _ = write_tool_task(tmp_path)
        return ({"name": "file", "params": {"path": "calls.jsonl", "tools": ["order_status", "refund_order"]}},
                {"imports": [str(module)], "task": "tools"}, ["dataset.params.tools.1", "unknown tool 'refund_order'"])
    if name == "call to a tool not offered":
        module, _ = write_tool_task(tmp_path)
        return ({"name": "file", "params": {"path": "calls.jsonl", "tools": ["order_status"]}},
                {"imports": [str(module)], "task": "tools"}, ["calls.jsonl", "expects a call to 'convert_price'"])
    raise AssertionError(name)


CASES = ["missing file", "unknown format", "absent column", "empty file", "header only", "not utf-8", "one class",
         "split fraction 1", "fractions add to 1", "unknown param", "label named like the input", "import fails", "import missing", "duplicate tool",
         "unknown tool", "call to a tool not offered"]


@pytest.mark.parametrize("name", CASES)
def test_bad_own_data_is_one_line_exit_2_no_run(name, tmp_path, store, capsys):
    dataset, extra, expected = _case(tmp_path, name)
    task = extra.pop("task", "routing")
    program = {"name": "function_caller"} if task == "tools" else None
    spec = write_spec(tmp_path / "bad.yaml", dataset, task=task, program=program,
                      tracking={"uri": store.uri, "artifact_root": str(store.root / "artifacts")}, **extra)
    assert main(["run", str(spec)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for part in expected:
        assert part in lines[0], (part, lines[0])
    assert store.runs() == []


def test_init_without_a_plausible_label_column_writes_nothing(tmp_path, capsys):
    data = tmp_path / "notes.csv"
    data.write_text("id,note\n" + "".join(f"{i},a different note number {i}\n" for i in range(30)))
    out = tmp_path / "experiments" / "notes.yaml"
    assert main(["init", str(data), "--task", "routing", "--out", str(out)]) == 2
    line = capsys.readouterr().err.strip()
    assert "notes.csv: --label: no plausible label column" in line and "\n" not in line
    assert not out.exists() and not out.parent.exists()


def test_init_with_an_absent_column_and_a_missing_file(tmp_path, capsys):
    tickets = write_tickets(tmp_path / "tickets.csv")
    assert main(["init", str(tickets), "--task", "routing", "--label", "team", "--out", str(tmp_path / "x.yaml")]) == 2
    assert "--label: column 'team' is not in the data (columns: id, message, queue)" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "none.csv"), "--task", "routing", "--out", str(tmp_path / "x.yaml")]) == 2
    assert "data file not found" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


def test_a_second_module_file_under_a_taken_name_is_refused(tmp_path, store, capsys):
    module, _ = write_tool_task(tmp_path)
    other = tmp_path / "team_tools.py"
    other.write_text(module.read_text())
    write_tickets(tmp_path / "tickets.csv")
    for imports in ([str(module)], ["team_tools.py"]):
        spec = write_spec(tmp_path / "s.yaml", _routing(), imports=imports,
                          tracking={"uri": store.uri, "artifact_root": str(store.root / "artifacts")})
        code = main(["run", str(spec), "--set", "dataset.test=1", "--set", "tracking.enabled=false",
                     "--set", "program.name=nope"])
        assert code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "imports.0: the module name 'team_tools' is already taken by" in line and "rename the file" in line


def test_a_dataset_folder_that_takes_a_builtin_name_is_refused(tmp_path):
    folder = tmp_path / "datasets" / "clinc150_domains"
    folder.mkdir(parents=True)
    write_tickets(folder / "t.csv")
    (folder / "dataset.yaml").write_text("params: {path: t.csv, options: {sep: ';'}, input: message, label: queue}\n")
    done = run_cli("list", "datasets", env={"WORKBENCH_PROJECT": str(tmp_path)}, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (f"error: {folder / 'dataset.yaml'}: the dataset name 'clinc150_domains' is taken "
                                   "(a built-in dataset or another folder); rename the folder or set `name:`")
