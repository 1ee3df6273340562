"""A spec's `imports:` — the user's own modules, imported before any name is resolved.

    imports: [my_pkg.tools, ../tools/shop.py]

A dotted name is imported as it is (it must be on the Python path); a `.py` path,
relative to the spec's folder, is imported under its file name with its folder put on
`sys.path`, so the tool sandbox's worker processes (which inherit the path) import it too.
Whatever those modules register with `@program`, `@metric`, `@summary`, `@dataset`,
`@optimizer`, `@retriever` or `@tool` is then available by name in the spec. The built-in
entries are loaded first, so a user entry that reuses a built-in name is an error here,
naming the import, and never silently replaces a built-in.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from workbench.errors import UserError


def resolve(entries: list[str], base: Path) -> list[str]:
    """`.py` paths made absolute against `base`; dotted names unchanged."""
    out = []
    for entry in entries:
        if entry.endswith(".py") or "/" in entry or "\\" in entry:
            path = Path(entry).expanduser()
            out.append(str(path if path.is_absolute() else (base / path).resolve()))
        else:
            out.append(entry)
    return out


def _load_builtins() -> None:
    from workbench import registry

    for reg in registry.ALL:
        reg.names()


def _import_file(path: Path, file: str, field: str):
    if not path.is_file():
        raise UserError("module file not found", file=str(path), field=field)
    name = path.stem
    if not name.isidentifier():
        raise UserError(f"{path.name!r} is not an importable module name (letters, digits, _)", file=file, field=field)
    loaded = sys.modules.get(name)
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "") or "").resolve() == path.resolve():
            return loaded
        raise UserError(f"the module name {name!r} is already taken by {getattr(loaded, '__file__', None) or 'a built-in'}"
                        "; rename the file", file=file, field=field)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)  # appended: the user's folder never shadows an installed package
    return importlib.import_module(name)


def import_user_modules(entries: list[str], *, file: str) -> None:
    """Import each entry; any failure is one UserError naming `imports.N`."""
    if not entries:
        return
    _load_builtins()
    for i, entry in enumerate(entries):
        field = f"imports.{i}"
        try:
            if entry.endswith(".py") or "/" in entry:
                _import_file(Path(entry), file, field)
            else:
                importlib.import_module(entry)
        except UserError:
            raise
        except ValueError as exc:  # a registry refusing a name that is taken
            raise UserError(f"{entry}: {exc}", file=file, field=field) from None
        except Exception as exc:  # noqa: BLE001  the user's module failed to import: its error, one line
            text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise UserError(f"cannot import {entry}: {type(exc).__name__}{': ' + text if text else ''}", file=file,
                            field=field) from None
