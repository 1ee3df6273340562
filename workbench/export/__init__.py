"""Export: compiled programs leave the workbench as verified bundles (no pickle), go into
the MLflow Model Registry with champion/challenger aliases, and are served over HTTP.

    result = workbench.export.export_run("routing", "bundles/routing")  # best run of an experiment
    program = workbench.load("bundles/routing")
    program(text="what's my balance?").label

Names are imported on first use, so the CLI's argument parsing does not load DSPy.
"""

from importlib import import_module

_WHERE = {"FORMAT_VERSION": "bundle", "BundleError": "bundle", "verify": "bundle", "ExportDrift": "exporter",
          "ExportResult": "exporter", "export_run": "exporter", "LoadedProgram": "loaded", "load": "loaded",
          "promote": "promote"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"workbench.export.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'workbench.export' has no attribute {name!r}")
