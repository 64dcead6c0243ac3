import random
from collections import Counter

import pytest

from convperceiver.data.records import VideoRecord
from convperceiver.data.subsets import label_fraction_subset, select_classes
from convperceiver.errors import ConfigError

CLASS_NAMES = ["climb", "jump", "run", "wave"]
SIZES = {0: 20, 1: 7, 2: 1, 3: 12}  # videos per class


def make_records(seed: int = 0) -> list[VideoRecord]:
    records = [
        VideoRecord(f"{CLASS_NAMES[label]}/v{index:02d}.avi", label, f"g{index % 3}")
        for label, count in SIZES.items()
        for index in range(count)
    ]
    random.Random(seed).shuffle(records)
    return records


def test_select_classes_keeps_and_relabels_in_the_order_given():
    records = make_records()
    kept, names = select_classes(records, CLASS_NAMES, ["wave", "climb"])
    assert names == ["wave", "climb"]
    assert Counter(r.label for r in kept) == {0: SIZES[3], 1: SIZES[0]}
    assert all(r.path.startswith(names[r.label] + "/") for r in kept)
    assert [r.path for r in kept] == [r.path for r in records if r.label in (0, 3)]


def test_select_classes_names_the_unknown_class_and_the_valid_ones():
    with pytest.raises(ConfigError) as error:
        select_classes(make_records(), CLASS_NAMES, ["wave", "swim"])
    message = str(error.value)
    assert "'swim'" in message and "climb, jump, run, wave" in message and "\n" not in message


def test_select_classes_refuses_a_class_named_twice():
    with pytest.raises(ConfigError, match="'run'"):
        select_classes(make_records(), CLASS_NAMES, ["run", "jump", "run"])


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.6])
def test_label_fraction_counts_per_class_cover_every_class(fraction):
    subset = label_fraction_subset(make_records(), fraction=fraction, seed=0)
    expected = {label: max(1, round(fraction * count)) for label, count in SIZES.items()}
    assert Counter(r.label for r in subset) == expected


def test_label_fraction_is_the_same_for_a_seed_whatever_the_record_order():
    first = label_fraction_subset(make_records(0), fraction=0.5, seed=3)
    second = label_fraction_subset(make_records(1), fraction=0.5, seed=3)
    assert {r.path for r in first} == {r.path for r in second}


def test_label_fraction_of_another_seed_differs_but_overlaps():
    # 12 of 20 twice must share videos; only the choice among them depends on the seed.
    chosen = [
        {r.path for r in label_fraction_subset(make_records(), fraction=0.6, seed=seed)}
        for seed in (0, 1)
    ]
    assert chosen[0] != chosen[1]
    assert chosen[0] & chosen[1]


def test_label_fraction_keeps_the_record_order():
    records = make_records()
    subset = label_fraction_subset(records, fraction=0.5, seed=0)
    assert subset == [r for r in records if r in subset]


def test_full_label_fraction_returns_the_records_unchanged():
    records = make_records()
    assert label_fraction_subset(records, fraction=1.0, seed=5) == records


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_label_fraction_outside_its_range_is_refused(fraction):
    with pytest.raises(ValueError, match="fraction"):
        label_fraction_subset(make_records(), fraction=fraction, seed=0)
