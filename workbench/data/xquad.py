"""XQuAD (English): 240 Wikipedia passages and 1,190 questions, each with its gold passage.

Questions are split into train/dev/test by article (no article in two splits), seeded, so
a program compiled on train never saw a test passage's questions. The passages of all
articles form the retrieval corpus (`TaskData.corpus`), as in a real deployment.
"""

from __future__ import annotations

import json
import random

import datasets as hf

from workbench.data import TaskData, data_file, fingerprint_files
from workbench.errors import UserError
from workbench.registry import dataset

SPLIT_SEED = 13
SPLIT_FRACTIONS = (0.6, 0.2)  # train, dev; test gets the rest


def passage_id(title: str, index: int) -> str:
    return f"{title}#{index}"


def _articles(path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"not SQuAD-format JSON: {exc}", file=str(path), field="data") from None
    return data


@dataset("xquad_en")
def xquad_en() -> TaskData:
    """Extractive QA over 240 passages; gold passage ids make retrieval measurable."""
    path = data_file("xquad_en", "xquad.en.json")
    articles = _articles(path)
    corpus, rows_by_title = [], {}
    for article in articles:
        title = article["title"]
        rows = rows_by_title.setdefault(title, [])
        for index, paragraph in enumerate(article["paragraphs"]):
            pid = passage_id(title, index)
            corpus.append({"id": pid, "title": title, "text": paragraph["context"]})
            for qa in paragraph["qas"]:
                answers = [a["text"] for a in qa.get("answers", []) if a.get("text")]
                if not answers:
                    raise UserError(f"question {qa.get('id')} has no answer", file=str(path), field="answers")
                rows.append({"id": qa["id"], "question": qa["question"], "answers": answers,
                             "gold_passage": pid, "title": title})
    titles = sorted(rows_by_title)
    random.Random(SPLIT_SEED).shuffle(titles)
    n_train = round(len(titles) * SPLIT_FRACTIONS[0])
    n_dev = round(len(titles) * SPLIT_FRACTIONS[1])
    groups = {"train": titles[:n_train], "validation": titles[n_train:n_train + n_dev],
              "test": titles[n_train + n_dev:]}
    columns = ("id", "question", "answers", "gold_passage", "title")
    splits = {}
    for split, names in groups.items():
        rows = [r for t in sorted(names) for r in rows_by_title[t]]
        splits[split] = hf.Dataset.from_dict({c: [r[c] for r in rows] for c in columns})
    return TaskData(name="xquad_en", splits=hf.DatasetDict(splits), input_fields=("question",),
                    label_field="answers", labels=[], fingerprint=fingerprint_files(path, extra=str(SPLIT_SEED)),
                    corpus=corpus, output_field="answer", table_fields=("gold_passage",))
