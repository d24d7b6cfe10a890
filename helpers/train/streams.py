"""The batches the training loop (:func:`helpers.train.fit`) reads: each source has ``len()``
steps per epoch and ``epoch(e)`` yields its ``(images, labels)`` batches, in an order fixed by
its seed and ``e`` alone, so a resumed run sees exactly what an uninterrupted one sees.

* :class:`ShardedSynthetic` -- the synthetic world, fresh images every step (batch ``b`` of
  epoch ``e`` a pure function of the seed, ``e`` and ``b``), each process of a DDP run drawing
  its own shard;
* :class:`RealBatches` -- a real dataset (its augmentation), a seeded shuffle per epoch
  (``DistributedSampler`` with several processes), whole batches only;
* :class:`ShuffledTensors` -- tensors held in memory (a fixed set of images, cached features),
  in a new order every epoch drawn from a generator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from .. import data as D

__all__ = ["ShardedSynthetic", "RealBatches", "ShuffledTensors"]

Batch = tuple[torch.Tensor, torch.Tensor]


class ShardedSynthetic(D.SyntheticStream):
    """The synthetic stream (:class:`helpers.data.SyntheticStream`), each process of a DDP run
    drawing its own shard of every batch (``batch_size // world`` images)."""

    def __init__(
        self,
        images_per_epoch: int,
        batch_size: int,
        seed: int,
        num_classes: int = 10,
        below_share: float = 0.15,
        instances: int = 1,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        super().__init__(
            images_per_epoch,
            batch_size,
            seed,
            num_classes=num_classes,
            below_share=below_share,
            instances=instances,
        )
        self.rank, self.world = rank, world

    def batch(self, epoch: int, step: int) -> Batch:
        """Images ``(B, 3, 224, 224)`` and labels ``(B,)`` of one step (this process's shard)."""
        if self.world == 1:
            return super().batch(epoch, step)
        n = max(1, self.batch_size // self.world)
        b = D.synthetic_batch(
            n,
            D.mix_seed(self.seed, epoch, step, self.rank, self.world),
            num_classes=self.num_classes,
            below_share=self.below_share,
            instances=self.instances,
        )
        return b.images, b.labels


class RealBatches:
    """Batches of a real dataset, shuffled anew every epoch, ``drop_last``.

    Args:
        dataset: an ImageFolder-like dataset (``classes``, ``(image, label)`` items).
        num_classes: the model's classes; the dataset must have as many.
        batch_size: images per step (split between the processes of a DDP run).
        epoch_seed: ``epoch -> seed`` of the shuffle of one epoch (one process); with several,
            ``DistributedSampler`` shuffles with ``seed`` and the epoch.
        seed: the DistributedSampler's seed.
        num_workers, pin_memory, persistent_workers: the ``DataLoader``'s.
        rank, world: this process and their number.
        remedy: what the class-count error tells the user to do.

    Raises:
        ValueError: when the dataset's classes are not ``num_classes``, or it is smaller than
            one batch.
    """

    def __init__(
        self,
        dataset: Any,
        num_classes: int,
        batch_size: int,
        epoch_seed: Callable[[int], int],
        seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        rank: int = 0,
        world: int = 1,
        remedy: str = "",
    ) -> None:
        self.dataset = dataset
        if len(dataset.classes) != int(num_classes):
            raise ValueError(
                f"The training data has {len(dataset.classes)} classes but the model has "
                f"num_classes={num_classes}; labels would be out of range. {remedy}".rstrip()
            )
        per_rank = max(1, int(batch_size) // world)
        self.epoch_seed = epoch_seed
        if world > 1:
            self.sampler = DistributedSampler(
                dataset,
                num_replicas=world,
                rank=rank,
                shuffle=True,
                seed=int(seed),
                drop_last=True,
            )
        else:
            self.gen = torch.Generator()
            self.sampler = RandomSampler(dataset, generator=self.gen)
        self.loader = DataLoader(
            dataset,
            batch_size=per_rank,
            sampler=self.sampler,
            num_workers=int(num_workers),
            drop_last=True,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers and int(num_workers) > 0,
        )
        self.steps = len(self.loader)
        if self.steps == 0:
            raise ValueError(
                f"The training data ({len(dataset)} images) is smaller than one batch "
                f"({per_rank}); lower batch_size."
            )

    def __len__(self) -> int:
        return self.steps

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        """The batches of epoch ``epoch``, from ``start_step``."""
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)
        else:
            self.gen.manual_seed(self.epoch_seed(epoch))
        for step, (x, y) in enumerate(self.loader):
            if step >= start_step:
                yield x, y


class ShuffledTensors:
    """Batches of ``inputs`` (as float32) and ``labels`` held in memory, in a new random order every
    epoch (``torch.randperm`` on ``generator``, drawn when the epoch starts).

    Args:
        inputs, labels: ``(N, ...)`` and ``(N,)``.
        batch_size: items per step.
        generator: the order's random generator (its state is a resumed run's ``rng_data``).
        drop_last: whole batches only (else the last one may be smaller).
        flip_odd_epochs: mirror the images (left-right) on odd epochs.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        generator: torch.Generator,
        drop_last: bool = False,
        flip_odd_epochs: bool = False,
    ) -> None:
        self.inputs, self.labels = inputs, labels
        self.batch_size = int(batch_size)
        self.generator = generator
        self.flip_odd_epochs = flip_odd_epochs
        n = len(labels)
        self.steps = n // self.batch_size if drop_last else -(-n // self.batch_size)

    def __len__(self) -> int:
        return self.steps

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        """The batches of epoch ``epoch``, from ``start_step``."""
        perm = torch.randperm(len(self.labels), generator=self.generator)
        bs = self.batch_size
        for i in range(start_step, self.steps):
            idx = perm[i * bs : (i + 1) * bs]
            x = self.inputs[idx].float()
            yield (
                (x.flip(3) if self.flip_odd_epochs and epoch % 2 == 1 else x),
                self.labels[idx],
            )
