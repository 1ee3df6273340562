"""Notebooks run headless, top to bottom, on small samples and a temp MLflow store."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT


@pytest.mark.parametrize("name, runs", [("01_routing_quickstart.ipynb", 2), ("02_rag_explore.ipynb", 2),
                                        ("03_tool_use.ipynb", 3), ("04_compare_runs.ipynb", 2),
                                        ("05_export_and_serve.ipynb", 2),
                                        ("06_sweep.ipynb", 4), ("07_your_own_data.ipynb", 2)])
@pytest.mark.slow
def test_notebook_executes(name, runs, store, monkeypatch):
    monkeypatch.setenv("WORKBENCH_NB_TEST_SIZE", "6")
    monkeypatch.setenv("WORKBENCH_TRACKING_URI", store.uri)
    monkeypatch.setenv("WORKBENCH_ARTIFACT_ROOT", str(store.root / "artifacts"))
    monkeypatch.setenv("WORKBENCH_NB_OUT", str(store.root / "notebook-out"))
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # a figure rendered
    assert {r["status"] for r in store.runs()} == {"FINISHED"} and len(store.runs()) == runs
