"""RAG and tool-agent runs exported as bundles (recorded LM): the corpus, its indexes and the
tool records travel in the bundle, a copy answers with the dataset cache gone, and each new
file kind is refused when tampered with. The embedded LM's path is tests/export/test_export_e2e.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest

from tests.conftest import FAST_LM, ROOT, Store, free_port, run_cli, run_main, stop, wait_for_http

RAG_SPEC = ROOT / "experiments" / "rag_xquad.yaml"
AGENT_SPEC = ROOT / "experiments" / "agent_gsm8k_calculator.yaml"
QUESTION = "What is the name of the stadium where Super Bowl 50 was played?"


def _run(store: Store, spec, *overrides: str) -> str:
    result = run_main("run", str(spec), "--quiet", *[a for o in [*store.overrides, *FAST_LM, *overrides]
                                                    for a in ("--set", o)])
    assert result.returncode == 0, result.stderr
    return next(x for x in result.stdout.splitlines() if x.startswith("run_id=")).split()[0].removeprefix("run_id=")


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("kinds") / "mlruns")
    runs = {"rag": _run(store, RAG_SPEC, "dataset.test=10", "dataset.dev=4", "dataset.train=150"),
            "agent": _run(store, AGENT_SPEC, "dataset.test=4", "dataset.dev=2")}
    bundles = {}
    for kind, run_id in runs.items():
        out = tmp_path_factory.mktemp("bundles") / kind
        result = run_main("export", run_id, "--out", str(out), "--tracking-uri", store.uri)  # in-process: fast tier
        assert result.returncode == 0, result.stderr
        assert "verified" in result.stdout and "MB, loads in" in result.stdout
        bundles[kind] = out
    return store, runs, bundles


def _resum(folder, name):
    """Re-checksum one file in the manifest (a bundle made elsewhere, not a tampered one)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_rag_bundle_carries_corpus_and_indexes(kinds):
    _, _, bundles = kinds
    rag = bundles["rag"]
    manifest = json.loads((rag / "manifest.json").read_text())
    config = json.loads((rag / "program_config.json").read_text())
    indexes = config["config"]["files"]["indexes"]
    assert {"retriever.0", "retriever.1", "reranker.bm25", "reranker.dense"} <= set(indexes)
    assert len(set(indexes.values())) == 2  # hybrid's parts and the reranker's signals share two indexes
    assert "corpus.jsonl" in manifest["files"] and any(f.endswith("embeddings.npy") for f in manifest["files"])
    assert sum(1 for _ in open(rag / "corpus.jsonl")) == 240
    report = json.loads((rag / "report.json").read_text())
    assert report["bundle_bytes"] > 100_000 and report["load_seconds"] > 0
    assert "passages" in config["outputs"] and "citations" in config["outputs"]


def test_a_copied_rag_bundle_answers_without_the_cache(kinds, tmp_path):
    import workbench

    _, _, bundles = kinds
    expected = workbench.load(bundles["rag"]).predict({"question": QUESTION})
    assert expected["passages"] and expected["passages"][0]["id"] == expected["citations"][0]
    assert expected["passages"][0]["text"]
    copy = tmp_path / "elsewhere" / "bundle"
    shutil.copytree(bundles["rag"], copy)
    empty_cache = tmp_path / "no-cache"
    code = ("import json, sys, workbench; p = workbench.load(sys.argv[1]); "
            "print(json.dumps(p.predict({'question': sys.argv[2]})))")
    done = subprocess.run([sys.executable, "-c", code, str(copy), QUESTION], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "WORKBENCH_CACHE": str(empty_cache)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected
    assert not (empty_cache / "indexes").exists()  # nothing was rebuilt: the bundle's indexes were used


@pytest.mark.parametrize("change, message", [
    (lambda b: (b / "corpus.jsonl").write_text('{"id": "x", "text": "tampered"}\n'), "SHA-256 does not match"),
    (lambda b: next(b.glob("indexes/dense-*/embeddings.npy")).unlink(), "missing"),
    (lambda b: shutil.rmtree(next(b.glob("indexes/bm25-*"))), "missing"),
])
def test_tampered_rag_bundles_are_refused(kinds, tmp_path, change, message):
    import workbench
    from workbench.export import BundleError

    copy = tmp_path / "copy"
    shutil.copytree(kinds[2]["rag"], copy)
    change(copy)
    with pytest.raises(BundleError, match=message):
        workbench.load(copy)


def test_agent_bundle_records_its_tools_and_checks_them(kinds, tmp_path):
    import workbench
    from workbench.export import BundleError

    agent = kinds[2]["agent"]
    [record] = json.loads((agent / "tools.json").read_text())["tools"]
    assert record["name"] == "calculator" and len(record["source_sha256"]) == 64 and "trusted" in record
    loaded = workbench.load(agent)
    assert loaded.warnings == []
    out = loaded.predict({"question": "A pen costs 3 dollars. How much do 4 pens cost?"})
    assert {"answer", "trajectory", "tool_calls"} <= set(out)

    edited = tmp_path / "edited"  # tools.json edited after export (not re-checksummed): refused
    shutil.copytree(agent, edited)
    (edited / "tools.json").write_text((edited / "tools.json").read_text().replace("calculator", "abacus"))
    with pytest.raises(BundleError, match="SHA-256 does not match"):
        workbench.load(edited)

    changed = tmp_path / "changed"
    shutil.copytree(agent, changed)
    tools = json.loads((changed / "tools.json").read_text())
    tools["tools"][0]["source_sha256"] = "0" * 64
    (changed / "tools.json").write_text(json.dumps(tools))
    _resum(changed, "tools.json")
    assert any("differs from the one exported" in w for w in workbench.load(changed).warnings)

    missing = tmp_path / "missing"
    shutil.copytree(agent, missing)
    tools["tools"][0].update(name="abacus", module="workbench.tools.no_such_module")
    (missing / "tools.json").write_text(json.dumps(tools))
    _resum(missing, "tools.json")
    with pytest.raises(BundleError, match="tool 'abacus'.*not installed here"):
        workbench.load(missing)
    result = run_cli("serve", str(missing), "--port", "1")
    assert result.returncode == 2 and "abacus" in result.stderr and "Traceback" not in result.stderr


def test_changed_dataset_and_oversized_corpus_are_refused(kinds, tmp_path):
    store, runs, _ = kinds
    result = run_main("export", runs["rag"], "--out", str(tmp_path / "small"), "--max-corpus-mb", "0.01",
                     "--tracking-uri", store.uri)
    assert result.returncode == 2 and "over the bundle limit of 0.0 MB" in result.stderr, result.stderr
    assert "--max-corpus-mb" in result.stderr and not list(tmp_path.iterdir())
    client = store.client()
    recorded = client.get_run(runs["rag"]).data.tags["workbench.dataset_fingerprint"]
    client.set_tag(runs["rag"], "workbench.dataset_fingerprint", "feedfacefeedface")
    try:
        result = run_main("export", runs["rag"], "--out", str(tmp_path / "changed"), "--tracking-uri", store.uri)
    finally:
        client.set_tag(runs["rag"], "workbench.dataset_fingerprint", recorded)
    assert result.returncode == 2 and "fingerprint then feedfacefeedface, now " in result.stderr, result.stderr
    assert not list(tmp_path.iterdir()) and "Traceback" not in result.stderr


def test_rag_bundle_is_served(kinds):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", str(kinds[2]["rag"]), "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", proc, seconds=120, what="workbench serve", log=lambda: "")
        ok = httpx.post(f"{base}/predict", json={"question": QUESTION}, timeout=60)
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["answer"] and body["citations"] and body["passages"][0]["text"]
        wrong = httpx.post(f"{base}/predict", json={"text": QUESTION}, timeout=60)
        assert wrong.status_code == 422 and wrong.json()["field"] in ("question", "text")
    finally:
        stop(proc)


def test_programs_without_a_fixed_prompt_are_refused_as_plain_prompts(kinds, tmp_path):
    store, runs, _ = kinds
    for kind, predictor in (("rag", "answer"), ("agent", "agent.react")):
        result = run_main("export", runs[kind], "--format", "prompt", "--out", str(tmp_path / kind),
                         "--tracking-uri", store.uri)
        assert result.returncode == 2 and "cannot be exported as a plain prompt" in result.stderr, result.stderr
        assert predictor in result.stderr and "--format" in result.stderr
    assert not list(tmp_path.iterdir())
