"""The host's budgets for environments: memory and disk (/tmp), in MB.

Each environment holds a `Reservation` of its function's MemorySize and EphemeralStorage
from the moment its start is decided until it ends. Room is reserved before any await, so
that starts running side by side cannot all take the same room. Where /tmp cannot be on
disk (no loop devices), it is a tmpfs charged to the environment's memory cgroup, and so
to the memory budget. Everything runs on the event loop thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lamina.domain.model import FunctionConfig
from lamina.invoke.limits import ACCOUNT_LIMIT, throttled
from lamina.sandbox.protocols import Sandbox


class Capacity:
    """One of the host's budgets for environments (memory or disk), in MB."""

    def __init__(self, capacity_mb: int) -> None:
        self.capacity_mb = capacity_mb
        self.reserved_mb = 0

    def fits(self, size_mb: int) -> bool:
        return self.reserved_mb + size_mb <= self.capacity_mb

    def reserve(self, size_mb: int) -> None:
        self.reserved_mb += size_mb

    def free(self, size_mb: int) -> None:
        self.reserved_mb = max(0, self.reserved_mb - size_mb)


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one environment holds of the host's capacities while it lives."""

    memory_mb: int
    disk_mb: int


class HostCapacity:
    """Memory and disk together, and what each live environment holds of them."""

    def __init__(self, memory_mb: int, disk_mb: int) -> None:
        self.memory = Capacity(memory_mb)
        self.disk = Capacity(disk_mb)
        self._held: dict[Sandbox, Reservation] = {}

    def needs(self, cfg: FunctionConfig, tmp_on_disk: bool) -> Reservation:
        """What an environment of `cfg` holds: its MemorySize, and its /tmp on disk or, where
        /tmp is a tmpfs, in memory."""
        if tmp_on_disk:
            return Reservation(cfg.memory_size, cfg.ephemeral_storage)
        return Reservation(cfg.memory_size + cfg.ephemeral_storage, 0)

    def fits(self, need: Reservation) -> bool:
        return self.memory.fits(need.memory_mb) and self.disk.fits(need.disk_mb)

    def fits_without(self, need: Reservation, freed: Iterable[Sandbox]) -> bool:
        """Whether `need` would fit once the environments `freed` had ended."""
        held = [self._held[s] for s in freed if s in self._held]
        return (self.memory.fits(need.memory_mb - sum(r.memory_mb for r in held))
                and self.disk.fits(need.disk_mb - sum(r.disk_mb for r in held)))

    def reserve(self, need: Reservation) -> Reservation:
        self.memory.reserve(need.memory_mb)
        self.disk.reserve(need.disk_mb)
        return need

    def release(self, reservation: Reservation) -> None:
        self.memory.free(reservation.memory_mb)
        self.disk.free(reservation.disk_mb)

    def settle_tmp(self, reservation: Reservation, tmp_on_disk: bool) -> Reservation:
        """The reservation once the environment's /tmp is made: when a disk-backed one was
        reserved but could not be made (no loop device, or no disk left), the tmpfs that
        replaces it is memory, so the reservation moves there if memory has room, else this
        throttles (changing nothing)."""
        if tmp_on_disk or not reservation.disk_mb:
            return reservation
        if not self.memory.fits(reservation.disk_mb):
            raise throttled(ACCOUNT_LIMIT)
        self.disk.free(reservation.disk_mb)
        self.memory.reserve(reservation.disk_mb)
        return Reservation(reservation.memory_mb + reservation.disk_mb, 0)

    def hold(self, sandbox: Sandbox, reservation: Reservation) -> None:
        self._held[sandbox] = reservation

    def drop(self, sandbox: Sandbox) -> None:
        """The environment ended: what it held is free again."""
        reservation = self._held.pop(sandbox, None)
        if reservation is not None:
            self.release(reservation)

    def held_disk_mb(self, sandbox: Sandbox) -> int:
        held = self._held.get(sandbox)
        return held.disk_mb if held is not None else 0
