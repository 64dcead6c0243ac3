"""Shared-memory slots, allocated once, that carry batches of clips from loader workers.

A DataLoader worker stacks each batch into fresh shared memory and passes its file descriptor
over a socket, one per tensor: the worker pays for the new pages to fault in, the main process
for receiving and mapping them, at every batch. Through the cache that was up to a third of
what decoding a clip costs (`benchmarks/bench_loader.py` times both ways). Here each worker owns a
ring of slots allocated before the workers start. It stacks a batch's clips into a free slot
and sends the slot's number; the small fields travel by value. The main process turns the
number back into a tensor viewing the slot as it unpickles the batch, so what comes out of
the loader is plain tensors. The slot is free again once the last tensor viewing it is gone.
A worker whose slots are all held (a consumer keeping batches) falls back to torch's way.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import default_collate, get_worker_info

# Slots a worker owns beyond the loader's prefetch (the batches it may have queued, the one it
# is writing included): the batch the consumer holds, one fetched ahead (Lightning fetches one
# ahead to see the epoch's end) and one on its way to pinned memory.
SPARE_SLOTS = 3

SHARED_MEMORY = "/dev/shm"
# Slots take at most this share of the free shared memory: torch's own hand-off (the fallback,
# and other loaders) needs the rest.
MAX_SHARE = 0.5

log = logging.getLogger(__name__)

_OPEN: weakref.WeakValueDictionary[str, BatchSlots] = weakref.WeakValueDictionary()


def shared_memory_free() -> int | None:
    """Bytes free in /dev/shm (a container's is often 64 MB); None where there is none."""
    try:
        stats = os.statvfs(SHARED_MEMORY)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def allocate_slots(
    *, workers: int, slots_per_worker: int, batch_size: int, item_shape: Sequence[int]
) -> BatchSlots | None:
    """Slots for `workers`, or None, said in one log line, where shared memory is too short."""
    wanted = workers * slots_per_worker * batch_size * math.prod(item_shape)
    free = shared_memory_free()
    if free is not None and wanted > MAX_SHARE * free:
        log.warning(
            "%s has %d MB free, too little for %d MB of batch slots: loader workers hand "
            "batches over through fresh shared memory, which is slower (docker: --shm-size)",
            SHARED_MEMORY,
            free // 2**20,
            wanted // 2**20,
        )
        return None
    return BatchSlots(
        workers=workers,
        slots_per_worker=slots_per_worker,
        batch_size=batch_size,
        item_shape=item_shape,
    )


class BatchSlots:
    """`workers` rings of `slots_per_worker` slots, each `batch_size` items of `item_shape`."""

    def __init__(
        self,
        *,
        workers: int,
        slots_per_worker: int,
        batch_size: int,
        item_shape: Sequence[int],
        dtype: torch.dtype = torch.uint8,
    ) -> None:
        self.key = uuid.uuid4().hex
        self.slots_per_worker = slots_per_worker
        self.item_shape = tuple(item_shape)
        count = workers * slots_per_worker
        self.buffer = torch.empty((count, batch_size, *self.item_shape), dtype=dtype)
        self.buffer.share_memory_()
        self.busy = torch.zeros(count, dtype=torch.uint8).share_memory_()
        _OPEN[self.key] = self

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled in a spawned worker: the tensors arrive shared, not copied."""
        self.__dict__.update(state)
        _OPEN.setdefault(self.key, self)

    def stack(self, clips: Sequence[Tensor]) -> Tensor | SlotClips:
        """The clips stacked as one batch: in a worker into a free slot of its ring, if any."""
        worker = get_worker_info()
        fits = len(clips) <= self.buffer.shape[1] and all(
            c.shape == self.item_shape and c.dtype == self.buffer.dtype for c in clips
        )
        if worker is None or not fits:
            return default_collate(list(clips))
        first = worker.id * self.slots_per_worker
        for slot in range(first, first + self.slots_per_worker):
            if not self.busy[slot]:
                self.busy[slot] = 1
                torch.stack(list(clips), out=self.buffer[slot, : len(clips)])
                return SlotClips(self.key, slot, len(clips))
        return default_collate(list(clips))

    def lease(self, slot: int, count: int) -> Tensor:
        """The first `count` items of `slot`, as a tensor that frees the slot when it is gone."""
        return torch.from_numpy(np.asarray(_Lease(self.buffer[slot, :count].numpy(), self, slot)))


class _Lease:
    """The numpy base of a leased slot's tensor: it outlives every view of it, then frees it."""

    def __init__(self, array: np.ndarray, slots: BatchSlots, slot: int) -> None:
        self.array = array
        self.__array_interface__ = array.__array_interface__
        self.busy, self.slot = slots.busy, slot

    def __del__(self) -> None:
        self.busy[self.slot] = 0


class SlotClips:
    """A batch of clips in a slot, as it crosses the worker queue: unpickled, it is a tensor."""

    def __init__(self, key: str, slot: int, count: int) -> None:
        self.key, self.slot, self.count = key, slot, count

    def __reduce__(self) -> tuple[Any, tuple[str, int, int]]:
        return _open_slot, (self.key, self.slot, self.count)


class ByValue:
    """A small tensor that crosses the worker queue as bytes, not as a file descriptor."""

    def __init__(self, tensor: Tensor) -> None:
        self.array = tensor.numpy()

    def __reduce__(self) -> tuple[Any, tuple[np.ndarray]]:
        return torch.from_numpy, (self.array,)


def _open_slot(key: str, slot: int, count: int) -> Tensor:
    slots = _OPEN.get(key)
    if slots is None:
        raise RuntimeError(
            "a batch arrived for a DataLoader that is gone: its slots were freed with it"
        )
    return slots.lease(slot, count)


def collate_clips(
    items: Sequence[dict[str, Any]], slots: BatchSlots | None = None
) -> dict[str, Any]:
    """`default_collate` of dict items, with "clip" stacked through `slots` when in a worker.

    In a worker the other fields, labels and indices, are made to cross by value.
    """
    rest = default_collate([{k: v for k, v in item.items() if k != "clip"} for item in items])
    clips = [item["clip"] for item in items]
    if slots is None or get_worker_info() is None:
        return {"clip": default_collate(clips), **rest}
    by_value = {
        k: ByValue(v) if isinstance(v, Tensor) and v.device.type == "cpu" else v
        for k, v in rest.items()
    }
    return {"clip": slots.stack(clips), **by_value}
