"""Users' own files, written fresh for each test: a semicolon CSV of tickets, a tool module
with its JSONL of expected calls, and a spec that reads them."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import yaml

QUEUES = {
    "cards": ["my card has not arrived", "I lost my card yesterday", "how do I activate the new card",
              "the card pin is blocked", "order a replacement card please", "card stopped working at the shop"],
    "transfers": ["my transfer did not reach the recipient", "cancel the transfer I sent today",
                  "why was my bank transfer declined", "how long does an international transfer take",
                  "transfer still pending after two days", "send money to my brother's account"],
    "refunds": ["the refund is not showing up", "I want my money back for this order", "request a refund for the fee",
                "merchant refunded but balance unchanged", "refund for a double charge", "where is my refund"],
}

TOOLS = '''"""A team's own tools, in their own module."""
from typing import Literal

from workbench.tools.functions import tool


@tool("order_status")
def order_status(order_id: str) -> str:
    """Look up where an order is.

    Args:
        order_id: the order number, e.g. A1234.
    """
    return f"order {order_id} is in transit"


@tool("convert_price")
def convert_price(amount: float, currency: Literal["EUR", "USD", "GBP"]) -> float:
    """Convert a price in US dollars into another currency.

    Args:
        amount: the price in US dollars.
        currency: the currency to convert into.
    """
    return round(amount * {"EUR": 0.9, "USD": 1.0, "GBP": 0.8}[currency], 2)
'''

CALLS = [("Where is my order A1001?", "order_status", {"order_id": "A1001"}),
         ("Can you track order B2002 for me", "order_status", {"order_id": "B2002"}),
         ("What is 20 dollars in euros?", "convert_price", {"amount": 20, "currency": "EUR"}),
         ("Convert a price of 15.5 dollars to GBP", "convert_price", {"amount": 15.5, "currency": "GBP"}),
         ("Status of order C3003 please", "order_status", {"order_id": "C3003"}),
         ("How much is 100 dollars in pounds?", "convert_price", {"amount": 100, "currency": "GBP"}),
         ("Has order D4004 shipped yet?", "order_status", {"order_id": "D4004"}),
         ("Convert 42 dollars into euros", "convert_price", {"amount": 42, "currency": "EUR"}),
         ("Where is order E5005 now?", "order_status", {"order_id": "E5005"}),
         ("What does an 8 dollar item cost in USD?", "convert_price", {"amount": 8, "currency": "USD"})]


def write_tickets(path: Path, repeat: int = 3, blank_rows: int = 0) -> Path:
    """`id;message;queue` rows (semicolon-separated), a message repeated with a ticket number."""
    lines = ["id;message;queue"]
    n = 0
    for r in range(repeat):
        for queue, messages in QUEUES.items():
            for message in messages:
                n += 1
                lines.append(f"T{n};{message} (ticket {n});{queue}")
    lines += [f"B{i};  ;cards" for i in range(blank_rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# One file for the whole session: its tools register once per process, as in a user's process
# (a second file under the same module name is refused, which a test checks).
_TOOLS_MODULE = Path(tempfile.mkdtemp(prefix="workbench-team-")) / "team_tools.py"
_TOOLS_MODULE.write_text(TOOLS, encoding="utf-8")


def write_tool_task(folder: Path) -> tuple[Path, Path]:
    """The session's tool module (use its absolute path in `imports`) and ten JSONL examples in `folder`."""
    module = _TOOLS_MODULE
    data = folder / "calls.jsonl"
    data.write_text("".join(json.dumps({"question": q, "expected_calls": {"name": n, "arguments": a}}) + "\n"
                            for q, n, a in CALLS), encoding="utf-8")
    return module, data


def write_spec(path: Path, dataset: dict, *, task: str = "routing", program: dict | None = None,
               metric: dict | None = None, tracking: dict | None = None, **extra) -> Path:
    spec = {"name": path.stem, "task": task, **extra, "dataset": dataset,
            "program": program or {"name": "router", "params": {"candidates": 2}},
            "metric": metric or {"name": "accuracy"}, "optimizer": {"name": "retrieval_demos", "params": {"k": 3}},
            "lm": {"max_tokens": 32}, "tracking": tracking or {"enabled": False}}
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def tickets(tmp_path: Path) -> Path:
    return write_tickets(tmp_path / "tickets.csv")
