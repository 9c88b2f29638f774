"""Lifecycle: listed transitions pass, every other one is refused with a real error."""

from __future__ import annotations

import enum

import pytest

from lamina.domain.lifecycle import IllegalTransition, Lifecycle


class Light(enum.Enum):
    OFF = "off"
    ON = "on"
    BROKEN = "broken"


LIGHT = Lifecycle("light", {Light.OFF: frozenset({Light.ON, Light.BROKEN}),
                            Light.ON: frozenset({Light.OFF, Light.BROKEN}),
                            Light.BROKEN: frozenset()})


def test_listed_transitions_are_allowed() -> None:
    assert LIGHT.check(Light.OFF, Light.ON) is Light.ON
    assert LIGHT.allows(Light.ON, Light.BROKEN)


def test_everything_else_is_refused() -> None:
    assert not LIGHT.allows(Light.BROKEN, Light.ON)
    with pytest.raises(IllegalTransition, match=r"light \(lamp 7\): broken -> on is not allowed"):
        LIGHT.check(Light.BROKEN, Light.ON, subject="lamp 7")
    with pytest.raises(IllegalTransition):
        LIGHT.check(Light.OFF, Light.OFF)  # staying put is a transition too, and not listed


def test_a_table_must_name_every_state_it_reaches() -> None:
    with pytest.raises(ValueError, match="states without an entry"):
        Lifecycle("half", {Light.OFF: frozenset({Light.ON})})
