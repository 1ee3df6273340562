"""A run as MLflow GenAI objects (recorded LM, real SQLite store): a trace per example with
the program's spans and assessments that agree with the per-example table, the evaluation
set as dataset input and evaluation dataset, prompt versions, and the LoggedModel."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FAST_LM, ROOT, run_main
from workbench.traces.evaluation import _rank

N = 12


def _run(store, *extra: str) -> str:
    sets = [*FAST_LM, *store.overrides, f"dataset.test={N}", "dataset.train=3000", "tracking.experiment=genai", *extra]
    result = run_main("run", str(ROOT / "experiments" / "routing_clinc150.yaml"), *[f"--set={s}" for s in sets],
                      "--quiet")
    assert result.returncode == 0, result.stderr
    return result.stdout.split("run_id=")[1].split()[0]


def _traces(store, run_id: str):
    import mlflow

    mlflow.set_tracking_uri(store.uri)
    experiment = store.client().get_run(run_id).info.experiment_id
    return mlflow.search_traces(locations=[experiment], run_id=run_id, return_type="list")


def _table(store, run_id: str) -> dict[str, dict]:
    return {str(r["id"]): r for r in store.predictions(run_id)}


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    from tests.conftest import Store

    store = Store(tmp_path_factory.mktemp("genai") / "mlruns", genai=True)
    return store, _run(store)


@pytest.fixture
def store(tmp_path):
    """The tracking defaults (traces and GenAI objects on), unlike other tests' stores."""
    from tests.conftest import Store

    return Store(tmp_path / "mlruns", genai=True)


def test_every_example_has_a_trace_whose_assessments_match_its_row(first):
    store, run_id = first
    traces, table = _traces(store, run_id), _table(store, run_id)
    assert len(traces) == N and {t.info.client_request_id for t in traces} == set(table)
    for trace in traces:
        row = table[trace.info.client_request_id]
        feedback = {a.name: a for a in trace.info.assessments if a.feedback is not None}
        expectation = {a.name: a.value for a in trace.info.assessments if a.expectation is not None}
        assert feedback["accuracy"].value == row["score"]
        assert feedback["accuracy"].run_id == run_id
        assert expectation["expected_response"] == row["gold"]
        assert trace.info.tags["workbench.split"] == "test"
        types = {s.span_type for s in trace.data.spans}
        assert {"CHAIN", "RETRIEVER", "LLM", "PARSER", "CHAT_MODEL", "EVALUATOR"} <= types
        lm = [s for s in trace.data.spans if s.span_type == "CHAT_MODEL"][0]
        assert lm.inputs["messages"][0]["role"] == "system" and lm.outputs["choices"][0]["message"]["content"]
        parse = [s for s in trace.data.spans if s.name.endswith(".parse")]
        assert len(parse) == 1 and parse[0].outputs == {"label": row["predicted"]}
        retrieved = [s for s in trace.data.spans if s.name == "candidate labels"][0]
        assert retrieved.outputs == row["candidates"]


def test_the_run_is_an_evaluation_run_with_its_dataset_and_counts(first):
    store, run_id = first
    run = store.client().get_run(run_id)
    assert run.data.tags["mlflow.runType"] == "genai_evaluate"
    assert run.data.metrics["traces_logged"] == N and run.data.metrics["traces_lost"] == 0
    [dataset_input] = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "clinc150_domains.test"
    assert dataset_input.dataset.digest == run.data.tags["workbench.eval_fingerprint"]
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "test"
    import mlflow
    from mlflow.genai import datasets

    mlflow.set_tracking_uri(store.uri)
    found = datasets.search_datasets(experiment_ids=[run.info.experiment_id])
    assert [d.name for d in found] == [f"clinc150_domains.test.{N}-{dataset_input.dataset.digest[:8]}"]
    records = found[0].to_df()
    assert len(records) == N


def test_the_logged_model_holds_the_bundle_and_the_scores(first, tmp_path):
    store, run_id = first
    client = store.client()
    run = client.get_run(run_id)
    model = client.get_logged_model(run.data.tags["workbench.model_id"])
    assert str(model.status) in ("READY", "LoggedModelStatus.READY") and model.source_run_id == run_id
    scores = {m.key: m.value for m in model.metrics or []}
    assert scores["score"] == run.data.metrics["score"]
    traces = _traces(store, run_id)
    assert {t.info.trace_metadata.get("mlflow.modelId") for t in traces} == {model.model_id}
    out = tmp_path / "bundle"
    result = run_main("export", f"models:/{model.model_id}", "--out", str(out), "--tracking-uri", store.uri)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "manifest.json").read_text())["run_id"] == run_id


def test_prompt_versions_change_only_with_the_prompt(first):
    store, run_id = first
    client = store.client()
    tag = client.get_run(run_id).data.tags["workbench.prompts"]
    assert tag == "routing_clinc150.predict/1"
    same = _run(store)  # the same compiled prompt: linked to version 1, no new version
    assert client.get_run(same).data.tags["workbench.prompts"] == tag
    changed = _run(store, "program.params.instructions=Pick the domain of the message.")
    assert client.get_run(changed).data.tags["workbench.prompts"] == "routing_clinc150.predict/2"
    version = client.get_prompt_version("routing_clinc150.predict", 2)
    assert "Pick the domain of the message." in version.template and "{{text}}" in version.template
    from workbench.comparison.report import compare

    diff = compare([run_id, changed], tracking_uri=store.uri).prompt_diff[(run_id, changed)]
    assert diff.splitlines()[0] == ("# prompt routing_clinc150.predict: prompts:/routing_clinc150.predict/1 -> "
                                    "prompts:/routing_clinc150.predict/2")


def test_traces_none_writes_no_traces_failures_only_the_wrong_ones(store):
    quiet = _run(store, "tracking.traces=none")
    assert _traces(store, quiet) == [] and "mlflow.runType" not in store.client().get_run(quiet).data.tags
    failing = _run(store, "tracking.traces=failures", "program.params.candidates=0")
    wrong = {i for i, r in _table(store, failing).items() if r["score"] < 1 or r["error_type"]}
    assert {t.info.client_request_id for t in _traces(store, failing)} == wrong
    sampled = _run(store, "tracking.traces=sample:5")
    expected = set(sorted(_table(store, sampled), key=_rank)[:5])
    assert {t.info.client_request_id for t in _traces(store, sampled)} == expected


def test_a_bad_traces_value_is_one_line_exit_2(store):
    result = run_main("run", str(ROOT / "experiments" / "routing_clinc150.yaml"),
                      *[f"--set={s}" for s in store.overrides], "--set=tracking.traces=some")
    assert result.returncode == 2 and "tracking.traces" in result.stderr and "sample:N" in result.stderr
    assert "Traceback" not in result.stderr and store.runs() == []


def test_threaded_evaluation_keeps_each_examples_spans_apart(store):
    run_id = _run(store, "eval.threads=4", "lm.cache=false")
    traces = _traces(store, run_id)
    assert len(traces) == N
    for trace in traces:
        text = trace.data.spans[0].inputs["text"]
        lm = [s for s in trace.data.spans if s.span_type == "CHAT_MODEL"]
        assert len(lm) == 1 and text in lm[0].inputs["messages"][-1]["content"]
        usage = lm[0].attributes.get("mlflow.chat.tokenUsage")
        assert usage and usage["input_tokens"] > 0
        assert len({s.trace_id for s in trace.data.spans}) == 1


def test_promote_puts_the_champion_alias_on_the_prompt_and_serve_takes_the_logged_model(first, tmp_path):
    store, run_id = first
    client = store.client()
    result = run_main("promote", run_id, "--name", "routing_clinc150", "--tracking-uri", store.uri)
    assert result.returncode == 0, result.stderr
    champion = client.get_prompt_version_by_alias("routing_clinc150.predict", "champion")
    assert int(champion.version) == int(client.get_run(run_id).data.tags["workbench.prompts"].rsplit("/", 1)[1])
    from workbench.export.loaded import load
    from workbench.serve import resolve_target

    model_id = client.get_run(run_id).data.tags["workbench.model_id"]
    folder = resolve_target(f"models:/{model_id}", store.uri)
    loaded = load(folder)
    row = _table(store, run_id)
    example = next(iter(row.values()))
    assert loaded.predict({"text": example["text"]})["label"] == example["predicted"]
