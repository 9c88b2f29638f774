"""The security suite: every attack on Lamina found so far, performed for real.

Each test does what an untrusted party can do (an API caller, the code inside a
function, the content of a zip or a layer, an event payload; see SECURITY.md) against a
real server, and asserts that the boundary held. The integration fixtures are shared.
"""

from __future__ import annotations

from tests.integration.conftest import forking_server, unvalidated_client

__all__ = ["forking_server", "unvalidated_client"]
