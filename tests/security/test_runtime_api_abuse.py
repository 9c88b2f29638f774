"""Security issue 12, finding 2: a function abusing its own Runtime API must not hurt others.

Every attack is real function code in a real sandbox, opening sockets to its environment's
Runtime API at 127.0.0.1:9001 (`AWS_LAMBDA_RUNTIME_API`): over-long request lines, header
values and header lists, bodies declared or sent past the limit, an error type fit to forge
log lines, more connections than any runtime needs, requests that never finish (slowloris),
and floods that reconnect as soon as they are cut off. What users rely on is asserted, with
generous bounds: each violation gets its HTTP status and the connection is closed; the
server's memory stays bounded; another function's warm invokes keep succeeding promptly
during the floods; a parked runtime is never cut off; and the attacking function's own
environment keeps working afterwards.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lamina.runtimeapi.parser import MAX_HEAD, MAX_HEADERS, MAX_REQUEST_LINE
from lamina.runtimeapi.server import DISCARD_LIMIT, MAX_CONNECTIONS, MAX_ERROR_TYPE, REQUEST_TIMEOUT_S
from tests.conftest import ROLE, LaminaServer, make_zip

ATTACKER = r'''
import os, socket, threading, time

HOST, _, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].rpartition(":")
API = b"/2018-06-01/runtime/"


def connect():
    sock = socket.create_connection((HOST, int(PORT)), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def is_closed(sock, wait):
    """Whether the server closes the connection (end of stream or reset) within `wait` s."""
    sock.settimeout(wait)
    try:
        while sock.recv(65536):
            pass
        return True
    except socket.timeout:
        return False
    except OSError:
        return True


def answer(sock, wait=10.0):
    """The status the server answered with (None: no answer) and whether it then closed."""
    sock.settimeout(wait)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    status = int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1 ") else None
    return status, is_closed(sock, wait)


def once(request):
    """Send one request that is just past a limit, then stop and read the answer."""
    with connect() as sock:
        try:
            sock.sendall(request)
        except OSError:
            pass
        status, closed = answer(sock)
        return {"status": status, "closed": closed}


def flood(head, filler, seconds):
    """`head`, then `filler` without end, reconnecting whenever the server cuts it off."""
    deadline = time.monotonic() + seconds
    sent = cuts = 0
    while time.monotonic() < deadline:
        try:
            with connect() as sock:
                sock.settimeout(1.0)  # a server that stops reading cuts the flood off too
                sock.sendall(head)
                while time.monotonic() < deadline:
                    sock.sendall(filler)
                    sent += len(filler)
        except OSError:
            cuts += 1
            time.sleep(0.005)
    return {"sent": sent, "cuts": cuts}


def hold(count, seconds, partial):
    """Open `count` connections (with `partial`, each a request that never ends, a byte a
    second); report when each was closed by the server and what it answered first."""
    started = time.monotonic()
    socks, results = [], []
    for _ in range(count):
        try:
            sock = connect()
            if partial:
                sock.sendall(partial)
            socks.append(sock)
        except OSError:
            results.append({"closed_after": 0.0, "status": None})
    for sock in socks:
        sock.setblocking(False)
    pending = {sock: b"" for sock in socks}
    opened = time.monotonic()  # however long opening took, watch them for `seconds` more
    while pending and time.monotonic() - opened < seconds:
        time.sleep(0.1 if not partial else 0.25)
        for sock in list(pending):
            try:
                data = sock.recv(65536)
                if data:
                    pending[sock] += data
                    continue
            except BlockingIOError:
                if partial and int((time.monotonic() - started) * 4) % 4 == 0:
                    try:
                        sock.send(b"a")
                    except OSError:
                        pass
                continue
            except OSError:
                pass
            head = pending.pop(sock)
            status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else None
            results.append({"closed_after": round(time.monotonic() - started, 2), "status": status})
            sock.close()
    for sock in pending:
        sock.close()
    return {"open": len(pending), "closed": results}


def handler(event, context):
    attack = event["attack"]
    if attack == "once":
        return once(event["request"].encode("latin-1"))
    if attack == "flood":
        return flood(event["head"].encode("latin-1"), event["filler"].encode("latin-1") * event["repeat"],
                     event["seconds"])
    if attack == "hold":
        partial = event.get("partial", "").encode("latin-1")
        return hold(event["count"], event["seconds"], partial)
    if attack == "bodies":
        # many responses of just under the limit, each missing its last byte, held open together
        socks = []
        for _ in range(event["count"]):
            try:
                sock = connect()
                socks.append(sock)
                sock.sendall(b"POST " + API + b"invocation/" + context.aws_request_id.encode() + b"/response "
                             b"HTTP/1.1\r\nContent-Length: 6000000\r\n\r\n" + b"x" * 5999999)
            except OSError:
                pass
        time.sleep(1.0)
        refused = sum(is_closed(sock, 0.01) for sock in socks)
        for sock in socks:
            sock.close()
        return {"held": len(socks), "refused": refused}
    return "ok"
'''

# reports an init error whose type is a 100 KB string with a tab in it
INIT_ERROR = r'''
import os, socket

HOST, _, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].rpartition(":")
BODY = b'{"errorMessage": "boom", "errorType": "x"}'
EVIL = b"Evil\tType" + b"T" * 100000
with socket.create_connection((HOST, int(PORT)), timeout=5) as sock:
    sock.sendall(b"POST /2018-06-01/runtime/init/error HTTP/1.1\r\nLambda-Runtime-Function-Error-Type: " + EVIL
                 + b"\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY)
    sock.recv(4096)


def handler(event, context):
    return "init should have failed"
'''

BYSTANDER = "import uuid\nTOKEN = uuid.uuid4().hex\n\ndef handler(event, context):\n    return TOKEN\n"
PREFIX = "/2018-06-01/runtime/"
MB = 1024 * 1024


def rss_mb(server: LaminaServer) -> float:
    assert server.proc is not None
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """The server's peak RSS while the block runs, sampled every 20 ms."""

    def __init__(self, server: LaminaServer) -> None:
        self.server = server
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.server))
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def invoke(client: Any, name: str, event: Any = None, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kwargs)
    return resp, json.loads(resp["Payload"].read() or b"null")


@pytest.fixture(scope="module")
def functions(lambda_client: Any) -> Iterator[tuple[str, str]]:
    """(attacker, bystander), created once for the module."""
    suffix = uuid.uuid4().hex[:8]
    attacker, bystander = f"rapi-attacker-{suffix}", f"rapi-bystander-{suffix}"
    lambda_client.create_function(FunctionName=attacker, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                                  Code={"ZipFile": make_zip({"app.py": ATTACKER})}, MemorySize=512, Timeout=60)
    lambda_client.create_function(FunctionName=bystander, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                                  Code={"ZipFile": make_zip({"app.py": BYSTANDER})})
    for name in (attacker, bystander):
        lambda_client.get_waiter("function_active_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    yield attacker, bystander
    for name in (attacker, bystander):
        lambda_client.delete_function(FunctionName=name)


def attack(client: Any, attacker: str, **event: Any) -> Any:
    resp, body = invoke(client, attacker, event)
    assert "FunctionError" not in resp, body
    return body


def still_works(client: Any, attacker: str) -> None:
    """The attacking function's own environment keeps serving it."""
    resp, body = invoke(client, attacker, {"attack": "none"})
    assert "FunctionError" not in resp and body == "ok", body


# -- each limit, just past it --------------------------------------------------------------------


LINE = "GET /" + "a" * (MAX_REQUEST_LINE + 1024) + " HTTP/1.1\r\n\r\n"
HEADER = f"GET {PREFIX}invocation/next HTTP/1.1\r\nX-Big: " + "v" * (MAX_HEAD + 100)
HEADERS = f"GET {PREFIX}nope HTTP/1.1\r\n" + "X-Many: v\r\n" * (MAX_HEADERS + 1) + "\r\n"
BODY = f"POST {PREFIX}invocation/nope/response HTTP/1.1\r\nContent-Length: {DISCARD_LIMIT + 1}\r\n\r\n"


@pytest.mark.parametrize(("request_text", "status"), [
    (LINE, 414), (HEADER, 431), (HEADERS, 431), (BODY, 413),
], ids=["request-line", "header-value", "header-count", "declared-body"])
def test_a_request_past_a_limit_gets_its_status_and_is_closed(lambda_client: Any, functions: tuple[str, str],
                                                              request_text: str, status: int) -> None:
    attacker, _ = functions
    result = attack(lambda_client, attacker, attack="once", request=request_text)
    assert result == {"status": status, "closed": True}
    still_works(lambda_client, attacker)


def test_the_error_type_that_reaches_logs_and_callers_is_bounded_and_printable(
        lambda_client: Any, create_function: Any) -> None:
    fn = create_function({"app.py": INIT_ERROR})
    resp, body = invoke(lambda_client, fn, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled" and body == {"errorMessage": "boom", "errorType": "x"}
    log = base64.b64decode(resp["LogResult"]).decode("utf-8", "replace")
    rid = resp["ResponseMetadata"]["RequestId"]
    report = next((line for line in log.splitlines() if line.startswith(f"REPORT RequestId: {rid}\t")), log[-300:])
    # its first printable characters only; a tab would have forged a field of the REPORT line
    assert report.endswith("\tStatus: error\tError Type: " + ("EvilType" + "T" * 200)[:MAX_ERROR_TYPE] + "\t"), \
        report[-300:]


# -- floods: memory stays bounded, others keep being served ---------------------------------------


FLOODS = {
    "request-line": ("GET /", "a" * 1024, 64),
    "header-value": (f"GET {PREFIX}invocation/next HTTP/1.1\r\nX-Big: ", "v" * 1024, 64),
    "header-list": (f"GET {PREFIX}invocation/next HTTP/1.1\r\n", "X-Many: v\r\n", 6000),
    "pipelined-requests-never-read": ("", f"GET {PREFIX}nope HTTP/1.1\r\n\r\n", 2000),
}


@pytest.mark.parametrize("kind", list(FLOODS))
def test_a_flood_keeps_memory_bounded_and_others_served(lambda_client: Any, functions: tuple[str, str],
                                                        server: LaminaServer, kind: str) -> None:
    attacker, bystander = functions
    invoke(lambda_client, bystander)  # warm
    head, filler, repeat = FLOODS[kind]
    result: dict[str, Any] = {}

    def run() -> None:
        result.update(attack(lambda_client, attacker, attack="flood", head=head, filler=filler, repeat=repeat,
                             seconds=3.0))

    before = rss_mb(server)
    latencies = []
    with PeakRss(server) as rss:
        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.5)
        while thread.is_alive():
            started = time.monotonic()
            resp, _ = invoke(lambda_client, bystander)
            latencies.append(time.monotonic() - started)
            assert "FunctionError" not in resp
        thread.join()
    assert result["cuts"] >= 1, result  # the server cut the attacker off (it reconnects each time)
    assert rss.peak - before < 64, f"server RSS grew from {before:.0f} MB to {rss.peak:.0f} MB"
    assert len(latencies) >= 3 and max(latencies) < 2.0, latencies
    still_works(lambda_client, attacker)


def test_bodies_held_open_together_stay_within_the_environments_budget(
        lambda_client: Any, functions: tuple[str, str], server: LaminaServer) -> None:
    attacker, _ = functions
    before = rss_mb(server)
    with PeakRss(server) as rss:
        result = attack(lambda_client, attacker, attack="bodies", count=20)
    assert result["held"] == 20 and result["refused"] >= 15, result  # 16 MB of 120 MB fits
    assert rss.peak - before < 64, f"server RSS grew from {before:.0f} MB to {rss.peak:.0f} MB"
    still_works(lambda_client, attacker)


# -- connections ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["spawned", "forked"])
def test_connections_past_the_cap_are_closed(request: pytest.FixtureRequest, kind: str,
                                             server: LaminaServer) -> None:
    target: LaminaServer = server if kind == "spawned" else request.getfixturevalue("forking_server")
    client = target.client()
    name = f"rapi-cap-{uuid.uuid4().hex[:8]}"
    client.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": make_zip({"app.py": ATTACKER})}, Timeout=30)
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    try:
        result = attack(client, name, attack="hold", count=100, seconds=1.5, partial="")
        # the runtime's own connection and at most MAX_CONNECTIONS - 1 of the function's stay open
        assert MAX_CONNECTIONS - 12 <= result["open"] <= MAX_CONNECTIONS - 1, result
        assert len(result["closed"]) >= 100 - MAX_CONNECTIONS
        still_works(client, name)
    finally:
        client.delete_function(FunctionName=name)


def test_requests_that_never_finish_are_cut_off_but_a_parked_runtime_is_not(
        lambda_client: Any, functions: tuple[str, str]) -> None:
    attacker, bystander = functions
    _, token = invoke(lambda_client, bystander)  # its runtime is now parked in GET /next
    partial = f"GET {PREFIX}invocation/next HTTP/1.1\r\nX-Slow: "
    result = attack(lambda_client, attacker, attack="hold", count=20, seconds=REQUEST_TIMEOUT_S + 5, partial=partial)
    assert result["open"] == 0, result
    assert all(c["status"] == 408 and REQUEST_TIMEOUT_S / 2 <= c["closed_after"] <= REQUEST_TIMEOUT_S + 4
               for c in result["closed"]), result
    # the bystander's runtime waited in GET /next all along: the same environment answers
    assert invoke(lambda_client, bystander)[1] == token
    still_works(lambda_client, attacker)
