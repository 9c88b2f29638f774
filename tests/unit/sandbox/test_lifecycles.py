"""The environment's and the zygote's lifecycles: every transition not listed is refused."""

from __future__ import annotations

import itertools

from lamina.domain.lifecycle import IllegalTransition
from lamina.sandbox.environment import LIFECYCLE as ENVIRONMENT
from lamina.sandbox.protocols import EnvState
from lamina.sandbox.zygote import LIFECYCLE as ZYGOTE
from lamina.sandbox.zygote import ZygoteState


def test_environment_transitions() -> None:
    allowed = {(EnvState.STARTING, EnvState.IDLE), (EnvState.STARTING, EnvState.DEAD),
               (EnvState.IDLE, EnvState.BUSY), (EnvState.IDLE, EnvState.DEAD),
               (EnvState.BUSY, EnvState.IDLE), (EnvState.BUSY, EnvState.DEAD)}
    for current, new in itertools.product(EnvState, EnvState):
        assert ENVIRONMENT.allows(current, new) is ((current, new) in allowed), (current, new)


def test_zygote_transitions() -> None:
    allowed = {(ZygoteState.STARTING, ZygoteState.READY), (ZygoteState.STARTING, ZygoteState.DEAD),
               (ZygoteState.READY, ZygoteState.DEAD)}
    for current, new in itertools.product(ZygoteState, ZygoteState):
        assert ZYGOTE.allows(current, new) is ((current, new) in allowed), (current, new)


def test_a_refused_transition_names_its_subject() -> None:
    try:
        ENVIRONMENT.check(EnvState.DEAD, EnvState.IDLE, subject="abc")
    except IllegalTransition as exc:
        assert "abc" in str(exc) and "dead -> idle" in str(exc)
    else:
        raise AssertionError("DEAD -> IDLE was allowed")
