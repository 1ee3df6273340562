"""Retrieval-augmented QA: retrieve k passages, optionally rerank, answer from the top n
with citations.

Retrieval (BM25, dense or hybrid; see `workbench/retrieval/`) is deterministic code, built
once per corpus and cached on disk; the LM writes the answer and, optionally, reranks. The
answer predictor cites passages by their position ("1".."n"), a `Literal` the embedded LM
decodes under a grammar, mapped back to passage ids. Every prediction carries `retrieved`
(the ranked ids after reranking) so retrieval and answer quality are measured separately.

Demos: the `retrieval_demos` optimizer sets the demo pool's k; each query then gets the k
most similar training questions as demos, each shown with the passages retrieval finds
for it (the gold passage swapped in if missed), its gold answer and the gold citation.
No LM calls: a small LM learns the format (short span, cite a number) from them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import dspy
from pydantic import Field, StringConstraints

from programs.pool import ExamplePool
from workbench.data import TaskData
from workbench.registry import program, retrievers

ANSWER_INSTRUCTIONS = ("Answer the question with a short span copied from the passages, and cite the "
                       "numbers of the passages that contain it.")
RERANK_INSTRUCTIONS = "Which passage answers the question?"


def answer_signature(n: int, instructions: str = ANSWER_INSTRUCTIONS, answer_chars: int = 80) -> type[dspy.Signature]:
    """Length limits live in the types, so they reach the JSON schema and the embedded LM's
    grammar: a 135M model cannot ramble past `answer_chars` or cite a passage it was not shown."""
    numbers = tuple(str(i) for i in range(1, n + 1))
    answer_type = Annotated[str, StringConstraints(max_length=answer_chars)]
    citations_type = Annotated[list[Literal[numbers]], Field(max_length=n)]
    return dspy.Signature({
        "question": (str, dspy.InputField()),
        "passages": (str, dspy.InputField(desc="numbered passages")),
        "answer": (answer_type, dspy.OutputField(desc="a short span from the passages")),
        "citations": (citations_type, dspy.OutputField(desc="numbers of the passages used")),
    }, instructions)


def rerank_signature(depth: int) -> type[dspy.Signature]:
    numbers = tuple(str(i) for i in range(1, depth + 1))
    return dspy.Signature({
        "question": (str, dspy.InputField()),
        "passages": (str, dspy.InputField(desc="numbered passages")),
        "best": (Literal[numbers], dspy.OutputField(desc="number of the passage that answers the question")),
    }, RERANK_INSTRUCTIONS)


class RAG(dspy.Module):
    """question -> answer, citations (passage ids), retrieved (ranked ids)."""

    def __init__(self, retriever, passages: dict[str, dict], *, k: int = 10, n: int = 3, rerank: str = "none",
                 rerank_depth: int = 5, passage_chars: int = 600, demo_passage_chars: int = 300,
                 answer_chars: int = 80, instructions: str = ANSWER_INSTRUCTIONS, pool: ExamplePool | None = None):
        super().__init__()
        if k < 1:
            raise ValueError("k must be at least 1")
        if not 1 <= n <= k:
            raise ValueError(f"n must be between 1 and k ({k})")
        if rerank not in ("none", "lm"):
            raise ValueError("rerank must be 'none' or 'lm'")
        self.retriever = retriever
        self.passages = passages
        self.k, self.n, self.passage_chars, self.demo_passage_chars = k, n, passage_chars, demo_passage_chars
        self.demo_pool = pool or ExamplePool("question", "answers", extra_fields=("gold_passage",))
        self._demo_cache: dict[str, dspy.Example] = {}
        self.rerank_depth = min(rerank_depth, k)
        self.answer = dspy.Predict(answer_signature(n, instructions, answer_chars))
        self.rerank = dspy.Predict(rerank_signature(self.rerank_depth)) if rerank == "lm" else None

    table_fields = ("retrieved", "citations")

    def warm_up(self) -> None:
        self.retriever.ready()
        if self.demo_pool.k and self.demo_pool.examples:
            self.demo_pool.index()

    def index_dirs(self) -> list:
        """The built retrieval indexes, logged with the run (fingerprinted folder names)."""
        return list(getattr(self.retriever, "index_dirs", [self.retriever.index_dir]))

    def _numbered(self, ids: list[str], chars: int) -> str:
        return "\n".join(f"[{i}] {self.passages[pid].get('title', '')}: {self.passages[pid]['text'][:chars]}"
                         for i, pid in enumerate(ids, 1))

    def _demo(self, item: dict) -> dspy.Example:
        """A complete answer demo for a training question (cached; retrieval only, no LM)."""
        key = item["question"]
        if key not in self._demo_cache:
            shown = [hit.id for hit in self.retriever.search(item["question"], self.n)]
            if item["gold_passage"] not in shown:
                shown = shown[:self.n - 1] + [item["gold_passage"]]
            self._demo_cache[key] = dspy.Example(
                question=item["question"], passages=self._numbered(shown, self.demo_passage_chars),
                answer=item["answers"][0], citations=[str(shown.index(item["gold_passage"]) + 1)])
        return self._demo_cache[key]

    def rank(self, question: str) -> list[str]:
        """The k retrieved passage ids, best first; with the LM reranker, its pick moves first."""
        ranked = [hit.id for hit in self.retriever.search(question, self.k)]
        if self.rerank is not None and len(ranked) > 1:
            head = ranked[:self.rerank_depth]
            best = self.rerank(question=question, passages=self._numbered(head, self.passage_chars // 2)).best
            chosen = head[int(best) - 1]
            ranked = [chosen] + [pid for pid in ranked if pid != chosen]
        return ranked

    def forward(self, question: str) -> dspy.Prediction:
        ranked = self.rank(question)
        top = ranked[:self.n]
        kwargs = {}
        if self.demo_pool.k and self.demo_pool.examples:
            kwargs["demos"] = [self._demo(d) for d in self.demo_pool.nearest(question, self.demo_pool.k)]
        out = self.answer(question=question, passages=self._numbered(top, self.passage_chars), **kwargs)
        cited = [top[int(c) - 1] for c in dict.fromkeys(out.citations or []) if str(c).isdigit()
                 and 1 <= int(c) <= len(top)]
        return dspy.Prediction(answer=out.answer, citations=cited, retrieved=ranked)


@program("rag")
def rag(data: TaskData, *, retriever: str = "hybrid", retriever_params: dict | None = None, k: int = 10, n: int = 3,
        rerank: str = "none", rerank_depth: int = 5, passage_chars: int = 600, demo_passage_chars: int = 300,
        answer_chars: int = 80, instructions: str = ANSWER_INSTRUCTIONS) -> RAG:
    """Retrieve k (bm25 | dense | hybrid), optionally LM-rerank the top rerank_depth, answer from n."""
    if not data.corpus:
        raise ValueError(f"dataset {data.name} has no passage corpus; rag needs one")
    for name, value in (("k", k), ("n", n), ("rerank_depth", rerank_depth), ("passage_chars", passage_chars),
                        ("demo_passage_chars", demo_passage_chars), ("answer_chars", answer_chars)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    factory = retrievers.get(retriever, field="program.params.retriever")
    built = factory(data.corpus, **(retriever_params or {}))
    train = data.splits["train"]
    pool = ExamplePool("question", "answers", [{"question": q, "answers": list(a), "gold_passage": g} for q, a, g in
                                               zip(train["question"], train["answers"], train["gold_passage"])],
                       extra_fields=("gold_passage",))
    return RAG(built, {p["id"]: p for p in data.corpus}, k=k, n=n, rerank=rerank, rerank_depth=rerank_depth,
               passage_chars=passage_chars, demo_passage_chars=demo_passage_chars, answer_chars=answer_chars,
               instructions=instructions,
               pool=pool)
