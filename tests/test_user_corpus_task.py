"""A user's own documents + questions as a RAG task (`dataset: qa_corpus`), end to end
through the CLI: a real run on the embedded LM, and every bad input as one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_cli
from workbench.registry import datasets

ARTICLES = 5


@pytest.fixture(scope="module")
def user_task(tmp_path_factory) -> dict[str, Path]:
    """XQuAD articles written out as a folder of .txt files (one per article, chunked by the
    loader), and their questions as JSONL naming the article file as gold document."""
    root = tmp_path_factory.mktemp("user-corpus")
    docs = root / "docs"
    docs.mkdir()
    data = datasets.get("xquad_en")()
    by_title: dict[str, list[str]] = {}
    for passage in data.corpus:
        by_title.setdefault(passage["title"], []).append(passage["text"])
    titles = sorted(by_title)[:ARTICLES]
    for title in titles:
        (docs / f"{title}.txt").write_text("\n\n".join(by_title[title]), encoding="utf-8")
    lines = []
    for split in data.splits.values():
        for row in split:
            if row["title"] in titles and sum(1 for line in lines if row["title"] in line) < 4:
                lines.append(json.dumps({"question": row["question"], "answers": row["answers"],
                                         "gold_passage": f"{row['title']}.txt"}))
    questions = root / "qa.jsonl"
    questions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"root": root, "docs": docs, "questions": questions}


def _spec(path: Path, docs: Path, questions: Path, **params) -> Path:
    spec = yaml.safe_load((ROOT / "experiments" / "rag_xquad.yaml").read_text())
    spec["name"] = "my_docs"
    spec["dataset"] = {"name": "qa_corpus", "params": {"corpus": str(docs), "questions": str(questions),
                                                       "chunk_words": 120, "overlap": 20, **params},
                       "dev": 1, "test": 3}
    spec["tracking"] = {"enabled": False}
    spec["lm"] = {**spec.get("lm", {}), "backend": "recorded", "model": "synthetic"}  # the corpus loader is the subject
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_user_corpus_runs_end_to_end(user_task, tmp_path):
    spec = _spec(tmp_path / "spec.yaml", user_task["docs"], user_task["questions"])
    result = run_cli("run", str(spec), "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "n=3 failures=0" in result.stdout


def test_chunked_gold_documents_resolve_to_the_chunk_with_the_answer(user_task):
    loader = datasets.get("qa_corpus")
    data = loader(corpus=str(user_task["docs"]), questions=str(user_task["questions"]), chunk_words=120, overlap=20)
    texts = {p["id"]: p["text"].lower() for p in data.corpus}
    assert any("#" in pid for pid in texts)  # the article files were chunked
    rows = [r for split in data.splits.values() for r in split]
    assert len(rows) == 4 * ARTICLES
    found = sum(any(a.lower() in texts[r["gold_passage"]] for a in r["answers"]) for r in rows)
    assert found >= len(rows) - 1  # an answer may straddle two chunks; then the first chunk is used
    documents = {s: {r["gold_passage"].split("#")[0] for r in data.splits[s]} for s in data.splits}
    assert not (documents["train"] & documents["test"])  # split by document


@pytest.mark.parametrize("case, field", [
    ("no_gold", "line 2.gold_passage"), ("unknown_gold", "line 1.gold_passage"), ("no_answer", "line 1.answers"),
    ("unknown_param", "dataset.params.chunks"), ("missing_questions", "dataset.params.questions"),
    ("empty_corpus", "corpus"),
])
def test_bad_user_task_is_one_line_exit_2(user_task, tmp_path, case, field):
    docs, questions, params = user_task["docs"], tmp_path / "qa.jsonl", {}
    good = json.dumps({"question": "Who?", "answers": ["x"], "gold_passage": sorted(p.name for p in docs.iterdir())[0]})
    questions.write_text(good + "\n" + good + "\n" + good + "\n")
    if case == "no_gold":
        questions.write_text(good + "\n" + json.dumps({"question": "Who?", "answers": ["x"]}) + "\n")
    elif case == "unknown_gold":
        questions.write_text(json.dumps({"question": "Who?", "answers": ["x"], "gold_passage": "nope.txt"}) + "\n")
    elif case == "no_answer":
        questions.write_text(json.dumps({"question": "Who?", "answers": [], "gold_passage": "x"}) + "\n")
    elif case == "unknown_param":
        params = {"chunks": 3}
    elif case == "missing_questions":
        questions = tmp_path / "absent.jsonl"
    elif case == "empty_corpus":
        docs = tmp_path / "empty"
        docs.mkdir()
    spec = _spec(tmp_path / "spec.yaml", docs, questions, **params)
    result = run_cli("run", str(spec))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    assert field in result.stderr
