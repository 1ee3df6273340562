"""RAG benchmarks on XQuAD-en: retrieval quality and cost per retriever, and answer quality of
the zero-shot vs the optimized program on the same test questions.

    python benchmarks/rag.py                 # all test questions
    python benchmarks/rag.py --answer-n 100  # fewer questions for the LM part

Rewrites the RAG sections of benchmarks/RESULTS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import workbench  # noqa: E402
from benchmarks.results import table, write_sections  # noqa: E402
from metrics.qa import recall_at_k, reciprocal_rank  # noqa: E402
from workbench.registry import datasets, retrievers  # noqa: E402
from workbench.stats import bootstrap_ci  # noqa: E402

SPEC = ROOT / "experiments" / "rag_xquad.yaml"
OFF = ["tracking.enabled=false", "lm.cache=false"]


def retrieval_section(rerank_n: int) -> str:
    data = datasets.get("xquad_en")()
    questions = [row for split in data.splits.values() for row in split]
    test = list(data.splits["test"])
    rows = []
    fresh = tempfile.mkdtemp(prefix="rag-bench-indexes-")  # build times of fresh indexes, not cache loads
    for name in ("bm25", "dense", "hybrid"):
        retriever = retrievers.get(name)(data.corpus)
        os.environ["WORKBENCH_CACHE"], previous = fresh, os.environ.get("WORKBENCH_CACHE")
        start = time.perf_counter()
        retriever.ready()
        built = time.perf_counter() - start
        size = retriever.index_bytes()
        if previous is None:
            del os.environ["WORKBENCH_CACHE"]
        else:
            os.environ["WORKBENCH_CACHE"] = previous
        latencies, ranked = [], []
        for q in questions:
            t = time.perf_counter()
            ranked.append([h.id for h in retriever.search(q["question"], 10)])
            latencies.append(time.perf_counter() - t)
        golds = [q["gold_passage"] for q in questions]
        recall = {k: np.mean([recall_at_k(r, g, k) for r, g in zip(ranked, golds)]) for k in (1, 5, 10)}
        mrr = np.mean([reciprocal_rank(r, g) for r, g in zip(ranked, golds)])
        rows.append([name, str(len(questions)), *(f"{recall[k]:.3f}" for k in (1, 5, 10)), f"{mrr:.3f}",
                     f"{built:.1f}" + (" (cached)" if retriever.loaded_from_cache else ""),
                     f"{np.percentile(latencies, 50) * 1000:.1f}", f"{np.percentile(latencies, 95) * 1000:.1f}",
                     f"{size / 1024:.0f}"])
        print("  ", rows[-1], flush=True)
    # the program's own rerank paths, on the test questions (the learned reranker is fitted on train)
    for label, overrides, n in (("hybrid (test)", ["program.params.rerank=none"], len(test)),
                                ("hybrid + learned rerank", ["program.params.rerank=learned"], len(test)),
                                ("hybrid + LM rerank (top 5)", ["program.params.rerank=lm", "program.params.rerank_depth=5"],
                                 rerank_n)):
        rows.append(_program_ranking_row(label, overrides, n))
        print("  ", rows[-1], flush=True)
    return ("## RAG-retrieval: XQuAD-en (240 passages)\n\n"
            "bm25/dense/hybrid over all 1,190 questions; the rerankers on the test questions (the learned "
            "reranker's fit on the 744 train questions is its build time; the LM reranker on the first n). "
            "Hybrid = reciprocal-rank fusion (weights 1/1, rrf_k 60). Build time is a fresh index build "
            "(hybrid: its two parts, already built, are loaded), including the embedding model's first load. "
            "For comparison on the same 206 test questions, hybrid alone: see the `hybrid (test)` row.\n\n"
            + table(["retriever", "n", "recall@1", "recall@5", "recall@10", "MRR", "build s", "p50 ms", "p95 ms",
                     "index KiB"], rows) + "\n")


def _program_ranking_row(label: str, overrides: list[str], n: int) -> list[str]:
    import dspy

    from workbench.lm import build_lm
    from workbench.lm.adapters import build_adapter

    spec = workbench.load_spec(SPEC, OFF + [f"dataset.test={n}", "optimizer.name=none", "optimizer.params={}"]
                               + overrides)
    prepared = workbench.prepare(spec)
    lm = build_lm(spec.lm)
    dspy.configure(lm=lm, adapter=build_adapter(spec.lm.adapter))
    program = prepared.program
    start = time.perf_counter()
    program.warm_up()
    built = time.perf_counter() - start
    ranked, latencies = [], []
    for ex in prepared.evalset:
        t = time.perf_counter()
        ranked.append(program.rank(ex.question))
        latencies.append(time.perf_counter() - t)
    golds = [ex.gold_passage for ex in prepared.evalset]
    recall = {k: np.mean([recall_at_k(r, g, k) for r, g in zip(ranked, golds)]) for k in (1, 5, 10)}
    mrr = np.mean([reciprocal_rank(r, g) for r, g in zip(ranked, golds)])
    return [label, str(len(golds)), *(f"{recall[k]:.3f}" for k in (1, 5, 10)), f"{mrr:.3f}", f"{built:.1f}",
            f"{np.percentile(latencies, 50) * 1000:.1f}", f"{np.percentile(latencies, 95) * 1000:.1f}", "-"]


ANSWER_PROGRAMS = (  # label, overrides; the last is the spec as written
    ("free span, zero-shot", ["program.params.answer_mode=free", "optimizer.name=none", "optimizer.params={}"]),
    ("free span + retrieval_demos k=2", ["program.params.answer_mode=free", "optimizer.params.k=2"]),
    ("choose span, zero-shot", ["optimizer.name=none", "optimizer.params={}"]),
    ("choose span + retrieval_demos k=3 (spec default)", []),
)


def answers_section(n: int) -> str:
    rows, tables, baseline = [], {}, None
    for label, overrides in ANSWER_PROGRAMS:
        spec = workbench.load_spec(SPEC, OFF + [f"dataset.test={n}"] + overrides)
        out = workbench.run(spec)
        r, m = out.result, out.summary_metrics
        tables[label] = r.table.set_index("id").score
        rows.append([label, str(r.n), f"{m['answer.exact_match']:.3f}", f"{r.score:.3f}",
                     f"{r.ci[0]:.3f}-{r.ci[1]:.3f}", f"{m['answer.citation_precision']:.3f}",
                     f"{m['answer.groundedness']:.3f}", f"{m['retrieval.recall_at_1']:.3f}", str(r.failures),
                     f"{r.seconds / max(r.n, 1):.2f}"])
        baseline = out.baselines[0] if out.baselines else baseline
        print("  ", rows[-1], flush=True)
    if baseline is not None:
        rows.append([f"{baseline.name} (no LM: BM25 top passage, best sentence, top-ranked span)",
                     str(len(baseline.scores)), "-", f"{baseline.score:.3f}",
                     f"{baseline.ci[0]:.3f}-{baseline.ci[1]:.3f}", "-", "-", "-", "0",
                     f"{baseline.seconds / max(len(baseline.scores), 1):.3f}"])
    final = tables[ANSWER_PROGRAMS[-1][0]]
    lines = []
    for base in (ANSWER_PROGRAMS[0][0], ANSWER_PROGRAMS[2][0]):
        zero = tables[base].reindex(final.index)
        low, high = bootstrap_ci((final - zero).to_numpy())
        ratio = final.mean() / max(zero.mean(), 1e-9)
        lines.append(f"- spec default vs **{base}**: F1 ratio **{ratio:.2f}**; paired bootstrap 95% CI of the "
                     f"per-question gain {low:.3f} to {high:.3f} ({'excludes' if low > 0 or high < 0 else 'includes'} 0).")
    return ("## RAG-answers: XQuAD-en test questions, embedded LM\n\n"
            "All rows: hybrid retrieval + learned reranker, top 2 passages. *free*: the LM writes a span (≤ 80 chars) "
            "and cites passages; *choose*: the LM picks one of 4 candidate spans cut from the best sentence by rules. "
            "Optimizer `retrieval_demos`: the k most similar training questions with gold answers as demos (no LM "
            "calls to compile).\n\n"
            + table(["program", "n", "EM", "F1", "F1 95% CI", "citation precision", "groundedness", "recall@1",
                     "failures", "s/question"], rows)
            + "\n\nTarget: optimized F1 ≥ 2× the zero-shot program's.\n" + "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answer-n", type=int, default=206, help="test questions for the answer comparison")
    parser.add_argument("--rerank-n", type=int, default=60, help="test questions for the LM reranker")
    parser.add_argument("--only", choices=["retrieval", "answers"], action="append")
    args = parser.parse_args()
    args.only = set(args.only or ["retrieval", "answers"])
    sections = []
    if "retrieval" in args.only:
        sections.append(retrieval_section(args.rerank_n))
        write_sections(sections, "benchmarks/rag.py")
    if "answers" in args.only:
        sections.append(answers_section(args.answer_n))
        write_sections(sections, "benchmarks/rag.py")
    print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
