"""notebooks/train.ipynb runs top to bottom, on the tiny synthetic config, in a real kernel.

`CONVPERCEIVER_NOTEBOOK_TINY=1` makes its run last seconds; the notebook works in a scratch
folder, so its data/ and runs/ land there. Skips, with the reason, where nbclient, nbformat
or ipykernel is not installed.
"""

import importlib.metadata
import os
import shutil
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
NOTEBOOK = CHECKOUT / "notebooks" / "train.ipynb"


def test_the_training_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    for package in ("nbclient", "nbformat", "ipykernel"):
        try:
            importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"{package} is not installed (pip install nbclient nbformat ipykernel)")
    import nbclient
    import nbformat

    monkeypatch.setenv("CONVPERCEIVER_NOTEBOOK_TINY", "1")  # the kernel inherits it
    # The notebook takes its parent folder for the checkout: it reads config.yaml there, and
    # data/ and runs/ go to tmp_path.
    workdir = tmp_path / "notebooks"
    workdir.mkdir()
    shutil.copy(CHECKOUT / "config.yaml", tmp_path)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": workdir}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on a failure

    artifacts = Path(os.environ.get("CI_ARTIFACTS") or Path(__file__).parent / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, artifacts / "train.executed.ipynb")
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    text = "".join(output.get("text", "") for output in outputs)
    images = [
        kind for output in outputs for kind in output.get("data", {}) if kind.startswith("image/")
    ]
    # The data figure, the curves, the confusion matrix and the overlay's contact sheet; its GIF.
    assert images.count("image/png") == 4 and images.count("image/gif") == 1
    assert "video_top1" in text and "cross-attention" in text
    assert list(tmp_path.glob("runs/*/checkpoints/best.ckpt"))
