"""Per-example traces of an evaluation, written to MLflow (see recorder.py, writer.py, evaluation.py).

Programs mark their own steps with `span(name, type, inputs)`; it costs nothing when the
example is not traced.
"""

from workbench.traces.recorder import span

__all__ = ["span"]
