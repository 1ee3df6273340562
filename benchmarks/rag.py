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
from benchmarks.routing import RESULTS, _split_sections, table  # noqa: E402
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
    # hybrid + LM rerank: the program's own path (the LM picks the best of the top 5)
    spec = workbench.load_spec(SPEC, OFF + [f"dataset.test={rerank_n}", "optimizer.name=none", "optimizer.params={}",
                                            "program.params.rerank=lm", "program.params.rerank_depth=5"])
    prepared = workbench.prepare(spec)
    from workbench.lm import build_lm
    from workbench.lm.adapters import build_adapter
    import dspy

    lm = build_lm(spec.lm)
    dspy.configure(lm=lm, adapter=build_adapter(spec.lm.adapter))
    program = prepared.program
    program.warm_up()
    ranked, latencies = [], []
    for ex in prepared.evalset:
        t = time.perf_counter()
        ranked.append(program.rank(ex.question))
        latencies.append(time.perf_counter() - t)
    golds = [ex.gold_passage for ex in prepared.evalset]
    recall = {k: np.mean([recall_at_k(r, g, k) for r, g in zip(ranked, golds)]) for k in (1, 5, 10)}
    mrr = np.mean([reciprocal_rank(r, g) for r, g in zip(ranked, golds)])
    rows.append(["hybrid + LM rerank (top 5)", str(len(golds)), *(f"{recall[k]:.3f}" for k in (1, 5, 10)),
                 f"{mrr:.3f}", "-", f"{np.percentile(latencies, 50) * 1000:.0f}",
                 f"{np.percentile(latencies, 95) * 1000:.0f}", "-"])
    print("  ", rows[-1], flush=True)
    return ("## RAG-retrieval: XQuAD-en (240 passages)\n\n"
            "bm25/dense/hybrid over all 1,190 questions; the LM reranker on the first n test questions. "
            "Hybrid = reciprocal-rank fusion (weights 1/1, rrf_k 60). Build time is a fresh index build "
            "(hybrid: its two parts, already built, are loaded), including the embedding model's first load.\n\n"
            + table(["retriever", "n", "recall@1", "recall@5", "recall@10", "MRR", "build s", "p50 ms", "p95 ms",
                     "index KiB"], rows) + "\n")


def answers_section(n: int) -> str:
    rows, tables = [], {}
    for label, overrides in (("zero-shot (optimizer none)", ["optimizer.name=none", "optimizer.params={}"]),
                             ("retrieval_demos k=2 (spec default)", [])):
        spec = workbench.load_spec(SPEC, OFF + [f"dataset.test={n}"] + overrides)
        out = workbench.run(spec)
        r, m = out.result, out.summary_metrics
        tables[label] = r.table.set_index("id").score
        rows.append([label, str(r.n), f"{m['answer.exact_match']:.3f}", f"{r.score:.3f}",
                     f"{r.ci[0]:.3f}-{r.ci[1]:.3f}", f"{m['answer.citation_precision']:.3f}",
                     f"{m['answer.groundedness']:.3f}", f"{m['retrieval.recall_at_1']:.3f}", str(r.failures),
                     f"{r.seconds / max(r.n, 1):.2f}"])
        print("  ", rows[-1], flush=True)
    zero, opt = tables["zero-shot (optimizer none)"], tables["retrieval_demos k=2 (spec default)"]
    diff = (opt - zero.reindex(opt.index)).to_numpy()
    low, high = bootstrap_ci(diff)
    ratio = opt.mean() / max(zero.mean(), 1e-9)
    return ("## RAG-answers: XQuAD-en test questions, embedded LM\n\n"
            + table(["program", "n", "EM", "F1", "F1 95% CI", "citation precision", "groundedness", "recall@1",
                     "failures", "s/question"], rows)
            + f"\n\nF1 ratio optimized/zero-shot = **{ratio:.2f}** (target ≥ 2); paired bootstrap 95% CI of the "
              f"per-question F1 gain: {low:.3f} to {high:.3f} ({'excludes' if low > 0 or high < 0 else 'includes'} 0).\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answer-n", type=int, default=206, help="test questions for the answer comparison")
    parser.add_argument("--rerank-n", type=int, default=206, help="test questions for the LM reranker")
    args = parser.parse_args()
    stamp = f"_Measured {time.strftime('%Y-%m-%d %H:%M')} with `benchmarks/rag.py {' '.join(sys.argv[1:])}`._\n"
    merged = _split_sections(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    for make in (lambda: retrieval_section(args.rerank_n), lambda: answers_section(args.answer_n)):
        text = make()
        heading, _, body = text.partition("\n\n")
        merged[text.split()[1]] = f"{heading}\n\n{stamp}\n{body}"
        head, _, _ = RESULTS.read_text(encoding="utf-8").partition("\n## ") if RESULTS.exists() else ("", "", "")
        RESULTS.write_text(head.rstrip() + "\n\n" + "\n".join(merged.values()), encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
