"""The calculator: arithmetic by AST walk (`workbench/tools/arith.py`), never `eval`."""

from __future__ import annotations

from workbench.tools.arith import evaluate
from workbench.tools.functions import tool


@tool("calculator", trusted=True)
def calculator(expression: str) -> float:
    """Evaluate an arithmetic expression, e.g. "(12 + 3) * 4 / 5".

    Args:
        expression: numbers with + - * / // % ** and parentheses; sqrt, round, min, max.
    """
    return evaluate(expression)
