"""AWS's request-size limits at the API edge, and the one refusal of a request over one.

The HTTP layer applies the request limits to the bytes it reads, before SigV4 and parsing;
Invoke applies the payload limit of its invocation type to the payload itself.
"""

from __future__ import annotations

from lamina.errors import RequestEntityTooLargeException

__all__ = ["MAX_EVENT_BYTES", "MAX_INVOKE_BYTES", "MAX_REQUEST_BYTES", "too_large"]

MAX_REQUEST_BYTES = 70_167_211  # the largest request AWS accepts (CreateFunction)
MAX_INVOKE_BYTES = 6_291_456    # a synchronous invocation's request and payload
MAX_EVENT_BYTES = 1_048_576     # an asynchronous (Event) invocation's payload


def too_large(limit: int, operation: str) -> RequestEntityTooLargeException:
    return RequestEntityTooLargeException(f"Request must be smaller than {limit} bytes for the {operation} operation")
