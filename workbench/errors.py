"""Errors a user can cause, kept apart from bugs.

A `UserError` names the file and the field at fault; the CLI prints it as one line and
exits 2. Anything else that escapes is a bug in the workbench and may show a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a spec, a dataset file, a CLI argument, a request."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.field = field

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.field) if part)
        return f"{where}: {self.message}" if where else self.message


class RunFailed(RuntimeError):
    """A run that started but could not finish (optimizer or evaluation broke down).

    Not the user's input and not a workbench bug: the CLI prints one line, exits 1, and
    the MLflow run is marked FAILED.
    """
