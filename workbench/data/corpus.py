"""A user's own document collection as retrieval passages: a folder of .txt/.md files or a
JSONL of `{id, title, text}` records, split into overlapping word-window chunks.

Every passage is `{id, title, text, document}`; a chunk's id is `<doc id>#<chunk number>`. A document
longer than one chunk is chunked (with a warning when it exceeds `max_chunks`, so a user
notices a corpus that was meant to be passage-sized).
"""

from __future__ import annotations

import logging
from pathlib import Path

from workbench.data import jsonl_records, read_text
from workbench.errors import UserError

log = logging.getLogger(__name__)
TEXT_SUFFIXES = (".txt", ".md")


def chunk_words(text: str, size: int, overlap: int) -> list[str]:
    """Windows of `size` words, each starting `size - overlap` words after the previous."""
    words = text.split()
    if len(words) <= size:
        return [" ".join(words)] if words else []
    step = size - overlap
    return [" ".join(words[start:start + size]) for start in range(0, max(len(words) - overlap, 1), step)]


def _documents(path: Path) -> list[dict]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        return [{"id": str(f.relative_to(path)), "title": f.stem, "text": read_text(f, "text")} for f in files]
    if path.suffix.lower() == ".jsonl":
        docs = []
        for number, record in jsonl_records(path, "text"):
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise UserError(f"line {number} has no string `text`", file=str(path), field=f"line {number}.text")
            docs.append({"id": str(record.get("id", number)), "title": str(record.get("title", "")),
                         "text": record["text"]})
        return docs
    if path.suffix.lower() in TEXT_SUFFIXES:
        return [{"id": path.name, "title": path.stem, "text": read_text(path, "text")}]
    raise UserError("a corpus is a folder of .txt/.md files or a .jsonl file", file=str(path), field="corpus")


def load_corpus(path: str | Path, *, chunk_words_max: int = 200, overlap: int = 40, max_chunks: int = 50) -> list[dict]:
    """Passages of the corpus at `path`; errors name the file and field."""
    path = Path(path)
    if not path.exists():
        raise UserError("corpus not found", file=str(path), field="corpus")
    if not 0 <= overlap < chunk_words_max:
        raise UserError(f"overlap must be in [0, chunk size {chunk_words_max})", file=str(path), field="overlap")
    passages, seen = [], set()
    for doc in _documents(path):
        if doc["id"] in seen:
            raise UserError(f"duplicate document id {doc['id']!r}", file=str(path), field="id")
        seen.add(doc["id"])
        chunks = chunk_words(doc["text"], chunk_words_max, overlap)
        if len(chunks) > max_chunks:
            log.warning("%s: document %r is %d chunks long; chunked anyway", path, doc["id"], len(chunks))
        if len(chunks) == 1:
            passages.append({"id": doc["id"], "title": doc["title"], "text": chunks[0], "document": doc["id"]})
        else:
            passages += [{"id": f"{doc['id']}#{i}", "title": doc["title"], "text": c, "document": doc["id"]}
                         for i, c in enumerate(chunks)]
    if not passages:
        raise UserError("the corpus has no text", file=str(path), field="corpus")
    return passages
