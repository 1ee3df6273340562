"""XQuAD's view (article-disjoint splits, gold passages in the corpus) and a user's own
corpus (folder or JSONL, chunking, and every bad input named by file and field)."""

from __future__ import annotations

import json
import logging

import pytest

from workbench.data.corpus import chunk_words, load_corpus
from workbench.errors import UserError
from workbench.registry import datasets


def test_xquad_splits_are_article_disjoint_and_complete():
    data = datasets.get("xquad_en")()
    titles = {s: set(data.splits[s]["title"]) for s in data.splits}
    assert not (titles["train"] & titles["validation"] or titles["train"] & titles["test"]
                or titles["validation"] & titles["test"])
    assert sum(len(data.splits[s]) for s in data.splits) == 1190 and len(data.corpus) == 240
    corpus_ids = {p["id"] for p in data.corpus}
    assert all(g in corpus_ids for s in data.splits for g in data.splits[s]["gold_passage"])
    assert all(len(a) >= 1 for a in data.splits["test"]["answers"])


def test_chunking_windows_overlap():
    words = " ".join(f"w{i}" for i in range(25))
    chunks = chunk_words(words, 10, 2)
    assert chunks[0].split()[-2:] == chunks[1].split()[:2]  # 2 words of overlap
    assert chunks[-1].split()[-1] == "w24" and all(len(c.split()) <= 10 for c in chunks)
    assert chunk_words("short text", 10, 2) == ["short text"] and chunk_words("   ", 10, 2) == []


def test_folder_and_jsonl_corpora(tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha beta gamma", encoding="utf-8")
    (folder / "sub" / "b.md").write_text("# Title\nsome markdown", encoding="utf-8")
    (folder / "ignored.bin").write_bytes(b"\x00\x01")
    passages = load_corpus(folder)
    assert [p["id"] for p in passages] == ["a.txt", "sub/b.md"]
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("\n".join(json.dumps({"id": f"d{i}", "title": "T", "text": f"text {i}"}) for i in range(3)))
    assert [p["id"] for p in load_corpus(jsonl)] == ["d0", "d1", "d2"]


def test_oversize_document_is_chunked_with_a_warning(tmp_path, caplog):
    doc = tmp_path / "long.txt"
    doc.write_text(" ".join(["word"] * 1000), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        passages = load_corpus(doc, chunk_words_max=50, overlap=10, max_chunks=5)
    assert len(passages) > 5 and passages[0]["id"] == "long.txt#0"
    assert "chunked anyway" in caplog.text


@pytest.mark.parametrize("case, field", [
    ("empty_folder", "corpus"), ("not_utf8", "text"), ("missing_text", "line 2.text"), ("bad_json", "line 1"),
    ("missing", "corpus"), ("wrong_suffix", "corpus"), ("duplicate_id", "id"), ("bad_overlap", "overlap"),
])
def test_bad_corpus_names_file_and_field(tmp_path, case, field):
    target = tmp_path / "corpus.jsonl"
    kwargs = {}
    if case == "empty_folder":
        target = tmp_path / "empty"
        target.mkdir()
    elif case == "not_utf8":
        target = tmp_path / "latin1.txt"
        target.write_bytes("café".encode("latin-1"))
    elif case == "missing_text":
        target.write_text('{"id": 1, "text": "ok"}\n{"id": 2, "body": "no text"}\n')
    elif case == "bad_json":
        target.write_text("{not json\n")
    elif case == "missing":
        target = tmp_path / "nope"
    elif case == "wrong_suffix":
        target = tmp_path / "data.csv"
        target.write_text("a,b\n")
    elif case == "duplicate_id":
        target.write_text('{"id": "x", "text": "a"}\n{"id": "x", "text": "b"}\n')
    elif case == "bad_overlap":
        target.write_text('{"id": "x", "text": "a"}\n')
        kwargs = {"chunk_words_max": 10, "overlap": 10}
    with pytest.raises(UserError) as info:
        load_corpus(target, **kwargs)
    assert info.value.field == field and str(target) in str(info.value)
