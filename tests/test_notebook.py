"""notebooks/train.ipynb runs top to bottom, on the tests' tiny config, in a real kernel.

`CONVPERCEIVER_NOTEBOOK_TINY=1` makes its run last seconds; the notebook works in a scratch
folder, so its data/ and runs/ land there, and reads the session's tiny synthetic set. Skips,
with the reason, where nbclient, nbformat or ipykernel is not installed.
"""

import ast
import importlib.metadata
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import TINY_DATA, TINY_MODEL_OVERRIDES

CHECKOUT = Path(__file__).resolve().parents[1]
NOTEBOOK = CHECKOUT / "notebooks" / "train.ipynb"


def notebook_tiny_run() -> list[str]:
    """The `TINY_RUN` list as the notebook's code cells spell it."""
    for cell in json.loads(NOTEBOOK.read_text())["cells"]:
        code = "".join(cell["source"])
        if cell["cell_type"] != "code" or "TINY_RUN = " not in code:
            continue
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "TINY_RUN":
                return ast.literal_eval(node.value)
    raise AssertionError("the notebook defines no TINY_RUN")


def test_the_notebooks_tiny_run_is_the_test_suites_tiny_config():
    """The notebook cannot import tests/, so it spells the tiny config out; it must not drift."""
    tiny_run = notebook_tiny_run()
    assert [o for o in tiny_run if o.startswith(("data.", "model."))] == [
        *TINY_DATA,
        *TINY_MODEL_OVERRIDES,
    ]
    assert "trainer.max_epochs=1" in tiny_run


def test_the_training_notebook_runs_top_to_bottom(tmp_path, tiny_synthetic_root, monkeypatch):
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
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synthetic_tiny").symlink_to(tiny_synthetic_root)  # only read
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
    # The data figure, the curves, the confusion matrix, the overlay's contact sheet and the
    # pretraining's reconstructions; the overlay's GIF.
    assert images.count("image/png") == 5 and images.count("image/gif") == 1
    assert "video_top1" in text and "cross-attention" in text
    assert "a tenth of the labels, from the pretrained encoder" in text
    assert list(tmp_path.glob("runs/*/checkpoints/best.ckpt"))
    assert list(tmp_path.glob("runs/*_pretrain_*/reconstructions/epoch_000.png"))
