"""The analysis notebook runs top to bottom on a real training run of the embedded model and its
sweep (nbclient): the full prorl-mini experiment when it exists, else a shortened one."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "analysis" / "reasoning_boundary.ipynb"


@pytest.mark.slow
@pytest.mark.timeout(1500)  # trains and sweeps a shortened run: ~3 min alone, over 10 on a busy CI
def test_analysis_notebook_executes(embedded_model_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    # pass@k curves, pass@k against step, boundary bars, training dynamics (+ the correlation when
    # the base pass@k of the tasks is not constant)
    assert len(images) >= 4
