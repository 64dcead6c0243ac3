"""Smaller training sets from a dataset's records: a subset of its classes, a fraction of labels.

select_classes(records, class_names, wanted)        -> (records, wanted), labels 0..n-1
label_fraction_subset(records, fraction=, seed=)    -> records, the same videos for one seed
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Sequence

from convperceiver.data.records import VideoRecord
from convperceiver.errors import ConfigError


def select_classes(
    records: Sequence[VideoRecord], class_names: Sequence[str], wanted: Sequence[str]
) -> tuple[list[VideoRecord], list[str]]:
    """The records of the `wanted` classes only, relabelled 0..n-1 in the order of `wanted`."""
    unknown = [name for name in wanted if name not in class_names]
    if unknown:
        raise ConfigError(
            f"data.classes: unknown class {', '.join(map(repr, unknown))}; "
            f"valid names: {', '.join(class_names)}"
        )
    repeated = sorted({name for name in wanted if list(wanted).count(name) > 1})
    if repeated:
        raise ConfigError(f"data.classes names {', '.join(map(repr, repeated))} more than once")
    new_label = {class_names.index(name): label for label, name in enumerate(wanted)}
    kept = [
        dataclasses.replace(record, label=new_label[record.label])
        for record in records
        if record.label in new_label
    ]
    return kept, list(wanted)


def label_fraction_subset(
    records: Sequence[VideoRecord], *, fraction: float, seed: int
) -> list[VideoRecord]:
    """Per class, `max(1, round(fraction * n))` of its n videos, the same ones for one seed.

    Each class draws from its videos sorted by path with its own seeded generator, so the
    choice does not depend on the records' order or on the other classes. The records keep
    their order.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction} must be in (0, 1]")
    if fraction == 1:
        return list(records)
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        by_class[record.label].append(index)
    chosen: set[int] = set()
    for label, indices in by_class.items():
        indices = sorted(indices, key=lambda index: records[index].path)
        random.Random(f"{seed}:{label}").shuffle(indices)
        chosen.update(indices[: max(1, round(fraction * len(indices)))])
    return [record for index, record in enumerate(records) if index in chosen]
