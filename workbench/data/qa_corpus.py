"""A user's own RAG task: a document collection plus a JSONL of questions.

    dataset:
      name: qa_corpus
      params: {corpus: docs/, questions: qa.jsonl, chunk_words: 200, overlap: 40}

The corpus is a folder of .txt/.md files or a JSONL of `{id, title, text}` (see
`corpus.py`). Each question line is `{"question": ..., "answers": [...] (or "answer"),
"gold_passage": <document or chunk id>, "id": optional}`. A gold document that was
chunked resolves to its first chunk holding the answer. Questions are split into
train/dev/test by gold document (no document in two splits), seeded. Paths are relative
to the working directory.
"""

from __future__ import annotations

import random
from pathlib import Path

import datasets as hf

from workbench.data import TaskData, fingerprint_files, jsonl_records
from workbench.data.corpus import load_corpus
from workbench.errors import UserError
from workbench.registry import dataset

FRACTIONS = (0.6, 0.2)  # train, dev; test gets the rest


def _gold_chunk(gold: str, answers: list[str], passages: dict[str, dict], chunks_of: dict[str, list[str]]) -> str:
    if gold in passages:
        return gold
    for pid in chunks_of.get(gold, []):
        if any(a.lower() in passages[pid]["text"].lower() for a in answers):
            return pid
    return chunks_of[gold][0] if gold in chunks_of else ""


def _questions(path: Path, passages: dict[str, dict], chunks_of: dict[str, list[str]]) -> list[dict]:
    if not path.is_file():
        raise UserError("questions file not found", file=str(path), field="dataset.params.questions")
    rows = []
    for number, record in jsonl_records(path, "questions"):
        if not isinstance(record, dict) or not isinstance(record.get("question"), str) or not record["question"].strip():
            raise UserError(f"line {number} has no string `question`", file=str(path), field=f"line {number}.question")
        answers = record.get("answers", [record["answer"]] if "answer" in record else [])
        if isinstance(answers, str):
            answers = [answers]
        if not answers or not all(isinstance(a, str) and a.strip() for a in answers):
            raise UserError(f"line {number} has no answer (`answers`: list of strings, or `answer`)", file=str(path),
                            field=f"line {number}.answers")
        gold = record.get("gold_passage")
        if not isinstance(gold, str) or not gold:
            raise UserError(f"line {number} has no `gold_passage`", file=str(path), field=f"line {number}.gold_passage")
        chunk = _gold_chunk(gold, answers, passages, chunks_of)
        if not chunk:
            raise UserError(f"line {number}: gold_passage {gold!r} is not a document or passage of the corpus",
                            file=str(path), field=f"line {number}.gold_passage")
        rows.append({"id": str(record.get("id", f"q{number}")), "question": record["question"], "answers": answers,
                     "gold_passage": chunk, "document": passages[chunk]["document"]})
    if len(rows) < 3:
        raise UserError(f"{len(rows)} questions; train, dev and test need at least one each", file=str(path),
                        field="questions")
    return rows


@dataset("qa_corpus")
def qa_corpus(corpus: str | None = None, questions: str | None = None, chunk_words: int = 200, overlap: int = 40,
              seed: int = 13) -> TaskData:
    """Your documents + your questions (with gold passages) as a RAG task."""
    if not corpus or not questions:
        missing = "corpus" if not corpus else "questions"
        raise UserError(f"qa_corpus needs `{missing}` (a path)", field=f"dataset.params.{missing}")
    passages_list = load_corpus(corpus, chunk_words_max=chunk_words, overlap=overlap)
    passages, chunks_of = {}, {}
    for p in passages_list:
        passages[p["id"]] = p
        chunks_of.setdefault(p["document"], []).append(p["id"])
    rows = _questions(Path(questions), passages, chunks_of)
    documents = sorted({r["document"] for r in rows})
    random.Random(seed).shuffle(documents)
    n_train = max(1, round(len(documents) * FRACTIONS[0]))
    n_dev = max(1, round(len(documents) * FRACTIONS[1]))
    if len(documents) < 3:  # too few documents to keep them apart: split the questions instead
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        cut1, cut2 = max(1, round(len(rows) * FRACTIONS[0])), max(2, round(len(rows) * sum(FRACTIONS)))
        groups = {"train": order[:cut1], "validation": order[cut1:cut2], "test": order[cut2:]}
    else:
        split_of = {d: ("train" if i < n_train else "validation" if i < n_train + n_dev else "test")
                    for i, d in enumerate(documents)}
        groups = {s: [i for i, r in enumerate(rows) if split_of[r["document"]] == s]
                  for s in ("train", "validation", "test")}
    columns = ("id", "question", "answers", "gold_passage")
    splits = hf.DatasetDict({s: hf.Dataset.from_dict({c: [rows[i][c] for i in idx] for c in columns},
                                                     features=_features()) for s, idx in groups.items()})
    files = [Path(questions)] + ([Path(corpus)] if Path(corpus).is_file() else sorted(Path(corpus).rglob("*.*")))
    return TaskData(name="qa_corpus", splits=splits, input_fields=("question",), label_field="answers", labels=[],
                    fingerprint=fingerprint_files(*files, extra=f"{chunk_words}:{overlap}:{seed}"),
                    corpus=passages_list, output_field="answer", table_fields=("gold_passage",))


qa_corpus.needs_params = True


def _features() -> hf.Features:
    return hf.Features({"id": hf.Value("string"), "question": hf.Value("string"),
                        "answers": hf.Sequence(hf.Value("string")), "gold_passage": hf.Value("string")})
