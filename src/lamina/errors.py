"""Errors that cross a layer boundary.

    LaminaError                      anything Lamina raises on purpose
    └── ApiError                     rendered to the client as AWS renders it
        ├── ValidationException                 400  (model constraint failed)
        ├── InvalidParameterValueException      400
        ├── InvalidRequestContentException      400
        ├── RequestTooLargeException            413
        ├── RequestEntityTooLargeException      413
        ├── ResourceNotFoundException           404
        ├── ResourceConflictException           409
        ├── PreconditionFailedException         412
        ├── TooManyRequestsException            429
        ├── UnrecognizedClientException         403
        ├── InvalidSignatureException           403
        ├── AccessDeniedException               403
        ├── ServiceException                    500  (Type "Service")
        └── … one class per AWS error code, each named exactly as AWS names it

Function failures (timeouts, crashes, handler exceptions) are not exceptions: they
are values (`lamina.invoke.result.InvokeResult`) carried back to the API edge.
"""

from __future__ import annotations

from typing import Any


class LaminaError(Exception):
    """Base of every error Lamina raises on purpose."""


class ApiError(LaminaError):
    """An error the API edge renders as `x-amzn-ErrorType` + `{"Type", "message"}`."""

    code: str = "ServiceException"
    status: int = 500
    fault: str = "User"  # "User" for client errors, "Service" for server errors

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        self.headers = headers or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


def _api_error(code: str, status: int, fault: str = "User") -> type[ApiError]:
    return type(code, (ApiError,), {"code": code, "status": status, "fault": fault})


ValidationException = _api_error("ValidationException", 400)
InvalidParameterValueException = _api_error("InvalidParameterValueException", 400)
InvalidRequestContentException = _api_error("InvalidRequestContentException", 400)
RequestTooLargeException = _api_error("RequestTooLargeException", 413)
RequestEntityTooLargeException = _api_error("RequestEntityTooLargeException", 413)
ResourceNotFoundException = _api_error("ResourceNotFoundException", 404)
ResourceConflictException = _api_error("ResourceConflictException", 409)
ResourceNotReadyException = _api_error("ResourceNotReadyException", 502, "Service")
PreconditionFailedException = _api_error("PreconditionFailedException", 412)
TooManyRequestsException = _api_error("TooManyRequestsException", 429)
UnrecognizedClientException = _api_error("UnrecognizedClientException", 403)
InvalidSignatureException = _api_error("InvalidSignatureException", 403)
MissingAuthenticationTokenException = _api_error("MissingAuthenticationTokenException", 403)
IncompleteSignatureException = _api_error("IncompleteSignatureException", 403)
AccessDeniedException = _api_error("AccessDeniedException", 403)
UnknownOperationException = _api_error("UnknownOperationException", 404)
CodeStorageExceededException = _api_error("CodeStorageExceededException", 400)
InvalidZipFileException = _api_error("InvalidZipFileException", 502, "Service")
InvalidRuntimeException = _api_error("InvalidRuntimeException", 502, "Service")
ServiceException = _api_error("ServiceException", 500, "Service")


class SandboxError(LaminaError):
    """An execution environment could not be started or driven (OS-level failure).

    Raised only inside `lamina.sandbox`; the invoker turns it into a function error value.
    """
