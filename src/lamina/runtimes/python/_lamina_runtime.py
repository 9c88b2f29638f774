"""Lamina's Python runtime: runs inside the sandbox and speaks the Lambda Runtime API.

`bootstrap.py` beside this file (started as `python3.X -B -S /var/runtime/bootstrap.py`,
cwd /var/task) imports this module, whose bytecode can be cached, and calls `main`. It loads the
handler named by `_HANDLER`, then loops on `GET /invocation/next` and answers each event
with `POST …/response` or `…/error`, giving the handler the same event, context, logging
set-up, error bodies and error log lines as AWS Lambda's managed python3.x runtimes.

Invariants: stdlib only, and nothing heavy on the start path (a raw-socket HTTP/1.1
client, the C JSON codec, `logging` configured only when something imports it), because
every import here is paid by every cold start. All handler output is flushed before the
runtime posts a result, so the log keeps its order around Lamina's START/END lines.
"""

from __future__ import annotations

import _json
import _socket
import importlib
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # `typing` costs milliseconds at start; annotations are strings here
    from collections.abc import Callable
    from typing import Any

RUNTIME_PATH = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
JSON_DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
ERROR_LOG_INDENT = "\u00a0"  # AWS replaces leading spaces of traceback lines by no-break spaces
UNHANDLED_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. However, "
    "in rare cases, a Lambda runtime update can cause unexpected function behavior. For functions using "
    "managed runtimes, runtime updates can be triggered by a function change, or can be applied "
    "automatically. To determine if the runtime has been updated, check the runtime version in the "
    "INIT_START log entry. If this error correlates with a change in the runtime version, you may be able "
    "to mitigate this error by temporarily rolling back to the previous runtime version. For more "
    "information, see https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r"
)

# Fault types, worded as AWS's runtime words them.
MARSHAL_ERROR = "Runtime.MarshalError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"


_RUNTIME_FILES = frozenset({__file__, __file__.rpartition("/")[0] + "/bootstrap.py"})


class Fault(Exception):
    """A failure the runtime reports with its own error type (not the user's exception)."""

    def __init__(self, error_type: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace


class _State:
    """What the logging set-up needs to know about the current invocation."""

    request_id: str | None = None
    json_logs = (os.environ.get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON"


# --- the Runtime API client ---------------------------------------------------------------------


class RuntimeApiClient:
    """A minimal HTTP/1.1 keep-alive client for the Runtime API (one connection, blocking)."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._address = (host or "127.0.0.1", int(port))
        self._host = address.encode("latin-1")
        self._sock: _socket.socket | None = None
        self._pending = b""

    def next(self) -> tuple[dict[str, str], bytes | bytearray]:
        while True:
            status, headers, body = self._request(b"GET", b"/invocation/next", b"", ())
            if status == 200:
                return headers, body
            time.sleep(0.01)  # the API refused (it should not): do not spin

    def post_response(self, request_id: str, body: bytes) -> None:
        self._request(b"POST", b"/invocation/" + _quote(request_id) + b"/response", body, ())

    def post_error(self, request_id: str, body: bytes) -> None:
        self._request(b"POST", b"/invocation/" + _quote(request_id) + b"/error", body, ())

    def post_init_error(self, body: bytes, error_type: str) -> None:
        self._request(b"POST", b"/init/error", body, ((ERROR_TYPE_HEADER, error_type),))

    def _request(self, method: bytes, path: bytes, body: bytes,
                 headers: tuple[tuple[str, str], ...]) -> tuple[int, dict[str, str], bytes | bytearray]:
        head = [method, b" ", RUNTIME_PATH.encode(), path, b" HTTP/1.1\r\nHost: ", self._host, b"\r\n"]
        for name, value in headers:
            head.append(f"{name}: {value}\r\n".encode("utf-8", "replace"))
        if method == b"POST":
            head.append(b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        request = b"".join(head)
        for attempt in (0, 1):
            try:
                sock = self._sock or self._connect()
                if len(body) < 65536:
                    sock.sendall(request + body)
                else:  # up to 6 MB: do not copy it into the head
                    sock.sendall(request)
                    sock.sendall(body)
                return self._read_response(sock)
            except OSError:
                self._close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _connect(self) -> _socket.socket:
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock.connect(self._address)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._pending = b""
        return sock

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._pending = b""

    def _read_response(self, sock: _socket.socket) -> tuple[int, dict[str, str], bytes | bytearray]:
        data = self._pending
        end = data.find(b"\r\n\r\n")
        while end < 0:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the Runtime API closed the connection")
            data += chunk
            end = data.find(b"\r\n\r\n", max(0, len(data) - len(chunk) - 3))
        lines = data[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        start = end + 4
        have = len(data) - start
        if have >= length:
            self._pending = data[start + length:]
            return status, headers, data[start:start + length]
        body = bytearray(length)
        body[:have] = data[start:]
        view = memoryview(body)
        while have < length:
            received = sock.recv_into(view[have:], min(length - have, 1 << 20))
            if not received:
                raise ConnectionResetError("the Runtime API closed the connection")
            have += received
        self._pending = b""
        if headers.get("connection", "").lower() == "close":
            self._close()
        return status, headers, body


def _quote(request_id: str) -> bytes:
    if all(c.isalnum() or c in "-_.~" for c in request_id):
        return request_id.encode()
    return "".join(c if c.isalnum() or c in "-_.~" else "".join(f"%{b:02X}" for b in c.encode())
                   for c in request_id).encode()


# --- JSON, through the C codec that `json` itself uses ---------------------------------------------


class _ScannerContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__
    memo: dict[str, str] = {}


def _default(obj: Any) -> Any:
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(obj, decimal.Decimal):
        if obj.is_nan():
            return float("nan")
        if obj.is_finite() and obj.as_tuple().exponent >= 0:
            return int(obj)
        return float(obj)
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


def _ensure_ascii() -> bool:
    # AWS's python3.12 and later runtimes return Unicode characters unescaped.
    env = os.environ.get("AWS_EXECUTION_ENV", "")
    prefix = "AWS_Lambda_python3."
    if env.startswith(prefix) and env[len(prefix):].isdigit():
        return int(env[len(prefix):]) < 12
    return sys.version_info < (3, 12)


class JsonCodec:
    """json.loads/json.dumps semantics without importing `json` (and `re`) on the start path."""

    def __init__(self, ensure_ascii: bool) -> None:
        self._ensure_ascii = ensure_ascii
        self._scan: Callable[[str, int], tuple[Any, int]] | None = None
        self._encode: Callable[[Any, int], Any] | None = None
        try:
            self._scan = _json.make_scanner(_ScannerContext)  # type: ignore[arg-type]
            string_encoder = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
            self._encode = _json.make_encoder(
                {}, _default, string_encoder, None, ": ", ", ", False, False, True)
        except (AttributeError, TypeError):
            self._scan = self._encode = None

    def loads(self, data: bytes | bytearray | str) -> Any:
        scan = self._scan
        if scan is not None:
            try:
                text = data if isinstance(data, str) else data.decode("utf-8")
                text = text.strip(" \t\n\r")
                value, end = scan(text, 0)
                if end == len(text):
                    return value
            except (StopIteration, ValueError, UnicodeDecodeError):
                pass
        import json  # the slow path gives json's exact behaviour and error messages

        return json.loads(data)

    def dumps(self, value: Any) -> str:
        if self._encode is None:
            import json

            return json.dumps(value, default=_default, ensure_ascii=self._ensure_ascii)
        # a fresh encoder each time: a failed encode can leave entries in its circularity markers
        string_encoder = _json.encode_basestring_ascii if self._ensure_ascii else _json.encode_basestring
        encode = _json.make_encoder(
            {}, _default, string_encoder, None, ": ", ", ", False, False, True)
        return "".join(encode(value, 0))


# --- the context object ------------------------------------------------------------------------------


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity: dict[str, Any] | None = None) -> None:
        identity = identity or {}
        self.cognito_identity_id = identity.get("cognitoIdentityId")
        self.cognito_identity_pool_id = identity.get("cognitoIdentityPoolId")

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}([cognito_identity_id={self.cognito_identity_id},"
                f"cognito_identity_pool_id={self.cognito_identity_pool_id}])")


class Client:
    __slots__ = ("app_package_name", "app_title", "app_version_code", "app_version_name", "installation_id")
    app_package_name: Any
    app_title: Any
    app_version_code: Any
    app_version_name: Any
    installation_id: Any

    def __init__(self, client: dict[str, Any]) -> None:
        for field in self.__slots__:
            setattr(self, field, client.get(field))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}([installation_id={self.installation_id},"
                f"app_title={self.app_title},app_version_name={self.app_version_name},"
                f"app_version_code={self.app_version_code},app_package_name={self.app_package_name}])")


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, context: dict[str, Any]) -> None:
        self.custom = context.get("custom")
        self.env = context.get("env")
        client = context.get("client")
        self.client = Client(client) if isinstance(client, dict) else None

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}([custom={self.custom},env={self.env},client={self.client}])"


class LambdaContext:
    """The handler's `context`, with the attributes and methods AWS's runtime gives it."""

    def __init__(self, request_id: str, client_context: dict[str, Any] | None,
                 cognito_identity: dict[str, Any] | None, deadline_ms: int,
                 invoked_function_arn: str | None, tenant_id: str | None = None) -> None:
        environ = os.environ
        self.aws_request_id = request_id
        self.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        w3c = client_context.pop("w3c", None) if isinstance(client_context, dict) else None
        self._w3c_fields = {key: value for key, value in w3c.items()
                            if key in ("traceparent", "tracestate", "baggage") and isinstance(value, str)
                            } if isinstance(w3c, dict) else {}
        self.client_context = ClientContext(client_context) if client_context is not None else None
        self.identity = CognitoIdentity(cognito_identity)
        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        remaining = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def w3c(self) -> dict[str, str]:
        return dict(self._w3c_fields)

    def log(self, msg: Any) -> None:
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}([aws_request_id={self.aws_request_id},"
                f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
                f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
                f"function_version={self.function_version},invoked_function_arn={self.invoked_function_arn},"
                f"client_context={self.client_context},identity={self.identity},tenant_id={self.tenant_id}])")


# --- logging, configured when something first imports it --------------------------------------------


# AWS says only "Permission denied"; the cause is nearly always a zip made without Unix modes
READABLE_HINT = (" — files in the deployment package must be readable by all users "
                 "(mode 644, directories 755)")


def _log_level_name() -> str:
    value = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    return {None: "", "TRACE": "DEBUG"}.get(value, value or "").upper()


def configure_logging(logging: Any) -> None:
    """Give the root logger AWS's handler, format and level (from AWS_LAMBDA_LOG_LEVEL).

    `logging` arrives as a value (the bootstrap never imports it: it costs start time and the
    function may not use it), so its classes are `Any` to mypy; the ignores below say so."""
    logging.Formatter.converter = time.gmtime

    class LambdaLoggerHandler(logging.Handler):  # type: ignore[misc]
        def emit(self, record: Any) -> None:
            try:
                sys.stdout.write(self.format(record))
            except Exception:
                self.handleError(record)

    class LambdaLoggerFilter(logging.Filter):  # type: ignore[misc]
        def filter(self, record: Any) -> bool:
            record.aws_request_id = _State.request_id or ""
            record.tenant_id = None
            return True

    handler = LambdaLoggerHandler()
    handler.setFormatter(_json_formatter(logging) if _State.json_logs else logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    handler.addFilter(LambdaLoggerFilter())
    root = logging.getLogger()
    level = _log_level_name()
    if level in logging._nameToLevel:
        root.setLevel(level)
    root.addHandler(handler)


def _json_formatter(logging: Any) -> Any:
    reserved = {"name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module", "exc_info",
                "exc_text", "stack_info", "lineno", "funcName", "created", "msecs", "relativeCreated",
                "thread", "threadName", "processName", "process", "aws_request_id", "tenant_id",
                "_frame_type", "taskName"}

    class JsonFormatter(logging.Formatter):  # type: ignore[misc]
        def format(self, record: Any) -> str:
            import json
            import traceback

            record.levelno = min(50, max(0, record.levelno)) // 10 * 10
            record.levelname = logging.getLevelName(record.levelno)
            exc = record.exc_info
            result = {
                "timestamp": self.formatTime(record, JSON_DATE_FORMAT),
                "level": record.levelname,
                "message": (record.msg if isinstance(record.msg, dict) and not record.args
                            else record.getMessage()),
                "logger": record.name,
                "stackTrace": traceback.format_tb(exc[2]) if exc else None,
                "errorType": exc[0].__name__ if exc else None,
                "errorMessage": str(exc[1]) if exc else None,
                "requestId": getattr(record, "aws_request_id", None),
                "location": f"{record.pathname}:{record.funcName}:{record.lineno}" if exc else None,
            }
            result.update((key, value) for key, value in record.__dict__.items()
                          if key not in reserved and key not in result)
            result = {key: value for key, value in result.items() if value is not None}
            return json.dumps(result, ensure_ascii=False, default=str) + "\n"

    return JsonFormatter()


class _ConfigureLoggingOnImport:
    """A one-shot import hook: when `logging` is first imported, configure it as AWS does.

    Most handlers import logging (directly or through their libraries), but importing it
    here would cost every cold start several milliseconds.
    """

    @classmethod
    def find_spec(cls, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "logging":
            return None
        finders = [finder for finder in sys.meta_path if finder is not cls]
        sys.meta_path[:] = finders
        for finder in finders:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _ConfiguringLoader(spec.loader)
                return spec
        return None


class _ConfiguringLoader:
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        try:  # noqa: SIM105 - contextlib is not worth its import time here
            configure_logging(module)
        except AttributeError:  # a module of the function's own that shadows `logging`
            pass


def install_logging_hook() -> None:
    logging = sys.modules.get("logging")
    if logging is not None:
        configure_logging(logging)
    else:
        sys.meta_path.insert(0, _ConfigureLoggingOnImport)


def _log_line(level: str, message: str) -> str:
    now = time.time()
    stamp = f"{time.strftime(DATE_FORMAT, time.gmtime(now))}.{int(now * 1000) % 1000:03d}Z"
    return f"[{level}]\t{stamp}\t{_State.request_id or ''}\t{message}\n"


# --- errors --------------------------------------------------------------------------------------------


def make_error(message: str | None, error_type: str | None, trace: list[str] | None,
               request_id: str | None = None) -> dict[str, Any]:
    return {"errorMessage": message or "", "errorType": error_type or "",
            "requestId": request_id if request_id is not None else "", "stackTrace": trace or []}


def error_from_exception(exc: BaseException, request_id: str | None) -> dict[str, Any]:
    """AWS's error body for a user exception: the runtime's own frames are left out from the top."""
    import traceback

    frames = [(f.filename, f.lineno or 0, f.name, f.line) for f in traceback.extract_tb(exc.__traceback__)]
    for index, frame in enumerate(frames):
        if frame[0] not in _RUNTIME_FILES:
            frames = frames[index:]
            break
    return make_error(str(exc), type(exc).__name__, traceback.format_list(frames), request_id)


def _indent(line: str) -> str:
    stripped = line.lstrip(" ")
    return ERROR_LOG_INDENT * (len(line) - len(stripped)) + stripped


def format_error_log(error: dict[str, Any], codec: JsonCodec) -> str:
    """The log entry AWS's runtime writes for an error: `[ERROR] Type: message` and the traceback."""
    if _State.json_logs:
        now = time.time()
        record = {"timestamp": time.strftime(JSON_DATE_FORMAT, time.gmtime(now)), "level": "ERROR", **error}
        return codec.dumps(record) + "\n"
    description = "[ERROR]"
    if error.get("errorType"):
        description += " " + error["errorType"]
    if error.get("errorMessage"):
        if error.get("errorType"):
            description += ":"
        description += " " + error["errorMessage"]
    lines = [description]
    trace = error.get("stackTrace")
    if trace is not None:
        lines.append("Traceback (most recent call last):")
        for element in trace:
            if element == "":
                lines.append("")
            else:
                lines.extend(_indent(line) for line in element.splitlines())
    return "\n".join(lines) + "\n"


# --- loading the handler ---------------------------------------------------------------------------------


def load_handler(handler: str) -> Callable[..., Any]:
    """Import the handler's module and return the function, raising `Fault` as AWS words it."""
    try:
        module_name, function_name = handler.rsplit(".", 1)
    except ValueError as exc:
        raise Fault(MALFORMED_HANDLER_NAME, f"Bad handler '{handler}': {exc}") from None
    try:
        if module_name.split(".")[0] in sys.builtin_module_names:
            raise Fault(BUILT_IN_MODULE_CONFLICT,
                        f"Cannot use built-in module {module_name} as a handler module")
        module = importlib.import_module(module_name.replace("/", "."))
    except (ImportError, PermissionError) as exc:  # an unreadable file fails the import, as on AWS
        hint = READABLE_HINT if isinstance(exc, PermissionError) else ""
        raise Fault(IMPORT_MODULE_ERROR, f"Unable to import module '{module_name}': {exc}{hint}") from None
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise Fault(USER_CODE_SYNTAX_ERROR, f"Syntax error in module '{module_name}': {exc}", trace) from None
    try:
        entry: Callable[..., Any] = getattr(module, function_name)
    except AttributeError:
        raise Fault(HANDLER_NOT_FOUND, f"Handler '{function_name}' missing on module '{module_name}'") from None
    return entry


RUNTIME_SITE_PACKAGES = "/var/lang/lib/{version}/site-packages"  # the image's boto3 and botocore


PYC_ROOT = "/var/pyc"  # Lamina's bytecode of the function's code and layers (lamina.runtimes.bytecode)


def use_compiled_bytecode() -> None:
    """Look for the bytecode of sources under /var/task and /opt in PYC_ROOT, where Lamina
    compiled it when the code arrived (those directories are read-only: Python could never
    cache its own). Hash-checked bytecode: a stale file is never used. Everything else keeps
    its `__pycache__` beside its source."""
    external = sys.modules.get("importlib._bootstrap_external")
    if external is None or not os.path.isdir(PYC_ROOT + "/var/task"):
        return
    default = getattr(external, "cache_from_source")  # noqa: B009 - mypy knows no attributes of a module value
    tag = sys.implementation.cache_tag

    def cache_from_source(path: str, debug_override: Any = None, *, optimization: Any = None) -> str:
        if path.startswith(("/var/task/", "/opt/")) and path.endswith(".py") and optimization in (None, ""):
            return f"{PYC_ROOT}{path[:-3]}.{tag}.pyc"
        cached: str = default(path, debug_override, optimization=optimization)
        return cached

    setattr(external, "cache_from_source", cache_from_source)  # noqa: B010 - as above


def setup_sys_path() -> None:
    """The module search order of AWS's runtime: the function's code, its layers, the runtime's
    packages (boto3), the runtime, then the standard library; so a function's own boto3 (in
    /var/task or a layer) wins over the runtime's. Entries already on the path keep their
    relative order after these; empty entries (the working directory) are dropped."""
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or "/var/task"
    runtime_dir = os.environ.get("LAMBDA_RUNTIME_DIR") or "/var/runtime"
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    first = [task_root, f"/opt/python/lib/{version}/site-packages", "/opt/python",
             RUNTIME_SITE_PACKAGES.format(version=version), runtime_dir]
    sys.path[:] = first + [entry for entry in sys.path if entry and entry not in first]


# --- the loop ------------------------------------------------------------------------------------------------


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib is not worth its import time here
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def _parse_json_header(value: str | None, name: str, codec: JsonCodec) -> Any:
    if not value:
        return None
    try:
        return codec.loads(value)
    except Exception as exc:
        raise Fault(CONTEXT_UNMARSHAL_ERROR, f"Unable to parse {name} JSON: {exc}") from None


class Runtime:
    """One handler, served invocation after invocation."""

    def __init__(self, client: RuntimeApiClient, codec: JsonCodec) -> None:
        self._client = client
        self._codec = codec

    def fail_init(self, error: dict[str, Any]) -> None:
        if _State.json_logs:
            now = time.time()
            sys.stdout.write(self._codec.dumps({
                "timestamp": time.strftime(JSON_DATE_FORMAT, time.gmtime(now)), "level": "WARNING",
                "message": UNHANDLED_WARNING, "logger": "root", "requestId": ""}) + "\n")
        else:
            sys.stdout.write(_log_line("WARNING", UNHANDLED_WARNING))
        sys.stdout.write(format_error_log(error, self._codec))
        _flush()
        self._client.post_init_error(self._codec.dumps(error).encode(), error["errorType"])

    def serve(self, handler: Callable[..., Any]) -> None:
        client = self._client
        while True:
            headers, body = client.next()
            request_id = headers.get("lambda-runtime-aws-request-id", "")
            _State.request_id = request_id
            trace_id = headers.get("lambda-runtime-trace-id")
            if trace_id:
                os.environ["_X_AMZN_TRACE_ID"] = trace_id
            else:
                os.environ.pop("_X_AMZN_TRACE_ID", None)
            result, error = self._handle(handler, request_id, headers, body)
            _flush()
            if error is None:
                client.post_response(request_id, result)
            else:
                sys.stdout.write(format_error_log(error, self._codec))
                _flush()
                client.post_error(request_id, self._codec.dumps(error).encode())

    def _handle(self, handler: Callable[..., Any], request_id: str, headers: dict[str, str],
                body: bytes | bytearray) -> tuple[bytes, dict[str, Any] | None]:
        codec = self._codec
        try:
            context = LambdaContext(
                request_id,
                _parse_json_header(headers.get("lambda-runtime-client-context"), "Client Context", codec),
                _parse_json_header(headers.get("lambda-runtime-cognito-identity"), "Cognito Identity", codec),
                int(headers.get("lambda-runtime-deadline-ms") or 0),
                headers.get("lambda-runtime-invoked-function-arn"),
                headers.get("lambda-runtime-aws-tenant-id"),
            )
            event = self._unmarshal(body, headers.get("content-type", "application/json"))
            response = handler(event, context)
            return self._marshal(response), None
        except Fault as fault:
            return b"", make_error(fault.message, fault.error_type, fault.trace, request_id)
        except Exception as exc:
            return b"", error_from_exception(exc, request_id)

    def _unmarshal(self, body: bytes | bytearray, content_type: str) -> Any:
        if content_type != "application/json":
            return bytes(body)
        try:
            return self._codec.loads(body)
        except Exception as exc:
            raise Fault(UNMARSHAL_ERROR, f"Unable to unmarshal input: {exc}") from None

    def _marshal(self, response: Any) -> bytes:
        if isinstance(response, bytes):
            return response
        try:
            return self._codec.dumps(response).encode("utf-8", "surrogatepass")
        except Exception as exc:
            raise Fault(MARSHAL_ERROR, f"Unable to marshal response: {exc}") from None


def main() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib is not worth its import time here
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
    setup_sys_path()
    use_compiled_bytecode()
    install_logging_hook()
    codec = JsonCodec(_ensure_ascii())
    runtime = Runtime(RuntimeApiClient(os.environ.get("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")), codec)
    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except Fault as fault:
        runtime.fail_init(make_error(fault.message, fault.error_type, fault.trace))
        sys.exit(1)
    except Exception as exc:
        runtime.fail_init(error_from_exception(exc, None))
        sys.exit(1)
    runtime.serve(handler)


if __name__ == "__main__":
    main()
