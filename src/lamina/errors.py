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


class ValidationException(ApiError):
    code = "ValidationException"
    status = 400


class InvalidParameterValueException(ApiError):
    code = "InvalidParameterValueException"
    status = 400


class InvalidRequestContentException(ApiError):
    code = "InvalidRequestContentException"
    status = 400


class RequestTooLargeException(ApiError):
    code = "RequestTooLargeException"
    status = 413


class RequestEntityTooLargeException(ApiError):
    code = "RequestEntityTooLargeException"
    status = 413


class ResourceNotFoundException(ApiError):
    code = "ResourceNotFoundException"
    status = 404


class ResourceConflictException(ApiError):
    code = "ResourceConflictException"
    status = 409


class ResourceNotReadyException(ApiError):
    code = "ResourceNotReadyException"
    status = 502
    fault = "Service"


class PreconditionFailedException(ApiError):
    code = "PreconditionFailedException"
    status = 412


class TooManyRequestsException(ApiError):
    code = "TooManyRequestsException"
    status = 429


class UnrecognizedClientException(ApiError):
    code = "UnrecognizedClientException"
    status = 403


class InvalidSignatureException(ApiError):
    code = "InvalidSignatureException"
    status = 403


class MissingAuthenticationTokenException(ApiError):
    code = "MissingAuthenticationTokenException"
    status = 403


class IncompleteSignatureException(ApiError):
    code = "IncompleteSignatureException"
    status = 403


class AccessDeniedException(ApiError):
    code = "AccessDeniedException"
    status = 403


class AuthorizationQueryParametersError(ApiError):
    """A presigned request's X-Amz-Expires is not a number of seconds AWS accepts (0 to 604800)."""

    code = "AuthorizationQueryParametersError"
    status = 400


class UnknownOperationException(ApiError):
    code = "UnknownOperationException"
    status = 404


class CodeStorageExceededException(ApiError):
    code = "CodeStorageExceededException"
    status = 400


class InvalidZipFileException(ApiError):
    code = "InvalidZipFileException"
    status = 502
    fault = "Service"


class InvalidRuntimeException(ApiError):
    code = "InvalidRuntimeException"
    status = 502
    fault = "Service"


class ProvisionedConcurrencyConfigNotFoundException(ApiError):
    code = "ProvisionedConcurrencyConfigNotFoundException"
    status = 404


class PolicyLengthExceededException(ApiError):
    code = "PolicyLengthExceededException"
    status = 400


class ServiceException(ApiError):
    code = "ServiceException"
    status = 500
    fault = "Service"


class SandboxError(LaminaError):
    """An execution environment could not be started or driven (OS-level failure).

    Raised only inside `lamina.sandbox`; the invoker turns it into a function error value.
    """


class ImageBuildError(LaminaError):
    """A runtime image could not be built: the message names the runtime, the step that failed and
    the failing tool's last lines of output, so that a user can act on it. Nothing half-built is
    left behind (raised only by `lamina.runtimes.images`)."""
