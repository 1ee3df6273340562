"""What the workbench asks of a program, written down once.

A program is a `dspy.Module` built by a function registered with `@program(name)`. Beyond
`forward`, it may offer any of these capabilities; the runner, the evaluator, the exporter
and the prompt renderer ask through the helpers below, never by probing attributes:

- `Exportable`: `export_config()` returns the JSON-able constructor arguments that are not
  learned state, and `from_export_config(config)` rebuilds an empty program from them (the
  bundle's `program.json` then loads the learned state). Without it a run cannot be exported.
- `WarmsUp`: `warm_up()` builds indexes or fits rankers before the first query (timed as its
  own phase, so the first example's latency is the model's).
- `HasTableFields`: `table_fields` names prediction fields copied into the per-example table
  (candidates, retrieved ids, citations, trajectories).
- `HasIndexes`: `index_dirs()` lists built index folders logged with the run.
- `HasDemoPool`: `demo_pool`, an `ExamplePool` whose k nearest training examples become the
  demos of each query (the `retrieval_demos` optimizer fills it).
- `as_demo(predictor, example)`: the demo as the named predictor reads it, for a program whose
  predictors' fields are not the dataset's (the function caller's `call` reads request/function,
  BFCL examples hold question/functions; RAG's answer predictor reads question/passages, XQuAD
  examples hold question/answers/gold_passage). Raw examples that optimizers copy in as demos are
  otherwise dropped by DSPy's adapter; the runner warns about any that still would be
  (`workbench/optimize/demo_check.py`). A program that passes `demos=` per call gives a
  predictor `**own_demos(self, name)` when it retrieves none: its compiled demos, mapped.
- `HasBundleFiles`: `export_files(folder)` writes what the program needs beyond its JSON state
  (a RAG corpus and its indexes, a tool agent's tool records) into the bundle folder and
  returns what it wrote (stored as the config's `files`); `from_export_config(config, folder)`
  rebuilds from them: a bundle then answers on a
  machine with neither the dataset nor `.cache/`.
- `serve_fields`: prediction fields a served program returns beyond its table fields
  (a RAG answer's cited passages with their text).
- `predictors_used(examples)`: the names of the predictors `forward` can reach on these
  examples, known without calling the LM (the function caller's `select` runs only when the LM
  selects and a request offers several functions). COPRO and MIPROv2, which propose for every
  predictor, are shown only these (`workbench/optimize/reached.py`); without it every predictor
  counts as reachable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Exportable(Protocol):
    def export_config(self) -> dict[str, Any]: ...

    @classmethod
    def from_export_config(cls, config: dict[str, Any]) -> Any: ...


@runtime_checkable
class WarmsUp(Protocol):
    def warm_up(self) -> None: ...


@runtime_checkable
class HasTableFields(Protocol):
    table_fields: tuple[str, ...]


@runtime_checkable
class HasIndexes(Protocol):
    def index_dirs(self) -> list[Path]: ...


@runtime_checkable
class HasDemoPool(Protocol):
    demo_pool: Any


@runtime_checkable
class HasBundleFiles(Protocol):
    def export_files(self, folder: Path) -> dict[str, Any]: ...


def has_bundle_files(program_or_class: Any) -> bool:
    return callable(getattr(program_or_class, "export_files", None))


def serve_fields(program: Any) -> tuple[str, ...]:
    return tuple(getattr(program, "serve_fields", ()))


def is_exportable(program_or_class: Any) -> bool:
    return callable(getattr(program_or_class, "export_config", None)) and \
        callable(getattr(program_or_class, "from_export_config", None))


def warms_up(program: Any) -> bool:
    return isinstance(program, WarmsUp)


def table_fields(program: Any) -> tuple[str, ...]:
    return tuple(program.table_fields) if isinstance(program, HasTableFields) else ()


def index_dirs(program: Any) -> list[Path]:
    return list(program.index_dirs()) if isinstance(program, HasIndexes) else []


def demo_pool(program: Any) -> Any | None:
    return program.demo_pool if isinstance(program, HasDemoPool) else None


def own_demos(program: Any, predictor: str) -> dict[str, list]:
    """Keyword arguments giving the named predictor its compiled demos in its own fields (through
    the program's `as_demo`), for programs that pass `demos=` per call; empty when it has none:
    never `demos=[]`, which would replace the compiled ones with nothing."""
    found = getattr(program, predictor, None) if "." not in predictor else None
    if found is None:  # a nested predictor ("answer.predict")
        found = dict(program.named_predictors()).get(predictor)
    demos = list(getattr(found, "demos", None) or [])
    as_demo = getattr(program, "as_demo", None)
    if callable(as_demo):
        demos = [d for d in (as_demo(predictor, x) for x in demos) if d is not None]
    return {"demos": demos} if demos else {}


def predictors_used(program: Any, examples: list[Any]) -> list[str]:
    """The program's predictor names that `forward` can reach on `examples`, in the program's order
    (all of them when the program does not say, or names none of its own)."""
    names = [name for name, _ in program.named_predictors()]
    used = getattr(program, "predictors_used", None)
    if not callable(used):
        return names
    reached = set(used(examples))
    return [name for name in names if name in reached] or names
