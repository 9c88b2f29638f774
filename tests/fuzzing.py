"""How hard the fuzz tests try: a bounded run in `make test`, a long one on demand.

Every test that feeds hostile input to a parser (zips, SigV4 headers, API bodies, the
Runtime API) decorates itself with `fuzz_settings`. `make test` runs a few hundred
examples each; set LAMINA_FUZZ_EXAMPLES for a longer hunt, e.g.

    LAMINA_FUZZ_EXAMPLES=200000 .venv/bin/pytest -q -m fuzz
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("LAMINA_FUZZ_EXAMPLES", "300"))

fuzz_settings = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                         database=None)
fuzz = pytest.mark.fuzz
