"""Tensor files are read without running pickled code; refusals and bad files are one line."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from convperceiver.errors import CheckpointError, WeightsError
from convperceiver.safe_load import load_state_dict_file, load_tensor_file

SYSTEM = f"{os.system.__module__}.system"  # posix.system, or nt.system on Windows


class RunsACommand:
    """Unpickling this calls os.system: what a hostile checkpoint does."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def hostile_files(folder: Path) -> tuple[dict[str, Path], Path]:
    """Files whose unpickling would create `marker`, in each format a tensor file comes in."""
    marker = folder / "marker"
    payload = RunsACommand(f"touch {marker}")
    files = {
        "plain pickle": folder / "model.ckpt",
        "old pickle": folder / "old.pth",
        "torch.save": folder / "saved.pt",
    }
    files["plain pickle"].write_bytes(pickle.dumps(payload))
    files["old pickle"].write_bytes(pickle.dumps(payload, protocol=2))
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": payload}, files["torch.save"])
    return files, marker


@pytest.mark.parametrize("error", [CheckpointError, WeightsError])
def test_a_file_that_holds_code_is_refused_and_never_run(tmp_path, error):
    files, marker = hostile_files(tmp_path)
    for path in files.values():
        with pytest.raises(error) as raised:
            load_tensor_file(path, what="checkpoint", error=error)
        assert str(raised.value) == (
            f"refused: {path} holds a pickled call to {SYSTEM}; convperceiver loads tensors only"
        )
    assert not marker.exists()


def test_files_that_are_not_tensor_files_are_one_line(tmp_path):
    text = tmp_path / "notes.ckpt"
    text.write_text("epoch 3, val_acc 0.71\n")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    archive = tmp_path / "archive.pth"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("readme.txt", "not a tensor file")
    whole = tmp_path / "whole.pth"
    torch.save({"w": torch.zeros(64)}, whole)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    for path in (text, empty, archive, cut):
        with pytest.raises(CheckpointError) as raised:
            load_tensor_file(path, what="checkpoint", error=CheckpointError)
        message = str(raised.value)
        assert message.startswith(f"checkpoint {path} is not a PyTorch tensor file (")
        assert "\n" not in message and not message.endswith("()")
    with pytest.raises(CheckpointError, match=r"^checkpoint not found: .*nowhere\.ckpt$"):
        load_tensor_file(tmp_path / "nowhere.ckpt", what="checkpoint", error=CheckpointError)


def test_tensors_and_plain_data_load(tmp_path):
    path = tmp_path / "ok.pt"
    saved = {"state_dict": {"w": torch.arange(3.0)}, "epoch": 2, "names": ["a", "b"]}
    torch.save(saved, path)
    loaded = load_tensor_file(path, what="checkpoint", error=CheckpointError)
    assert loaded["epoch"] == 2 and loaded["names"] == ["a", "b"]
    assert torch.equal(loaded["state_dict"]["w"], saved["state_dict"]["w"])


def test_a_state_dict_file_refuses_code_as_a_weights_error(tmp_path):
    files, marker = hostile_files(tmp_path)
    with pytest.raises(WeightsError, match=rf"^refused: .*{SYSTEM}"):
        load_state_dict_file(files["plain pickle"], what="weights file")
    assert not marker.exists()
