"""One helper for every lifecycle: a transition table, every other transition refused.

A `Lifecycle` holds a table {state: states it may go to}; `check(current, new)` raises
`IllegalTransition` (a bug, never a user error) for anything the table does not list.
Function state, last-update status, environments and zygotes each declare theirs.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Generic, TypeVar

S = TypeVar("S", bound=enum.Enum)


class IllegalTransition(RuntimeError):
    """A state change its lifecycle does not allow."""


class Lifecycle(Generic[S]):
    def __init__(self, name: str, table: Mapping[S, frozenset[S]]) -> None:
        self.name = name
        self._table = dict(table)
        unknown = {s for targets in table.values() for s in targets} - set(table)
        if unknown:
            raise ValueError(f"{name}: states without an entry: {sorted(str(s) for s in unknown)}")

    def allows(self, current: S, new: S) -> bool:
        return new in self._table[current]

    def check(self, current: S, new: S, *, subject: str = "") -> S:
        """`new`, if `current` may become it; else IllegalTransition."""
        if new not in self._table[current]:
            about = f" ({subject})" if subject else ""
            raise IllegalTransition(f"{self.name}{about}: {current.value} -> {new.value} is not allowed")
        return new
