"""Arithmetic and literals by walking Python's AST: never `eval`, never `exec`.

`evaluate("3 * (4 + 1) / 2")` computes numbers with + - * / // % ** and unary minus,
parentheses, a few math functions and constants; `literal("[1, 2/3, 'a']")` reads Python
literals whose numbers may be arithmetic (BFCL writes `p=1/6`). Anything else — names,
attribute access, calls of other functions, huge powers — is rejected with ArithError.
"""

from __future__ import annotations

import ast
import math
import operator

MAX_EXPONENT = 10_000
MAX_LENGTH = 2_000
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
FUNCTIONS = {"sqrt": math.sqrt, "abs": abs, "round": round, "floor": math.floor, "ceil": math.ceil, "log": math.log,
             "exp": math.exp, "sin": math.sin, "cos": math.cos, "tan": math.tan, "min": min, "max": max}
CONSTANTS = {"pi": math.pi, "e": math.e}


class ArithError(ValueError):
    """Not arithmetic the calculator accepts (the message says what)."""


def _number(node: ast.AST) -> float | int:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in CONSTANTS:
        return CONSTANTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _number(node.left), _number(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ArithError(f"exponent {right} is too large")
        try:
            return _BINARY[type(node.op)](left, right)
        except (ZeroDivisionError, OverflowError) as exc:
            raise ArithError(str(exc)) from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_number(node.operand))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords:
        try:
            return FUNCTIONS[node.func.id](*(_number(a) for a in node.args))
        except (ValueError, TypeError, OverflowError) as exc:
            raise ArithError(f"{node.func.id}: {exc}") from None
    raise ArithError(f"not arithmetic: {ast.dump(node)[:80]}")


def _parse(text: str) -> ast.AST:
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        raise ArithError("expected an expression of at most 2,000 characters")
    try:
        return ast.parse(text.strip().replace("^", "**").replace("×", "*").replace("÷", "/"), mode="eval").body
    except SyntaxError as exc:
        raise ArithError(f"cannot parse {text!r}: {exc.msg}") from None


def evaluate(expression: str) -> float | int:
    """The value of an arithmetic expression (`^` is read as a power)."""
    value = _number(_parse(expression))
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _literal(node: ast.AST):
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bool, type(None))):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    return _number(node)


def literal(text: str):
    """A Python literal (lists, tuples as lists, dicts, strings, numbers incl. arithmetic)."""
    return _literal(ast.parse(text, mode="eval").body)


def parse_call(text: str) -> dict:
    """`f(a=1, b=[2, 3])` -> {"name": "f", "arguments": {"a": 1, "b": [2, 3]}} (keywords only)."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ArithError(f"cannot parse call {text!r}: {exc.msg}") from None
    if not isinstance(node, ast.Call) or node.args:
        raise ArithError(f"expected a call with keyword arguments: {text!r}")
    name = ast.unparse(node.func)
    return {"name": name, "arguments": {kw.arg: _literal(kw.value) for kw in node.keywords}}
