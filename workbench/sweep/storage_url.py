"""Checks on a sweep's `--storage` URL that need no heavy import.

`workbench sweep` imports DSPy, MLflow and Optuna (several seconds) before it opens the study
storage. A mistyped scheme or a database host that does not answer is known without any of
them, so the command asks here first and a bad URL costs well under a second, not the imports.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

from workbench.errors import UserError

SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg2://", "mysql://", "mysql+pymysql://")
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
CONNECT_TIMEOUT_S = 5


def hide_password(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    userinfo, host = rest.rsplit("@", 1)
    return f"{scheme}://{userinfo.split(':')[0]}:***@{host}" if ":" in userinfo else url


def check_scheme(url: str) -> None:
    if not url.startswith(SCHEMES):
        raise UserError(f"unsupported storage URL {hide_password(url)!r} (sqlite:///PATH or postgresql://...)",
                        field="--storage")


def check_storage_url(url: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """One UserError (field --storage) for a URL that cannot work: scheme, SQLite folder, server port."""
    check_scheme(url)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        blocker = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise UserError(f"cannot open {url}: {blocker} is a file, not a folder", field="--storage")
        if path.is_dir():
            raise UserError(f"cannot open {url}: {path} is a folder, not a database file", field="--storage")
        return
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a port that is not a number
        raise UserError(f"cannot open {hide_password(url)}: {exc}", field="--storage") from None
    if not host:  # a local socket: libpq finds it itself, nothing to check here
        return
    port = port or DEFAULT_PORTS[parts.scheme.split("+")[0]]
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise UserError(f"cannot open {hide_password(url)}: {host}:{port} {reason.lower()}",
                        field="--storage") from None
