"""Environments forked from a function's zygote when it scales out.

A user sees no difference except speed: every environment still runs the function's own
init (its own module state, an Init Duration in its REPORT), gets its own /tmp, /proc and
network, sees the code and configuration of its own generation, and a function may still
ship modules named like the standard library's. The sandbox properties of forked
environments are checked by the hostile-function tests, which run against both kinds.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.conftest import ROLE, LaminaServer, make_zip
from tests.integration.conftest import tail

Fn = Callable[..., str]

PROBE = """import os, random, time, uuid
INIT_ID = uuid.uuid4().hex
INIT_PID = os.getpid()

def handler(event, context):
    time.sleep(event.get('sleep', 0))
    with open('/tmp/mine', 'a') as f:
        f.write(INIT_ID)
    return {'init': INIT_ID, 'pid': os.getpid(), 'tmp': open('/tmp/mine').read(),
            'procs': sorted(p for p in os.listdir('/proc') if p.isdigit()),
            'var': os.environ.get('MY_VAR'), 'stream': context.log_stream_name,
            'random': random.getrandbits(64), 'cgroup': open('/proc/self/cgroup').read().strip()}
"""


def status(server: LaminaServer, name: str) -> dict[str, Any]:
    functions: dict[str, Any] = server.status()["functions"]
    return dict(functions[f"us-east-1/{name}"])


def parallel(client: Any, name: str, n: int, event: dict[str, Any]) -> list[tuple[dict[str, Any], Any, str]]:
    def one(_: int) -> tuple[dict[str, Any], Any, str]:
        resp = client.invoke(FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail")
        return resp, json.loads(resp["Payload"].read()), tail(resp)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_scaling_out_forks_environments_that_run_their_own_init(
        server: LaminaServer, lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": PROBE})
    began = time.monotonic()
    results = parallel(lambda_client, fn, 6, {"sleep": 1.5})
    assert time.monotonic() - began < 6, "the invokes ran one after another"
    bodies = [body for _, body, _ in results]
    assert all("FunctionError" not in resp for resp, _, _ in results), bodies
    assert len({b["init"] for b in bodies}) == 6, "each environment ran the function's init itself"
    assert len({b["stream"] for b in bodies}) == 6
    assert len({b["random"] for b in bodies}) == 6, "each environment seeds its own random numbers"
    assert all(b["cgroup"].endswith(":/") for b in bodies), "an environment's cgroup namespace is its own"
    assert all(b["tmp"] == b["init"] for b in bodies), "each environment has a /tmp of its own"
    assert all(b["pid"] == 2 and b["procs"] == ["1", "2"] for b in bodies), "each sees only its own processes"
    assert all("Init Duration: " in log for _, _, log in results)
    st = status(server, fn)
    assert st["cold_starts"] == 6
    assert st["forked_starts"] == 5, "the first environment starts afresh, the others fork from the zygote"
    assert st["zygotes"] == 1


def test_a_function_may_ship_modules_named_like_the_zygotes(
        server: LaminaServer, lambda_client: Any, create_function: Fn) -> None:
    # the zygote imports ctypes, socket and signal itself; a function's own modules of
    # those names must neither run in the zygote (it would break) nor be hidden from it
    files: dict[str, str | bytes] = {
        "app.py": ("import time\n\ndef handler(event, context):\n    time.sleep(1)\n"
                   "    import ctypes, socket, signal\n"
                   "    return [ctypes.SHIPPED, socket.SHIPPED, signal.SHIPPED]\n"),
        "ctypes/__init__.py": "SHIPPED = 'ctypes'\n",
        "socket.py": "SHIPPED = 'socket'\n",
        "signal.py": "SHIPPED = 'signal'\n",
    }
    fn = create_function(files)
    results = parallel(lambda_client, fn, 3, {})
    assert [body for _, body, _ in results] == [["ctypes", "socket", "signal"]] * 3
    assert status(server, fn)["forked_starts"] == 2


def test_environments_fork_from_the_current_configuration(
        server: LaminaServer, lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": PROBE}, Environment={"Variables": {"MY_VAR": "one"}})
    assert {b["var"] for _, b, _ in parallel(lambda_client, fn, 3, {"sleep": 0.5})} == {"one"}
    lambda_client.update_function_configuration(FunctionName=fn, Environment={"Variables": {"MY_VAR": "two"}})
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=fn, WaiterConfig={"Delay": 0.1})
    results = parallel(lambda_client, fn, 4, {"sleep": 1})
    assert {b["var"] for _, b, _ in results} == {"two"}
    st = status(server, fn)
    assert st["forked_starts"] >= 2 + 3, "the new configuration's environments fork from a new zygote"
    assert st["zygotes"] == 1


def _zygotes_of(server_pid: int) -> list[int]:
    """Host pids of the zygote interpreters started by this server (its descendants run
    by bubblewrap; the environments they fork carry the same command line)."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    candidates = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        pid = int(stat.parent.name)
        names[pid] = text[text.index("(") + 1:text.rindex(")")]
        parents[pid] = int(text.rsplit(")", 1)[1].split()[1])
        if cmdline and b"/bin/python3" in cmdline[0] and b"/var/runtime/zygote.py" in cmdline:
            candidates.append(pid)
    zygotes = [pid for pid in candidates if names.get(parents.get(pid, 0)) == "bwrap"]

    def descends(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == server_pid:
                return True
        return False

    return [pid for pid in zygotes if descends(pid)]


def test_a_dead_zygote_costs_its_environments_but_not_the_function(
        server: LaminaServer, lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": PROBE})
    parallel(lambda_client, fn, 3, {"sleep": 0.5})
    assert server.proc is not None
    before = set(_zygotes_of(server.proc.pid))
    assert before
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while status(server, fn)["environments"]["idle"] > 1 and time.monotonic() < deadline:
        time.sleep(0.05)  # the forked environments end with their zygote; the first one stays
    assert status(server, fn)["environments"]["idle"] == 1
    results = parallel(lambda_client, fn, 3, {"sleep": 0.5})
    assert all("FunctionError" not in resp for resp, _, _ in results), [b for _, b, _ in results]
    assert len({b["init"] for _, b, _ in results}) == 3


def test_always_forks_even_the_first_environment(forking_server: LaminaServer,
                                                 unique_name: Callable[[str], str]) -> None:
    client = forking_server.client()
    fn = unique_name("always")
    client.create_function(FunctionName=fn, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": make_zip({"app.py": PROBE})})
    try:
        client.get_waiter("function_active_v2").wait(FunctionName=fn, WaiterConfig={"Delay": 0.1})
        (resp, body, log), = parallel(client, fn, 1, {})
        assert "FunctionError" not in resp and body["procs"] == ["1", "2"]
        assert "Init Duration: " in log
        st = status(forking_server, fn)
        assert (st["cold_starts"], st["forked_starts"], st["zygotes"]) == (1, 1, 1)
    finally:
        client.delete_function(FunctionName=fn)
