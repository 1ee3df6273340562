"""Name -> factory registries for the workbench's extension points.

A program, metric, summary, dataset, optimizer, retriever, tool or LM backend is one small
function registered under a name; specs refer to it by that name. Registries fill themselves by importing the modules
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
            raise self._unknown(name, self._entries, file, field)
        return self._entries[name]

    def _unknown(self, name: str, known: Any, file: str | None, field: str | None) -> UserError:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return UserError(f"unknown {self.kind} {name!r}{hint}; known: {', '.join(sorted(known))}", file=file,
                         field=field)

    def info(self, name: str, *, file: str | None = None, field: str | None = None) -> dict[str, Any]:
        """What a spec check needs to know about an entry (see `registry_index.describe`),
        from the on-disk index when it is fresh, so no module is imported."""
        from workbench import registry_index

        if name in self._entries:
            return registry_index.describe(self._entries[name])
        index = None if self._loaded else _fresh_index()
        if index is not None:
            known = {**index.get(self.kind, {}), **{n: None for n in self._entries}}
            if name not in known:
                raise self._unknown(name, known, file, field)
            return index[self.kind][name]
        self._load()
        write_index()
        return registry_index.describe(self.get(name, file=file, field=field))

    def builtin_entries(self) -> dict[str, Any]:
        """Entries registered by the packages this registry loads (not by user modules)."""
        self._load()
        roots = tuple(p.split(".")[0] for p in self._packages) + ("workbench",)
        return {n: e for n, e in self._entries.items()
                if str(getattr(e, "__module__", "") or "").split(".")[0] in roots or hasattr(e, "folder")}


programs = Registry("program", ("programs",))
metrics = Registry("metric", ("metrics",))
summaries = Registry("summary", ("metrics",))
datasets = Registry("dataset", ("workbench.data",))
optimizers = Registry("optimizer", ("workbench.optimize",))
retrievers = Registry("retriever", ("workbench.retrieval",))
tools = Registry("tool", ("programs.tools",))
lm_backends = Registry("lm_backend", ("workbench.lm",))

ALL = (programs, metrics, summaries, datasets, optimizers, retrievers, tools, lm_backends)

_index_state: dict[str, Any] = {}


def _packages() -> list[str]:
    return sorted({p for reg in ALL for p in reg._packages})


def _fresh_index() -> dict[str, Any] | None:
    """The on-disk index of every registry, if its sources are unchanged (checked once per process)."""
    from workbench import registry_index

    if "entries" not in _index_state:
        key = registry_index.source_key(_packages())
        _index_state.update(key=key, entries=registry_index.read(key))
    return _index_state["entries"]


def write_index() -> None:
    """Load every registry and remember what they hold (after a full load, once per process)."""
    from workbench import registry_index

    if _index_state.get("written"):
        return
    entries = {reg.kind: {n: registry_index.describe(e) for n, e in reg.builtin_entries().items()} for reg in ALL}
    key = _index_state.get("key") or registry_index.source_key(_packages())
    registry_index.write(key, entries)
    _index_state.update(written=True, key=key)

program = programs.register
metric = metrics.register
summary = summaries.register
dataset = datasets.register
optimizer = optimizers.register
retriever = retrievers.register
lm_backend = lm_backends.register  # a factory (LMSpec, source) -> workbench.lm.base.Backend
# tools register through workbench.tools.functions.tool (it records trust and timeout too)
