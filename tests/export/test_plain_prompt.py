"""`workbench export RUN --format prompt`: the plain prompt renders exactly what DSPy sends, its
client.py needs no DSPy, and it is re-scored through that client against the run's LM as an
endpoint (recorded LM here; the embedded LM behind llama_cpp.server is in
tests/export/test_export_e2e.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import FAST_LM, free_port, run_main
from workbench.lm.backend_server import BackendServer
from workbench.lm.mock_server import MockEndpoint


@pytest.fixture(scope="module")
def prompt_folder(routing_store, tmp_path_factory):
    store, runs = routing_store
    out = tmp_path_factory.mktemp("prompt") / "good"
    result = run_main("export", runs["good"], "--format", "prompt", "--out", str(out), "--tracking-uri", store.uri)
    assert result.returncode == 0, result.stderr
    assert "through client.py vs" in result.stdout
    return out


def test_prompt_export_checks_rendering_and_score(prompt_folder):
    assert {p.name for p in prompt_folder.iterdir()} == {"prompt.json", "prompt.md", "client.py", "report.json"}
    report = json.loads((prompt_folder / "report.json").read_text())
    assert report["rendering_checked"] == report["n"] == 24
    assert report["plain_score"] == report["dspy_score"] and report["plain_failures"] == 0
    assert report["difference_ci"] == [0.0, 0.0] and len(report["per_example"]) == 24
    doc = json.loads((prompt_folder / "prompt.json").read_text())
    assert doc["steps"]["candidates"] == 2 and doc["steps"]["pool"]["k"] == 5
    assert len(doc["steps"]["pool"]["examples"]) == 400 and doc["response_schema"]["properties"]["label"]["enum"] == []
    assert "label must be one of:" in (prompt_folder / "prompt.md").read_text()


def test_the_client_runs_without_dspy_or_the_workbench(prompt_folder, tmp_path):
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import client; "
            "p = client.PlainPrompt(); out = p.call({'text': 'set an alarm for 6 am'}, base_url=sys.argv[2], "
            "model=sys.argv[3]); assert not any(m.split('.')[0] in ('dspy', 'workbench', 'mlflow', 'litellm') "
            "for m in sys.modules), sorted(sys.modules); print(json.dumps(out))")
    with MockEndpoint() as lm:  # answers the first allowed value: the ranker's top candidate
        done = subprocess.run([sys.executable, "-c", code, str(prompt_folder), lm.base_url, lm.model], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        label = json.loads(done.stdout)["label"]
        cli = subprocess.run([sys.executable, str(prompt_folder / "client.py"), "--base-url", lm.base_url,
                              "--model", lm.model, "set an alarm for 6 am"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == {"label": label}
    labels = json.loads((prompt_folder / "prompt.json").read_text())["steps"]["labels"]
    assert label in labels


def test_a_changed_template_is_caught_by_the_rendering_check(prompt_folder, routing_store, tmp_path):
    import shutil

    from workbench.export.plain_prompt import PromptDrift, check_rendering, dspy_requests, load_client
    from workbench.export.exporter import find_run, load_run

    store, runs = routing_store
    client = store.client()
    prepared = load_run(client, find_run(client, runs["good"]), tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(prompt_folder, copy)
    doc = json.loads((copy / "prompt.json").read_text())
    requests = dspy_requests(prepared.program, prepared.evalset[:3], ["text"])
    assert check_rendering(load_client(copy)[0], requests, prepared.evalset[:3], ["text"]) == 3
    doc["template"]["user_choices"] = "label is one of: {choices}"
    (copy / "prompt.json").write_text(json.dumps(doc))
    with pytest.raises(PromptDrift, match="message 11 of 12"):
        check_rendering(load_client(copy)[0], requests, prepared.evalset[:3], ["text"])


class Wrong:
    """A backend whose every answer fits no schema."""

    def _generate(self, messages, schema, config):
        from dspy.lm15 import Usage

        return '{"label": "not a label"}', Usage(input_tokens=1, output_tokens=1), "stop"


def test_a_losing_prompt_and_a_dead_endpoint_are_refused(routing_store, tmp_path):
    store, runs = routing_store
    with BackendServer(Wrong()) as server:
        result = run_main("export", runs["good"], "--format", "prompt", "--out", str(tmp_path / "lost"),
                         "--base-url", server.base_url, "--tracking-uri", store.uri)
    assert result.returncode == 1, result.stderr
    assert "through client.py but" in result.stderr and "loses more than --tolerance" in result.stderr
    dead = f"http://127.0.0.1:{free_port()}/v1"
    result = run_main("export", runs["good"], "--format", "prompt", "--out", str(tmp_path / "dead"), "--base-url", dead,
                     "--tracking-uri", store.uri)
    assert result.returncode == 2 and f"the endpoint {dead} does not answer" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_zero_shot_over_all_labels_exports_too(routing_store, tmp_path):
    store, runs = routing_store
    result = run_main("export", runs["zero_shot"], "--format", "prompt", "--out", str(tmp_path / "zs"),
                     "--tracking-uri", store.uri)
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "zs" / "prompt.json").read_text())
    assert doc["steps"]["candidates"] == 0 and doc["steps"]["pool"] is None


@pytest.mark.parametrize("hint_from", [0.0, 0.6])
def test_a_router_with_the_ranker_hint_in_label_order_exports_and_renders_the_same(routing_store, tmp_path,
                                                                                   hint_from):
    """The client computes the ranker's guess (or "none" below `hint_from`) and orders the candidates
    itself; the export's rendering check proves each request equals DSPy's, and the re-score through the
    client matches."""
    from tests.export.conftest import routing_run
    from workbench.export.prompt_client import PlainPrompt

    store, _ = routing_store
    run = routing_run(store, *FAST_LM, "optimizer.name=none", "optimizer.params={}", "program.params.candidates=3",
                      "program.params.candidate_order=label", "program.params.ranker_hint=true",
                      f"program.params.hint_from={hint_from}")
    out = tmp_path / "hint"
    result = run_main("export", run, "--format", "prompt", "--out", str(out), "--tracking-uri", store.uri)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["rendering_checked"] == report["n"] == 24 and report["plain_score"] == report["dspy_score"]
    doc = json.loads((out / "prompt.json").read_text())
    assert doc["template"]["inputs"] == ["text", "ranker_guess"]
    assert doc["steps"]["candidate_order"] == "label" and doc["steps"]["ranker_hint"] is True
    assert doc["steps"]["hint_from"] == hint_from
    client = PlainPrompt(out / "prompt.json")
    texts = [e["text"] for e in doc["steps"]["pool"]["examples"][:60]]
    texts += [f"{a} {b}" for a, b in zip(texts[:30], texts[30:])]  # two messages in one: a less sure ranker
    hints = [client.render({"text": text})[0][-1]["content"].split("ranker_guess: ")[1].split("\n")[0]
             for text in texts]
    assert ("none" in hints) == bool(hint_from) and any(h != "none" for h in hints), hints
    review = (out / "prompt.md").read_text()
    assert "ranker_guess: " in review and "listed in the label set's order" in review
