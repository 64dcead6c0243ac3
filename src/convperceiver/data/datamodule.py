"""Datasets and loaders built from the `data` and `eval` config sections."""

from __future__ import annotations

from convperceiver.config import DataConfig

KNOWN_CLASS_COUNTS = {"hmdb51": 51, "ucf101": 101}


def dataset_num_classes(data: DataConfig) -> int:
    """The class count a config's dataset has, reading annotations only where it must."""
    if data.dataset == "synthetic":
        return data.synth_classes
    if data.dataset in KNOWN_CLASS_COUNTS:
        return KNOWN_CLASS_COUNTS[data.dataset]
    from convperceiver.data.datasets import folder_records, list_records

    if data.dataset == "folder":
        return len(folder_records(data.root)[1])
    return len(list_records(data.annotations, data.root)[1])
