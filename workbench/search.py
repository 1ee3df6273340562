"""Search spaces: the `search:` section of a spec.

Any spec value can become a distribution, named by its dotted path:

    search:
      space:
        optimizer.params.k: {type: int, low: 1, high: 8}
        program.params.candidates: {type: categorical, choices: [0, 2, 3]}
        lm.temperature: {type: float, low: 0.0, high: 1.0}
        optimizer: {type: categorical, choices: [{name: none, params: {}}, {name: retrieval_demos, params: {k: 5}}]}
      objectives: [{metric: score, direction: maximize}, {metric: lm_calls, direction: minimize}]

A categorical choice that is a mapping or list replaces the value at its path whole (so an
optimizer and its parameters change together). `set_path` is how a dotted path reaches into
a spec (`--set` overrides use it too). The spec owns this section, so it lives beside
spec.py and uses only pydantic (and, for the parameter defaults of the spec as written, the
registry's index); `workbench/sweep/` runs the searches it describes.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workbench.errors import UserError

OBJECTIVE_METRICS = ("score", "lm_calls", "tokens", "cost_usd", "seconds_per_example")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Distribution(_Strict):
    """One searched value: categorical choices, or an int/float range (optionally log-scaled)."""

    type: Literal["categorical", "int", "float"]
    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = Field(default=None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Distribution:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical distribution needs at least one choice")
            if self.low is not None or self.high is not None:
                raise ValueError("a categorical distribution takes choices, not low/high")
            return self
        if self.choices is not None:
            raise ValueError(f"an {self.type} distribution takes low/high, not choices")
        if self.low is None or self.high is None:
            raise ValueError(f"an {self.type} distribution needs low and high")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is greater than high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError("a log-scaled distribution needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an int distribution needs whole-number low and high")
        return self

    def edges(self) -> list[Any]:
        """Values that must all make a valid spec: every choice, or both ends of the range."""
        if self.type == "categorical":
            return list(self.choices or [])
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]

    def suggest(self, trial, name: str) -> Any:
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        if self.type == "float":
            return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)
        choices = self.choices or []
        if self._plain():
            return trial.suggest_categorical(name, choices)
        return self.decode(trial.suggest_categorical(name, [json.dumps(c, sort_keys=True) for c in choices]))

    def _plain(self) -> bool:
        return all(c is None or isinstance(c, (bool, int, float, str)) for c in self.choices or [])

    def decode(self, stored: Any) -> Any:
        """The spec value of a trial's stored parameter (mapping/list choices are stored as JSON text)."""
        if self.type == "categorical" and not self._plain() and isinstance(stored, str):
            return json.loads(stored)
        return stored


class Objective(_Strict):
    metric: Literal["score", "lm_calls", "tokens", "cost_usd", "seconds_per_example"] = "score"
    direction: Literal["maximize", "minimize"] = "maximize"


class Price(_Strict):
    """USD per million tokens."""

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)


class SearchSpec(_Strict):
    space: dict[str, Distribution] = Field(min_length=1)
    objectives: list[Objective] = Field(default_factory=lambda: [Objective()], min_length=1)
    # Trials are scored on dev (the test split stays for the final comparison).
    split: Literal["dev", "test"] = "dev"
    steps: int = Field(default=4, ge=1, le=100)  # evaluation increments reported to the pruner
    sampler: Literal["tpe", "random", "nsga2"] = "tpe"
    pruner: Literal["median", "none"] = "median"
    seed: int = 0
    prices: dict[str, Price] = Field(default_factory=dict)  # by lm.model; unknown models cost 0

    @model_validator(mode="after")
    def _distinct_objectives(self) -> SearchSpec:
        names = [o.metric for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"an objective is listed twice: {names}")
        return self

    def digest(self) -> str:
        """Identifies the search space (not budgets or sampler): studies refuse another space."""
        space = {k: v.model_dump(mode="json") for k, v in self.space.items()}
        body = json.dumps({"space": space, "objectives": [o.model_dump() for o in self.objectives],
                           "split": self.split}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def cost(self, model: str, input_tokens: float, output_tokens: float) -> float:
        price = self.prices.get(model)
        if price is None:
            return 0.0
        return (input_tokens * price.input + output_tokens * price.output) / 1e6


def set_path(data: dict[str, Any], path: str, value: Any, *, field: str = "") -> None:
    """Set `a.b.c` in a nested dict, creating mappings on the way."""
    parts = [p for p in path.split(".") if p]
    if not parts:
        raise ValueError(f"{field or path!r}: empty path")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ValueError(f"{'.'.join(parts)}: {part!r} is not a mapping")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def apply(data: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of a raw spec dict with each `path -> value` set, in the space's order."""
    out = copy.deepcopy(data)
    for path, value in values.items():
        set_path(out, path, value)
    return out


MISSING = object()


def effective_values(spec) -> Callable[[str], Any]:
    """path -> the value a validated spec runs with: what it sets, the spec model's default, or, for
    `optimizer.params.X` / `program.params.X` it leaves unset, the registered entry's default."""
    from workbench.registry import optimizers, programs

    def value(path: str) -> Any:
        head, *rest = path.split(".")
        node: Any = spec
        for part in path.split("."):
            node = node.get(part, MISSING) if isinstance(node, dict) else getattr(node, part, MISSING)
            if node is MISSING:
                break
        if node is MISSING and head in ("optimizer", "program") and len(rest) == 2 and rest[0] == "params":
            registry = optimizers if head == "optimizer" else programs
            try:
                node = registry.info(getattr(spec, head).name).get("defaults", {}).get(rest[1], MISSING)
            except UserError:
                node = MISSING
        return node

    return value


def incumbent_params(search: SearchSpec, value: Callable[[str], Any]) -> tuple[dict[str, Any] | None, str]:
    """The values the spec runs with (`value`: see `effective_values`) as a trial's parameters, stored
    as Optuna stores them: the incumbent a sweep must beat. (None, why) when one is unknown or
    outside its distribution."""
    params = {}
    for path, dist in search.space.items():
        node = value(path)
        if node is MISSING:
            return None, f"{path} is unset and has no known default"
        if dist.type == "categorical":
            if node not in (dist.choices or []):
                return None, f"{path} = {node!r} is not among its choices"
            params[path] = node if dist._plain() else json.dumps(node, sort_keys=True)
            continue
        if isinstance(node, bool) or not isinstance(node, (int, float)) or not dist.low <= node <= dist.high:
            return None, f"{path} = {node!r} is outside [{dist.low}, {dist.high}]"
        if dist.step and abs(((node - dist.low) / dist.step) - round((node - dist.low) / dist.step)) > 1e-9:
            return None, f"{path} = {node!r} is off its step {dist.step}"
        params[path] = int(node) if dist.type == "int" else float(node)
    return params, ""
