"""Retrieval-augmented QA: retrieve k passages, optionally rerank, answer from the top n
with citations.

Rerankers: `learned` (logistic regression over cheap relevance signals, fitted on the
training questions; see `workbench/retrieval/learned_rerank.py`) or `lm` (a DSPy predictor
picks the best of the top `rerank_depth`, so optimizers can improve it).

Answer modes: `free` — the LM writes a span (≤ `answer_chars`) and cites passages;
`choose` — the best sentence of the top n is found by embeddings, its phrases are ranked
by cheap rules (`programs/answer_spans.py`), and the LM picks one of the top `choices`
under a grammar. On a 135M LM `choose` is the one that works.

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

import time
from typing import Annotated, Any, Literal

import dspy
from pydantic import Field, StringConstraints

from metrics.qa import token_f1
from programs.answer_spans import rank_spans
from programs.pool import ExamplePool
from workbench.baselines import BaselineScore, task_baseline
from workbench.data import TaskData
from workbench.program_contract import own_demos
from workbench.registry import program, retrievers
from workbench.retrieval.learned_rerank import LearnedReranker
from workbench.retrieval.sentences import corpus_picker
from workbench.traces import span

ANSWER_INSTRUCTIONS = ("Answer the question with a short span copied from the passages, and cite the "
                       "numbers of the passages that contain it.")
RERANK_INSTRUCTIONS = "Which passage answers the question?"
CHOOSE_INSTRUCTIONS = "Pick the span of the context that answers the question."
ANSWER_MODES = ("free", "choose")
RERANKERS = ("none", "learned", "lm")


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


def choose_signature(instructions: str = CHOOSE_INSTRUCTIONS) -> type[dspy.Signature]:
    """The answer's type is replaced per question by a Literal of that question's spans."""
    return dspy.Signature({
        "question": (str, dspy.InputField()),
        "context": (str, dspy.InputField(desc="the sentence most likely to hold the answer")),
        "answer": (str, dspy.OutputField(desc="the span of the context that answers the question")),
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
                 rerank_depth: int = 5, answer_mode: str = "free", choices: int = 4, passage_chars: int = 600,
                 demo_passage_chars: int = 300, answer_chars: int = 80, instructions: str | None = None,
                 pool: ExamplePool | None = None, retriever_spec: tuple[str, dict] | None = None):
        super().__init__()
        if k < 1:
            raise ValueError("k must be at least 1")
        if not 1 <= n <= k:
            raise ValueError(f"n must be between 1 and k ({k})")
        if rerank not in RERANKERS:
            raise ValueError(f"rerank must be one of {', '.join(RERANKERS)}")
        if answer_mode not in ANSWER_MODES:
            raise ValueError(f"answer_mode must be one of {', '.join(ANSWER_MODES)}")
        if choices < 2:
            raise ValueError("choices must be at least 2")
        self.retriever = retriever
        self.retriever_spec = retriever_spec  # (registered name, params): how a bundle rebuilds it
        self.passages = passages
        self._settings = {"k": k, "n": n, "rerank": rerank, "rerank_depth": rerank_depth, "answer_mode": answer_mode,
                          "choices": choices, "passage_chars": passage_chars, "demo_passage_chars": demo_passage_chars,
                          "answer_chars": answer_chars}
        self.k, self.n, self.passage_chars, self.demo_passage_chars = k, n, passage_chars, demo_passage_chars
        self.answer_mode, self.choices = answer_mode, choices
        self.demo_pool = pool or ExamplePool("question", "answers", extra_fields=("gold_passage",))
        self._demo_cache: dict[str, dspy.Example] = {}
        self.rerank_depth = min(rerank_depth, k)
        if answer_mode == "choose":
            self.answer = dspy.Predict(choose_signature(instructions or CHOOSE_INSTRUCTIONS))
            self.sentences = corpus_picker(list(passages.values()))
        else:
            self.answer = dspy.Predict(answer_signature(n, instructions or ANSWER_INSTRUCTIONS, answer_chars))
        self.rerank = dspy.Predict(rerank_signature(self.rerank_depth)) if rerank == "lm" else None
        self.learned = LearnedReranker(list(passages.values())) if rerank == "learned" else None
        self.table_fields = ("retrieved", "citations") + (("context", "options") if answer_mode == "choose" else ())
        self.serve_fields = ("passages",)

    # -- export: the corpus and its indexes travel in the bundle ------------------------------
    def _index_roles(self) -> dict:
        roles = {f"retriever.{i}": part for i, part in enumerate(self.retriever.parts())}
        if self.learned is not None:
            bm25, dense = self.learned.signal_retrievers()
            roles.update({"reranker.bm25": bm25, "reranker.dense": dense})
        return roles

    no_plain_prompt = ("its answer predictor is shown passages the program retrieves per question (and, in choose mode, "
                       "answer spans it computes), so its prompt has no fixed shape; export it as a bundle")

    def export_config(self) -> dict:
        if self.retriever_spec is None:
            raise ValueError("this RAG program was built without a registered retriever; it cannot be exported")
        name, params = self.retriever_spec
        return {"retriever": name, "retriever_params": dict(params), **self._settings}

    def export_files(self, folder, max_corpus_bytes: int | None = None) -> dict:
        from workbench.retrieval.bundled import export_indexes, write_corpus

        size = write_corpus(folder, list(self.passages.values()), max_corpus_bytes)
        return {"corpus": "corpus.jsonl", "corpus_bytes": size, "indexes": export_indexes(folder, self._index_roles())}

    @classmethod
    def from_export_config(cls, config: dict, folder=None) -> RAG:
        from workbench.retrieval.bundled import load_indexes, read_corpus

        if folder is None:
            raise ValueError("a RAG program is rebuilt from a bundle folder (its corpus and indexes)")
        passages = read_corpus(folder)
        params = config.get("retriever_params") or {}
        retriever = retrievers.get(config["retriever"], field="retriever")(passages, **params)
        settings = {k: config[k] for k in ("k", "n", "rerank", "rerank_depth", "answer_mode", "choices",
                                           "passage_chars", "demo_passage_chars", "answer_chars")}
        built = cls(retriever, {p["id"]: p for p in passages}, retriever_spec=(config["retriever"], params), **settings)
        load_indexes(folder, built._index_roles(), config.get("files", {}).get("indexes", {}))
        retriever._ready = True  # a fusion retriever is ready once its parts are
        return built

    def warm_up(self) -> None:
        """Load (or build) the indexes, the demo index, and fit the learned reranker once."""
        if not self.retriever.is_ready:
            self.retriever.ready()
        if self.demo_pool.k and self.demo_pool.examples:
            self.demo_pool.index()
        if self.learned is not None and not self.learned.fitted and self.demo_pool.examples:
            examples = self.demo_pool.examples
            self.learned.fit([e["question"] for e in examples], [e["gold_passage"] for e in examples], self._first_stage)

    def index_dirs(self) -> list:
        """The built retrieval indexes, logged with the run (fingerprinted folder names)."""
        return list(getattr(self.retriever, "index_dirs", [self.retriever.index_dir]))

    def _numbered(self, ids: list[str], chars: int) -> str:
        return "\n".join(f"[{i}] {self.passages[pid].get('title', '')}: {self.passages[pid]['text'][:chars]}"
                         for i, pid in enumerate(ids, 1))

    def _first_stage(self, question: str) -> list[str]:
        return [hit.id for hit in self.retriever.search(question, self.k)]

    def rank(self, question: str) -> list[str]:
        """The k retrieved passage ids, best first, after reranking."""
        with span("retrieve", "RETRIEVER", {"question": question, "k": self.k}) as out:
            ranked = self._first_stage(question)
            out["outputs"] = [{"id": pid, "text": self.passages[pid]["text"][:300]}
                              for pid in ranked if pid in self.passages]
        if self.learned is not None:
            if not self.learned.fitted:
                self.warm_up()
            with span("rerank (learned)", "RERANKER", {"question": question, "ids": ranked}) as out:
                ranked = out["outputs"] = self.learned.rerank(question, ranked)
        if self.rerank is not None and len(ranked) > 1:
            head = ranked[:self.rerank_depth]
            best = self.rerank(question=question, passages=self._numbered(head, self.passage_chars // 2),
                               **own_demos(self, "rerank")).best
            chosen = head[int(best) - 1]
            ranked = [chosen] + [pid for pid in ranked if pid != chosen]
        return ranked

    # -- demos: retrieval only, no LM calls ------------------------------------------------
    def _demo(self, item: dict) -> dspy.Example:
        """A complete answer demo for a training question (cached)."""
        key = item["question"]
        if key not in self._demo_cache:
            gold = item["gold_passage"]
            if self.answer_mode == "choose":
                _, sentence = self.sentences.best(item["question"], [(gold, self.passages[gold]["text"])])
                demo = dspy.Example(question=item["question"], context=sentence, answer=item["answers"][0])
            else:
                shown = self._first_stage(item["question"])[:self.n]
                if gold not in shown:
                    shown = shown[:self.n - 1] + [gold]
                demo = dspy.Example(question=item["question"], passages=self._numbered(shown, self.demo_passage_chars),
                                    answer=item["answers"][0], citations=[str(shown.index(gold) + 1)])
            self._demo_cache[key] = demo
        return self._demo_cache[key]

    def as_demo(self, predictor: str, example: Any) -> Any:
        """A demo as the named predictor reads it. Raw training examples (question, answers,
        gold_passage: what LabeledFewShot and the labeled part of the bootstrap optimizers copy
        in) become the predictor's own fields, built like the retrieved demos; a demo already in
        its fields (a bootstrapped trace) is kept; None when its gold passage is not in the corpus."""
        if "answers" not in example or "gold_passage" not in example or "question" not in example:
            return example
        question, gold = example["question"], example["gold_passage"]
        if gold not in self.passages or not list(example["answers"]):
            return None
        if predictor != "rerank":
            return self._demo({"question": question, "answers": list(example["answers"]), "gold_passage": gold})
        key = f"rerank\n{question}"  # cached: compiled demos are mapped on every call, retrieval is not free
        if key not in self._demo_cache:
            head = self._first_stage(question)[:self.rerank_depth]
            if gold not in head:
                head = head[:self.rerank_depth - 1] + [gold]
            self._demo_cache[key] = dspy.Example(question=question, best=str(head.index(gold) + 1),
                                                 passages=self._numbered(head, self.passage_chars // 2))
        return self._demo_cache[key]

    def _demos(self, question: str) -> dict:
        """The answer predictor's demos: the retrieved ones when the pool retrieves, else its
        compiled ones in its own fields (never `demos=[]`, which would replace them)."""
        if self.demo_pool.k and self.demo_pool.examples:
            return {"demos": [self._demo(d) for d in self.demo_pool.nearest(question, self.demo_pool.k)]}
        return own_demos(self, "answer")

    # -- answering -----------------------------------------------------------------------
    def spans(self, question: str, top: list[str]) -> tuple[str, str, list[str]]:
        """(passage id, best sentence, candidate spans best first) — no LM."""
        pid, sentence = self.sentences.best(question, [(p, self.passages[p]["text"]) for p in top])
        return pid, sentence, [span.text for span in rank_spans(question, sentence, self.choices)]

    def _choose(self, question: str, top: list[str]) -> dict:
        pid, sentence, options = self.spans(question, top)
        if len(options) < 2:  # nothing to choose: the only span (or the sentence) is the answer
            return {"answer": options[0] if options else sentence, "citations": [pid], "context": sentence,
                    "options": options}
        signature = self.answer.signature.with_updated_fields("answer", type_=Literal[tuple(options)])
        out = self.answer(question=question, context=sentence, signature=signature, **self._demos(question))
        return {"answer": out.answer, "citations": [pid], "context": sentence, "options": options}

    def _free(self, question: str, top: list[str]) -> dict:
        out = self.answer(question=question, passages=self._numbered(top, self.passage_chars), **self._demos(question))
        cited = [top[int(c) - 1] for c in dict.fromkeys(out.citations or []) if str(c).isdigit()
                 and 1 <= int(c) <= len(top)]
        return {"answer": out.answer, "citations": cited}

    def forward(self, question: str) -> dspy.Prediction:
        ranked = self.rank(question)
        top = ranked[:self.n]
        try:
            fields = self._choose(question, top) if self.answer_mode == "choose" else self._free(question, top)
        except Exception as exc:  # the answer failed (counted); retrieval did not, keep it measurable
            exc.partial_fields = {"retrieved": ranked}
            raise
        cited = [{"id": pid, "title": self.passages[pid].get("title", ""), "text": self.passages[pid]["text"]}
                 for pid in fields["citations"] if pid in self.passages]
        return dspy.Prediction(retrieved=ranked, passages=cited, **fields)


@program("rag")
def rag(data: TaskData, *, retriever: str = "hybrid", retriever_params: dict | None = None, k: int = 10, n: int = 3,
        rerank: str = "none", rerank_depth: int = 5, answer_mode: str = "free", choices: int = 4,
        passage_chars: int = 600, demo_passage_chars: int = 300, answer_chars: int = 80,
        instructions: str | None = None) -> RAG:
    """Retrieve k (bm25 | dense | hybrid), rerank (none | learned | lm), answer from n (free | choose)."""
    if not data.corpus:
        raise ValueError(f"dataset {data.name} has no passage corpus; rag needs one")
    for name, value in (("k", k), ("n", n), ("rerank_depth", rerank_depth), ("choices", choices),
                        ("passage_chars", passage_chars), ("demo_passage_chars", demo_passage_chars),
                        ("answer_chars", answer_chars)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    factory = retrievers.get(retriever, field="program.params.retriever")
    built = factory(data.corpus, **(retriever_params or {}))
    return RAG(built, {p["id"]: p for p in data.corpus}, k=k, n=n, rerank=rerank, rerank_depth=rerank_depth,
               answer_mode=answer_mode, choices=choices, passage_chars=passage_chars,
               demo_passage_chars=demo_passage_chars, answer_chars=answer_chars, instructions=instructions,
               pool=training_pool(data), retriever_spec=(retriever, dict(retriever_params or {})))


def training_pool(data: TaskData) -> ExamplePool:
    """The train split's questions, answers and gold passages (demos; the reranker's data)."""
    train = data.splits["train"]
    return ExamplePool("question", "answers", [{"question": q, "answers": list(a), "gold_passage": g} for q, a, g in
                                               zip(train["question"], train["answers"], train["gold_passage"])],
                       extra_fields=("gold_passage",))


@task_baseline("rag")
def extractive_baseline(data: TaskData, questions: list[str], answers: list[list[str]]) -> list[BaselineScore]:
    """No LM: BM25 top passage -> its sentence most like the question -> the top-ranked span."""
    start = time.perf_counter()
    reader = RAG(retrievers.get("bm25")(data.corpus).ready(), {p["id"]: p for p in data.corpus}, k=1, n=1,
                 answer_mode="choose")
    scores = []
    for question, gold in zip(questions, answers):
        _, sentence, options = reader.spans(question, reader.rank(question))
        scores.append(token_f1(options[0] if options else sentence, list(gold)))
    return [BaselineScore("extractive_bm25_span", scores, time.perf_counter() - start)]
