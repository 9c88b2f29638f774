"""The host's memory and disk budgets: reserving, settling /tmp, and what environments hold."""

from __future__ import annotations

import pytest

from lamina.errors import TooManyRequestsException
from lamina.invoke.capacity import HostCapacity, Reservation


class Held:
    """Anything hashable stands for an environment here: capacity only keys by it."""


def test_a_missing_disk_tmp_moves_the_reservation_to_memory() -> None:
    capacity = HostCapacity(memory_mb=1024, disk_mb=1024)
    reservation = capacity.reserve(Reservation(128, 512))
    settled = capacity.settle_tmp(reservation, tmp_on_disk=False)
    assert settled == Reservation(640, 0)
    assert (capacity.memory.reserved_mb, capacity.disk.reserved_mb) == (640, 0)
    assert capacity.settle_tmp(settled, tmp_on_disk=True) == settled


def test_no_memory_for_the_tmpfs_throttles_and_changes_nothing() -> None:
    capacity = HostCapacity(memory_mb=256, disk_mb=1024)
    reservation = capacity.reserve(Reservation(128, 512))
    with pytest.raises(TooManyRequestsException):
        capacity.settle_tmp(reservation, tmp_on_disk=False)
    assert (capacity.memory.reserved_mb, capacity.disk.reserved_mb) == (128, 512)


def test_what_an_environment_holds_is_freed_once_when_it_ends() -> None:
    capacity = HostCapacity(memory_mb=256, disk_mb=1024)
    env = Held()
    capacity.hold(env, capacity.reserve(Reservation(128, 512)))
    assert capacity.held_disk_mb(env) == 512
    assert not capacity.fits(Reservation(256, 0))
    assert capacity.fits_without(Reservation(256, 0), [env])
    capacity.drop(env)
    capacity.drop(env)
    assert (capacity.memory.reserved_mb, capacity.disk.reserved_mb) == (0, 0)
