"""Name -> factory registries for the workbench's extension points.

A program, metric, summary, dataset or optimizer is one small function registered under a
name; specs refer to it by that name. Registries fill themselves by importing the modules
that hold the built-in entries the first time a name is looked up, so adding an entry is
one file plus one decorator.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from workbench.errors import UserError


class Registry:
    """One kind of extension point: a dict of name -> object with helpful lookups."""

    def __init__(self, kind: str, packages: tuple[str, ...]):
        self.kind = kind
        self._packages = packages
        self._entries: dict[str, Any] = {}
        self._loaded = False
        self._after_load: list[Callable[[], None]] = []

    def after_load(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Run `hook` once the built-in modules are imported (e.g. to register entries found
        in data folders, so a collision names the folder rather than a built-in module)."""
        self._after_load.append(hook)
        return hook

    def register(self, name: str) -> Callable[[Any], Any]:
        def decorate(obj: Any) -> Any:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorate

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for package_name in self._packages:
            package = importlib.import_module(package_name)
            for info in pkgutil.iter_modules(package.__path__):
                if not info.name.startswith("_"):
                    try:
                        importlib.import_module(f"{package_name}.{info.name}")
                    except ValueError as exc:  # e.g. two entries under one name
                        raise UserError(str(exc), file=f"{package_name.replace('.', '/')}/{info.name}.py") from None
        for hook in self._after_load:
            hook()

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def get(self, name: str, *, file: str | None = None, field: str | None = None) -> Any:
        self._load()
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(self._entries))
            raise UserError(f"unknown {self.kind} {name!r}{hint}; known: {known}", file=file, field=field)
        return self._entries[name]


programs = Registry("program", ("programs",))
metrics = Registry("metric", ("metrics",))
summaries = Registry("summary", ("metrics",))
datasets = Registry("dataset", ("workbench.data",))
optimizers = Registry("optimizer", ("workbench.optimize",))
retrievers = Registry("retriever", ("workbench.retrieval",))
tools = Registry("tool", ("programs.tools",))

ALL = (programs, metrics, summaries, datasets, optimizers, retrievers, tools)

program = programs.register
metric = metrics.register
summary = summaries.register
dataset = datasets.register
optimizer = optimizers.register
retriever = retrievers.register
# tools register through workbench.tools.functions.tool (it records trust and timeout too)
