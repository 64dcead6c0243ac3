"""Batches handed over through reused shared-memory slots: right values, and no slot reused
while a tensor still views it."""

import torch
from torch.utils.data import Dataset

from convperceiver.data import batch_slots
from convperceiver.data.batch_slots import BatchSlots
from convperceiver.data.datamodule import clip_loader

SHAPE = (2, 6, 6, 3)


class IndexedClips(Dataset):
    """Item i: a clip filled with i % 256 (cropped from a larger frame, as training's are)."""

    def __len__(self) -> int:
        return 48

    def __getitem__(self, index: int) -> dict:
        frames = torch.full((2, 8, 9, 3), index % 256, dtype=torch.uint8)
        return {"clip": frames[:, 1:7, 2:8], "label": index % 5, "index": index}


def expected(batch_indices: torch.Tensor) -> torch.Tensor:
    return batch_indices.to(torch.uint8).view(-1, 1, 1, 1, 1).expand(-1, *SHAPE)


def test_workers_deliver_the_batches_the_main_process_builds():
    loaders = [
        clip_loader(IndexedClips(), batch_size=4, num_workers=w, shuffle=False, item_shape=SHAPE)
        for w in (0, 2)
    ]
    in_process, workers = ([dict(b) for b in loader] for loader in loaders)
    assert len(workers) == 12
    for ours, theirs in zip(workers, in_process, strict=True):
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), key
        assert torch.equal(ours["clip"], expected(ours["index"]))


def test_batches_kept_past_the_slots_keep_their_values():
    # 12 batches kept from one worker whose ring has fewer slots: the later ones must not be
    # written over the earlier ones (the worker falls back to fresh memory instead).
    loader = clip_loader(
        IndexedClips(), batch_size=4, num_workers=1, shuffle=False, item_shape=SHAPE
    )
    slots = loader.collate_fn.keywords["slots"]
    assert slots.busy.numel() < 12
    kept = list(loader)
    for batch in kept:
        assert torch.equal(batch["clip"], expected(batch["index"]))
    assert int(slots.busy.sum()) == slots.busy.numel()  # every slot is still viewed
    del kept, batch
    assert int(slots.busy.sum()) == 0


def test_a_slot_is_freed_only_when_its_last_view_is_gone():
    slots = BatchSlots(workers=1, slots_per_worker=2, batch_size=3, item_shape=SHAPE)
    slots.busy[1] = 1
    batch = slots.lease(1, 2)
    assert batch.shape == (2, *SHAPE)
    first_clip = batch[0]
    del batch
    assert int(slots.busy[1]) == 1
    del first_clip
    assert int(slots.busy[1]) == 0


def test_a_worker_uses_its_own_slots_again_once_batches_are_dropped():
    loader = clip_loader(
        IndexedClips(), batch_size=4, num_workers=1, shuffle=False, item_shape=SHAPE
    )
    slots = loader.collate_fn.keywords["slots"]
    for epoch in range(2):
        for batch in loader:
            assert torch.equal(batch["clip"], expected(batch["index"]))
            # Each batch views a slot: the worker never had to fall back to fresh memory.
            start = batch["clip"].data_ptr() - slots.buffer.data_ptr()
            assert 0 <= start < slots.buffer.nbytes
        del batch
        assert int(slots.busy.sum()) == 0, epoch


def test_too_little_shared_memory_leaves_the_hand_off_to_torch(monkeypatch, caplog):
    monkeypatch.setattr(batch_slots, "shared_memory_free", lambda: 10 * 2**20)
    big = (64, 112, 112, 3)  # 7 slots of 4 such clips: 64 MB
    loader = clip_loader(IndexedClips(), batch_size=4, num_workers=1, shuffle=False, item_shape=big)
    assert loader.collate_fn.keywords["slots"] is None
    assert "too little for 64 MB" in caplog.text and "--shm-size" in caplog.text
    batches = list(loader)
    assert len(batches) == 12
    assert all(torch.equal(b["clip"], expected(b["index"])) for b in batches)
