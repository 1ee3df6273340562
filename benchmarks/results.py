"""benchmarks/RESULTS.md: one section per measurement, each stamped with when and how it
was measured; a script rewrites its own sections and keeps everyone else's."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
ORDER = ["Speed:", "Cost:", "CLINC150,", "BANKING77,", "RAG-retrieval:", "RAG-answers:", "Tools-AST:",
         "Tools-select:", "Tools-exec:", "Tools-GSM8K:", "Optimizers-clinc:", "Optimizers-bfcl:", "Optimizers-budget:", "Finetune:", "Compare:", "Serve:", "Plain-prompt:", "Sweep-overhead:",
         "Sweep-quality:", "Sweep-scaling:", "Own-data-load:", "Own-data-init:",
         "Endpoint-threads:", "Endpoint-workers:", "Endpoint-flaky:", "Endpoint-retry:", "Endpoint-errors:", "Gate:",
         "Tracking-overhead:", "Tracking-throughput:"]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def split_sections(text: str) -> dict[str, str]:
    """'## ' sections of an existing RESULTS.md by their heading's first word."""
    parts = {}
    for chunk in ("\n" + text).split("\n## ")[1:]:
        parts[chunk.split()[0]] = "## " + chunk.rstrip() + "\n"
    return parts


def _position(key: str) -> int:
    """A section's place: its heading word's in ORDER, or that of the word it extends ("Sweep-quality-dev40:")."""
    for i, known in enumerate(ORDER):
        if key == known or key.startswith(known.rstrip(":") + "-"):
            return i
    return len(ORDER)


def write_sections(sections: list[str], script: str) -> None:
    """Replace this run's sections (matched by heading's first word), keep the others."""
    stamp = f"_Measured {time.strftime('%Y-%m-%d %H:%M')} with `{script} {' '.join(sys.argv[1:])}`._\n"
    merged = split_sections(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    for text in sections:
        heading, _, body = text.partition("\n\n")
        merged[text.split()[1]] = f"{heading}\n\n{stamp}\n{body.rstrip()}\n"
    keys = sorted(merged, key=_position)
    head = ["# Benchmark results", "",
            f"Written by the scripts in `benchmarks/` ({platform.machine()}, Python {platform.python_version()}), "
            "embedded SmolLM2-135M-Instruct Q4_1 through llama-cpp-python, LM response cache off, "
            "tracking off. Each section says when and with which arguments it was measured.", ""]
    RESULTS.write_text("\n".join(head) + "\n" + "\n".join(merged[k] for k in keys), encoding="utf-8")
