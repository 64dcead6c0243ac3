"""Reading tensor files (weights, checkpoints) without running code a pickle may hold.

`torch.load(weights_only=True)` refuses any pickled call outside a list of tensor types; this
turns its refusals, and the assorted errors of files that are not tensor files at all, into one
line that names the file and, for a refusal, the call it holds.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import warnings
from pathlib import Path

import torch
from torch import Tensor

from convperceiver.errors import ConvPerceiverError, WeightsError

# torch names a refused global as "GLOBAL posix.system" in its message.
_TORCH_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_SOURCE_NOTE = re.compile(r"\[enforce fail at [^\]]*\]")
_STRINGS = ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING")


def _pickled_global(path: Path) -> str | None:
    """The first global a plain pickle file imports, read from its opcodes without running it.

    torch names the global only for pickles it gets far enough into; a protocol 4 pickle
    (`pickle.dumps`' default) stops it at the first frame opcode.
    """
    strings: list[str] = []
    try:
        with path.open("rb") as file:
            for opcode, argument, _ in pickletools.genops(file):
                if opcode.name == "GLOBAL":
                    return str(argument).replace(" ", ".")
                if opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    return f"{strings[-2]}.{strings[-1]}"
                if opcode.name in _STRINGS:
                    strings.append(str(argument))
    except (ValueError, EOFError, UnicodeDecodeError):
        return None
    return None


def _reason(path: Path, error: Exception) -> str:
    """Why a file is not a tensor file, in a few words."""
    with path.open("rb") as file:
        head = file.read(4)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save's zip, a legacy pickle
        return "neither a zip archive nor a pickle"
    # torch's errors open with a "[enforce fail at file.cc:123]" and say the useful part first.
    text = _SOURCE_NOTE.sub("", str(error)).strip(" .\n")
    return text.splitlines()[0].split(". ")[0].rstrip(".") if text else type(error).__name__


def load_tensor_file(path: str | Path, *, what: str, error: type[ConvPerceiverError]) -> object:
    """What `torch.save` wrote to `path`, on the CPU, if it holds only tensors and plain data.

    `what` names the file in messages ("weights file", "checkpoint"); every failure is one line
    raised as `error`: a missing file, a file that is not a PyTorch tensor file, or one that
    holds pickled code (refused, never run).
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        with warnings.catch_warnings():
            # A protocol warning torch gives before it refuses or reads a plain pickle.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as failure:
        found = _TORCH_GLOBAL.search(str(failure))
        name = found.group(1) if found else _pickled_global(path)
        if name is not None:
            raise error(
                f"refused: {path} holds a pickled call to {name}; convperceiver loads tensors only"
            ) from failure
        raise error(
            f"{what} {path} is not a PyTorch tensor file ({_reason(path, failure)})"
        ) from failure
    except Exception as failure:  # torch.load raises whatever the bytes provoke
        raise error(
            f"{what} {path} is not a PyTorch tensor file ({_reason(path, failure)})"
        ) from failure


def load_state_dict_file(path: str | Path, *, what: str) -> dict[str, Tensor]:
    """The tensors of a state_dict file, or of a Lightning checkpoint's `state_dict`.

    Every failure is one `WeightsError` line that names the file as `what`.
    """
    state = load_tensor_file(path, what=what, error=WeightsError)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(value, Tensor) for value in state.values())
    ):
        raise WeightsError(
            f"{what} {path} is neither a checkpoint with a 'state_dict' nor a state_dict of tensors"
        )
    return state
