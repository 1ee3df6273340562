"""Sentence vectors of a corpus: one batched pass, kept on disk, reused by the next process,
recomputed when the stored file does not fit; one picker per corpus in a process."""

from __future__ import annotations

import numpy as np

from workbench.retrieval import sentences as S

CORPUS = {"a": "Paris is in France. It is large.", "b": "Bern is in Switzerland.", "c": "One. Two. Three."}


class FakeEmbed:
    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        rows = [[len(t), sum(map(ord, t)) % 97, 1.0] for t in texts]
        return np.asarray(rows, dtype=np.float32)


def test_whole_corpus_embedded_once_and_saved(tmp_path):
    embed, store = FakeEmbed(), tmp_path / "s.npz"
    picker = S.SentencePicker(embed, corpus=CORPUS, store=store)
    parts, vectors = picker.split("b", CORPUS["b"])
    assert parts == ["Bern is in Switzerland."] and len(vectors) == 1
    assert len(embed.calls) == 1 and len(embed.calls[0]) == 6  # 2 + 1 + 3 sentences in one call
    for pid, text in CORPUS.items():
        picker.split(pid, text)
    assert len(embed.calls) == 1 and store.is_file()
    assert picker.split("c", CORPUS["c"])[0] == ["One.", "Two.", "Three."]

    again = FakeEmbed()
    reloaded = S.SentencePicker(again, corpus=CORPUS, store=store)
    for pid, text in CORPUS.items():
        assert np.array_equal(reloaded.split(pid, text)[1], picker.split(pid, text)[1])
    assert again.calls == []  # the next process reads the file


def test_a_stored_file_that_does_not_fit_is_recomputed(tmp_path):
    store = tmp_path / "s.npz"
    S.SentencePicker(FakeEmbed(), corpus={"x": "Only one."}, store=store).split("x", "Only one.")
    embed = FakeEmbed()
    S.SentencePicker(embed, corpus=CORPUS, store=store).split("a", CORPUS["a"])
    assert len(embed.calls) == 1 and len(embed.calls[0]) == 6
    store.write_bytes(b"not a numpy file")
    embed = FakeEmbed()
    S.SentencePicker(embed, corpus=CORPUS, store=store).split("a", CORPUS["a"])
    assert len(embed.calls) == 1
    assert S.SentencePicker(FakeEmbed(), corpus=CORPUS, store=store)._read([["x"]] * 3) is None  # wrong counts
    picker = S.SentencePicker(FakeEmbed(), corpus=CORPUS, store=store)
    assert picker.split("a", "Paris is in France. It has changed.")[0][1] == "It has changed."  # edited text


def test_a_few_passages_one_by_one_then_the_rest_in_one_pass(tmp_path):
    embed, store = FakeEmbed(), tmp_path / "s.npz"
    picker = S.SentencePicker(embed, corpus=CORPUS, store=store, batch_after=2)
    picker.split("c", CORPUS["c"])
    assert embed.calls == [["One.", "Two.", "Three."]] and not store.exists()  # one query stays cheap
    picker.split("c", CORPUS["c"])
    assert len(embed.calls) == 1
    picker.split("a", CORPUS["a"])  # the second passage needed: the rest of the corpus in one call
    assert embed.calls[1] == ["Paris is in France.", "It is large.", "Bern is in Switzerland."]
    picker.split("b", CORPUS["b"])
    assert len(embed.calls) == 2 and store.is_file()
    again = FakeEmbed()
    reloaded = S.SentencePicker(again, corpus=CORPUS, store=store, batch_after=2)
    for pid, text in CORPUS.items():  # saved in corpus order whatever order they were computed in
        assert np.array_equal(reloaded.split(pid, text)[1], picker.split(pid, text)[1])
    assert again.calls == []


def test_text_outside_the_corpus_is_embedded_on_its_own(tmp_path):
    embed = FakeEmbed()
    picker = S.SentencePicker(embed, corpus=CORPUS, store=tmp_path / "s.npz")
    parts, _ = picker.split("z", "Not in the corpus. At all.")
    assert parts == ["Not in the corpus.", "At all."]
    assert embed.calls == [["Not in the corpus.", "At all."]]  # no corpus pass for an unknown passage


def test_one_picker_per_corpus_in_a_process(tmp_path, monkeypatch):
    from workbench.retrieval import dense

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    embed = FakeEmbed()
    monkeypatch.setattr(dense, "embed", lambda texts, name="all-minilm-l6-v2": embed(texts))
    monkeypatch.setattr(S, "_pickers", {})
    passages = [{"id": k, "title": "t", "text": v} for k, v in CORPUS.items()]
    first, second = S.corpus_picker(passages), S.corpus_picker(list(passages))
    assert first is second and S.corpus_picker(passages[:2]) is not first
    first.split("a", CORPUS["a"])
    assert len(embed.calls) == 1 and len(list((tmp_path / "sentences").glob("*.npz"))) == 1
