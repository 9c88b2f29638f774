"""Hostile functions: what an execution environment must contain and withstand.

Each test runs code a careless or malicious user could upload and checks that the
damage stays inside its own environment: limits end it the way AWS Lambda ends it
(timeout, out of memory, pids), nothing outside is writable or readable, nothing inside
maps to host root, the host and the control plane are unreachable, and the server and
other functions carry on unharmed.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LaminaServer

Fn = Callable[..., str]
ALLOWED_WRITE_ERRORS = {errno.EROFS, errno.EACCES, errno.EPERM}


@pytest.fixture(scope="module", params=["spawned", "forked"])
def server(request: pytest.FixtureRequest, server: LaminaServer, forking_server: LaminaServer) -> LaminaServer:
    """Every test runs against environments started afresh and against environments forked
    from a zygote, which must contain and withstand exactly the same."""
    return server if request.param == "spawned" else forking_server


@pytest.fixture(scope="module")
def lambda_client(server: LaminaServer) -> Any:
    return server.client()


def call(client: Any, name: str, event: Any = None, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event if event is not None else {}).encode(),
                         **kwargs)
    raw = resp["Payload"].read()
    return resp, json.loads(raw) if raw else None


def healthy(server: LaminaServer) -> bool:
    with urllib.request.urlopen(server.url + "/_lamina/health", timeout=5) as r:
        return bool(r.status == 200)


def host_process_count() -> int:
    return sum(1 for p in os.listdir("/proc") if p.isdigit())


def echo(create_function: Fn) -> str:
    return create_function({"app.py": "def handler(event, context):\n    return event\n"})


# --- runaway CPU --------------------------------------------------------------------------------


def test_infinite_loop_times_out_and_environment_is_replaced(lambda_client: Any, create_function: Fn,
                                                              server: LaminaServer) -> None:
    code = (
        "def handler(event, context):\n"
        "    if event.get('spin'):\n"
        "        while True:\n"
        "            pass\n"
        "    return 'fine'\n"
    )
    fn = create_function({"app.py": code}, Timeout=1)
    started = time.monotonic()
    resp, body = call(lambda_client, fn, {"spin": True})
    assert time.monotonic() - started < 4
    rid = resp["ResponseMetadata"]["RequestId"]
    assert resp["FunctionError"] == "Unhandled"
    assert body == {"errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {rid} Error: Task timed out after 1.00 seconds"}
    started = time.monotonic()
    resp, body = call(lambda_client, fn, {})
    assert body == "fine" and "FunctionError" not in resp
    assert time.monotonic() - started < 3, "the spinning environment must be gone, not competing for CPU"
    assert healthy(server)


def test_spinning_threads_do_not_outlive_the_invoke(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "import threading\n"
        "def spin():\n"
        "    while True:\n"
        "        pass\n"
        "def handler(event, context):\n"
        "    if event.get('spin'):\n"
        "        for _ in range(4):\n"
        "            threading.Thread(target=spin, daemon=True).start()\n"
        "        while True:\n"
        "            pass\n"
        "    return 'fine'\n"
    )
    fn = create_function({"app.py": code}, Timeout=1)
    _, body = call(lambda_client, fn, {"spin": True})
    assert body["errorType"] == "Sandbox.Timedout"
    other = echo(create_function)
    started = time.monotonic()
    for i in range(5):
        assert call(lambda_client, other, {"i": i})[1] == {"i": i}
    assert time.monotonic() - started < 3


# --- memory -------------------------------------------------------------------------------------


MEMORY_HOG = (
    "def handler(event, context):\n"
    "    chunks = []\n"
    "    for _ in range(event.get('chunks', 64)):\n"
    "        chunks.append(bytearray(b'\\x01') * (16 << 20))  # 16 MiB, every page touched\n"
    "    return len(chunks)\n"
)


def test_memory_hog_is_killed_as_out_of_memory(lambda_client: Any, create_function: Fn,
                                               server: LaminaServer) -> None:
    fn = create_function({"app.py": MEMORY_HOG}, MemorySize=128, Timeout=30)
    started = time.monotonic()
    resp, body = call(lambda_client, fn, {"chunks": 64}, LogType="Tail")  # 1 GiB
    assert time.monotonic() - started < 20
    rid = resp["ResponseMetadata"]["RequestId"]
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert body == {"errorType": "Runtime.OutOfMemory",
                    "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: signal: killed"}
    log = base64.b64decode(resp["LogResult"]).decode("utf-8", "replace")
    report = next(line for line in log.splitlines() if line.startswith(f"REPORT RequestId: {rid}\t"))
    assert "\tStatus: error\tError Type: Runtime.OutOfMemory" in report
    used = int(re.search(r"\tMax Memory Used: (\d+) MB", report)[1])  # type: ignore[index]
    assert 100 <= used <= 130
    assert healthy(server)
    # the function recovers in a new environment; a small allocation fits
    resp, body = call(lambda_client, fn, {"chunks": 2})
    assert body == 2 and "FunctionError" not in resp


def test_memory_size_is_the_limit(lambda_client: Any, create_function: Fn) -> None:
    # /tmp has its own budget (EphemeralStorage): it must not lend memory to the process
    fn = create_function({"app.py": MEMORY_HOG}, MemorySize=128, Timeout=30)
    resp, body = call(lambda_client, fn, {"chunks": 16})  # 256 MiB in a 128 MB function
    assert resp.get("FunctionError") == "Unhandled", f"256 MiB fitted in a 128 MB function: {body}"
    assert body["errorType"] == "Runtime.OutOfMemory"


def test_memory_limit_follows_memory_size(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": MEMORY_HOG}, MemorySize=512, Timeout=30)
    resp, body = call(lambda_client, fn, {"chunks": 20})  # 320 MiB fits in 512 MB
    assert body == 20 and "FunctionError" not in resp


# --- processes ----------------------------------------------------------------------------------


FORK_BOMB = (
    "import os, time\n"
    "def bomb():\n"
    "    while True:\n"
    "        try:\n"
    "            os.fork()\n"
    "        except OSError:\n"
    "            time.sleep(0.01)\n"
    "def handler(event, context):\n"
    "    if event.get('bomb'):\n"
    "        bomb()\n"
    "    return 'fine'\n"
)


def test_fork_bomb_is_contained(lambda_client: Any, create_function: Fn, server: LaminaServer) -> None:
    fn = create_function({"app.py": FORK_BOMB}, Timeout=2)
    bystander = echo(create_function)
    call(lambda_client, bystander, {"warm": 1})
    baseline = host_process_count()
    started = time.monotonic()
    resp, body = call(lambda_client, fn, {"bomb": True})
    assert time.monotonic() - started < 6
    assert resp["FunctionError"] == "Unhandled"
    # it ends at its timeout, or earlier if the copies exhaust its memory first
    assert body["errorType"] in ("Sandbox.Timedout", "Runtime.OutOfMemory"), body
    started = time.monotonic()
    assert call(lambda_client, bystander, {"after": 1})[1] == {"after": 1}
    assert time.monotonic() - started < 1.0, "a warm bystander must stay fast after a fork bomb"
    deadline = time.monotonic() + 5
    while host_process_count() > baseline + 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert host_process_count() <= baseline + 10, "the bomb's processes must all be killed"
    assert healthy(server)
    fresh = echo(create_function)
    started = time.monotonic()
    assert call(lambda_client, fresh, {"cold": 1})[1] == {"cold": 1}
    assert time.monotonic() - started < 3


def test_process_limit(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "import errno, os, signal, time\n"
        "def handler(event, context):\n"
        "    children, err = [], None\n"
        "    while len(children) < 5000:\n"
        "        try:\n"
        "            pid = os.fork()\n"
        "        except OSError as e:\n"
        "            err = e.errno\n"
        "            break\n"
        "        if pid == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        children.append(pid)\n"
        "    for pid in children:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "    for pid in children:\n"
        "        os.waitpid(pid, 0)\n"
        "    return {'forked': len(children), 'errno': err}\n"
    )
    fn = create_function({"app.py": code}, Timeout=30, MemorySize=1024)
    resp, body = call(lambda_client, fn)
    assert "FunctionError" not in resp, body
    # Lambda quotas: 1,024 execution processes/threads per environment
    assert body["errno"] == errno.EAGAIN
    assert 100 <= body["forked"] < 1024


def test_thread_limit(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "import threading\n"
        "def handler(event, context):\n"
        "    stop, threads, error = threading.Event(), [], None\n"
        "    while len(threads) < 5000:\n"
        "        t = threading.Thread(target=stop.wait)\n"
        "        try:\n"
        "            t.start()\n"
        "        except RuntimeError as e:\n"
        "            error = str(e)\n"
        "            break\n"
        "        threads.append(t)\n"
        "    stop.set()\n"
        "    for t in threads:\n"
        "        t.join()\n"
        "    return {'started': len(threads), 'error': error}\n"
    )
    fn = create_function({"app.py": code}, Timeout=60, MemorySize=1024)
    resp, body = call(lambda_client, fn)
    assert "FunctionError" not in resp, body
    # the same 1,024 counts threads as well as processes
    assert body["error"] == "can't start new thread", body
    assert 1000 <= body["started"] < 1024


def test_open_file_limit(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "import errno, resource\n"
        "def handler(event, context):\n"
        "    files, err = [], None\n"
        "    while len(files) < 5000:\n"
        "        try:\n"
        "            files.append(open('/var/task/app.py'))\n"
        "        except OSError as e:\n"
        "            err = e.errno\n"
        "            break\n"
        "    for f in files:\n"
        "        f.close()\n"
        "    return {'opened': len(files), 'errno': err, 'limit': resource.getrlimit(resource.RLIMIT_NOFILE)}\n"
    )
    fn = create_function({"app.py": code}, Timeout=30)
    resp, body = call(lambda_client, fn)
    assert "FunctionError" not in resp, body
    # Lambda quotas: 1,024 file descriptors, soft and hard
    assert body["limit"] == [1024, 1024]
    assert body["errno"] == errno.EMFILE
    assert 1000 <= body["opened"] < 1024


# --- filesystem ---------------------------------------------------------------------------------


def test_writes_outside_tmp_fail(lambda_client: Any, create_function: Fn) -> None:
    token = uuid.uuid4().hex[:12]
    code = (
        "import os\n"
        "def attempt(f):\n"
        "    try:\n"
        "        f()\n"
        "        return 'ok'\n"
        "    except OSError as e:\n"
        "        return e.errno\n"
        "def handler(event, context):\n"
        "    t = event['token']\n"
        "    out = {}\n"
        "    for d in ['/var/task', '/usr', '/usr/bin', '/etc', '/', '/var', '/var/runtime',\n"
        "              '/opt', '/bin', '/lib', '/home', '/root']:\n"
        "        f = os.path.join(d, 'lamina-test-' + t)\n"
        "        out['create ' + d] = attempt(lambda: open(f, 'w').close())\n"
        "        out['mkdir ' + d] = attempt(lambda: os.mkdir(os.path.join(d, 'lamina-dir-' + t)))\n"
        "    out['overwrite code'] = attempt(lambda: open('/var/task/app.py', 'a').write('#'))\n"
        "    out['chmod code'] = attempt(lambda: os.chmod('/var/task/app.py', 0o777))\n"
        "    out['unlink code'] = attempt(lambda: os.unlink('/var/task/app.py'))\n"
        "    out['overwrite python'] = attempt(lambda: open('/usr/bin/python3.11', 'ab').close())\n"
        "    out['tmp'] = attempt(lambda: open('/tmp/lamina-test-' + t, 'w').write('x'))\n"
        "    return out\n"
    )
    fn = create_function({"app.py": code})
    resp, body = call(lambda_client, fn, {"token": token})
    assert "FunctionError" not in resp, body
    assert body.pop("tmp") == "ok", "/tmp must be writable"
    for what, result in body.items():
        path = what.split(" ", 1)[1]
        must_exist = path in ("/var/task", "/usr", "/usr/bin", "/etc", "/", "code", "python")
        allowed = ALLOWED_WRITE_ERRORS if must_exist else ALLOWED_WRITE_ERRORS | {errno.ENOENT}
        assert result in allowed, f"{what}: {result if result == 'ok' else errno.errorcode.get(result)}"
    for d in ("/usr", "/usr/bin", "/etc", "/", "/var", "/opt", "/bin", "/lib", "/home", "/root", "/tmp"):
        assert not Path(d, f"lamina-test-{token}").exists(), f"the host's {d} was written"
        assert not Path(d, f"lamina-dir-{token}").exists(), f"the host's {d} was written"
    # the function's code is intact
    assert call(lambda_client, fn, {"token": token})[1]["tmp"] == "ok"


def test_tmp_is_limited_by_ephemeral_storage(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "import errno, os\n"
        "def handler(event, context):\n"
        "    chunk = b'\\xab' * (1 << 20)\n"
        "    written, err = 0, None\n"
        "    with open('/tmp/fill', 'wb', buffering=0) as f:\n"
        "        while written < 2048:\n"
        "            try:\n"
        "                f.write(chunk)\n"
        "            except OSError as e:\n"
        "                err = e.errno\n"
        "                break\n"
        "            written += 1\n"
        "    os.unlink('/tmp/fill')\n"
        "    return {'mib': written, 'errno': err}\n"
    )
    fn = create_function({"app.py": code}, EphemeralStorage={"Size": 512}, Timeout=60)  # MemorySize 128
    resp, body = call(lambda_client, fn)
    assert "FunctionError" not in resp, body
    assert body["errno"] in (errno.ENOSPC, errno.EDQUOT), body
    assert 450 <= body["mib"] <= 530, f"/tmp of 512 MB filled after {body['mib']} MiB"
    # the space came back
    resp, body2 = call(lambda_client, fn)
    assert "FunctionError" not in resp and abs(body2["mib"] - body["mib"]) <= 8


def test_cannot_read_other_functions_or_server_data(lambda_client: Any, create_function: Fn,
                                                   server: LaminaServer) -> None:
    token = f"secret-{uuid.uuid4().hex}"
    victim_code = "def handler(event, context):\n    return open('secret.txt').read()\n"
    victim = create_function({"app.py": victim_code, "secret.txt": token})
    assert call(lambda_client, victim)[1] == token  # the victim is warm while the snoop looks
    snoop_code = (
        "import os\n"
        "SKIP = ('/proc', '/sys', '/dev', '/usr')\n"
        "def handler(event, context):\n"
        "    needle = event['token'].encode()\n"
        "    found, scanned = [], 0\n"
        "    for root, dirs, files in os.walk('/', onerror=lambda e: None):\n"
        "        dirs[:] = [d for d in dirs if os.path.join(root, d) not in SKIP]\n"
        "        for name in files:\n"
        "            path = os.path.join(root, name)\n"
        "            try:\n"
        "                with open(path, 'rb') as f:\n"
        "                    data = f.read(1 << 20)\n"
        "            except OSError:\n"
        "                continue\n"
        "            scanned += 1\n"
        "            if needle in data or needle in path.encode():\n"
        "                found.append(path)\n"
        "    visible = {p: os.path.exists(p) for p in event['paths']}\n"
        "    return {'found': found, 'scanned': scanned, 'visible': visible,\n"
        "            'task': sorted(os.listdir('/var/task'))}\n"
    )
    snoop = create_function({"app.py": snoop_code}, Timeout=30)
    paths = [str(server.data_dir), str(server.data_dir.parent), str(server.log_path), "/root", "/home"]
    resp, body = call(lambda_client, snoop, {"token": token, "paths": paths})
    assert "FunctionError" not in resp, body
    assert body["found"] == [], f"another function's code is readable: {body['found']}"
    assert body["task"] == ["app.py"]
    for p in paths[:3]:
        assert body["visible"][p] is False, f"{p} is visible inside the sandbox"


def test_root_only_host_files_are_out_of_reach(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "import os\n"
        "def attempt(f):\n"
        "    try:\n"
        "        f()\n"
        "        return 'ok'\n"
        "    except OSError as e:\n"
        "        return e.errno\n"
        "def handler(event, context):\n"
        "    return {\n"
        "        'shadow': attempt(lambda: open('/etc/shadow').read()),\n"
        "        'gshadow': attempt(lambda: open('/etc/gshadow').read()),\n"
        "        'root': attempt(lambda: os.listdir('/root')),\n"
        "        'ssh': attempt(lambda: os.listdir('/root/.ssh')),\n"
        "        'host_keys': attempt(lambda: open('/etc/ssh/ssh_host_ed25519_key').read()),\n"
        "    }\n"
    )
    fn = create_function({"app.py": code})
    resp, body = call(lambda_client, fn)
    assert "FunctionError" not in resp, body
    for what, result in body.items():
        assert result in (errno.EACCES, errno.ENOENT, errno.EPERM), f"{what} is readable"


# --- identity and privileges ---------------------------------------------------------------------


IDENTITY = """import os, subprocess, sys
KEEP = []
FIELDS = ('CapEff', 'CapPrm', 'CapInh', 'CapAmb', 'NoNewPrivs', 'Seccomp', 'Uid', 'Gid')

def handler(event, context):
    lines = open('/proc/self/status').read().splitlines()
    status = dict(line.split(':', 1) for line in lines if ':' in line)
    if event.get('marker'):
        argv = [sys.executable, '-c', 'import time; time.sleep(30)', event['marker']]
        KEEP.append(subprocess.Popen(argv))
    if event.get('stop'):
        for p in KEEP:
            p.kill()
            p.wait()
    return {
        'uid': os.getuid(), 'euid': os.geteuid(), 'gid': os.getgid(),
        'uid_map': open('/proc/self/uid_map').read(), 'gid_map': open('/proc/self/gid_map').read(),
        'status': {k: status[k].strip() for k in FIELDS},
    }
"""


def test_no_privileges_inside(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": IDENTITY})
    resp, body = call(lambda_client, fn)
    assert "FunctionError" not in resp, body
    status = body["status"]
    assert status["CapEff"] == "0000000000000000"
    assert status["CapPrm"] == "0000000000000000"
    assert status["CapAmb"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"
    assert body["uid"] != 0 and body["euid"] != 0 and body["gid"] != 0, "nothing runs as root inside"
    # only the function's own id is mapped: root of the namespace does not exist inside.
    # (The outside ids are relative to the parent namespace, which may be an intermediate one;
    # the host-side test below checks the host uid.)
    for table in ("uid_map", "gid_map"):
        for line in body[table].splitlines():
            inside, _outside, count = (int(x) for x in line.split())
            assert not (inside <= 0 < inside + count), f"{table} maps root inside: {line!r}"


def test_sandbox_process_is_unprivileged_on_the_host(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": IDENTITY}, Timeout=10)
    marker = f"lamina-marker-{uuid.uuid4().hex}"
    resp, body = call(lambda_client, fn, {"marker": marker})
    assert "FunctionError" not in resp, body
    try:
        host_pid = None
        deadline = time.monotonic() + 5
        while host_pid is None and time.monotonic() < deadline:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                        host_pid = pid
                        break
                except OSError:
                    continue
            else:
                time.sleep(0.05)
        assert host_pid is not None, "the sandboxed child is not visible from the host"
        status = dict(line.split(":", 1) for line in Path(f"/proc/{host_pid}/status").read_text().splitlines()
                      if ":" in line)
        uids = [int(u) for u in status["Uid"].split()]
        gids = [int(g) for g in status["Gid"].split()]
        assert 0 not in uids, f"sandboxed process runs as host root: Uid {uids}"
        assert 0 not in gids, f"sandboxed process runs with host root group: Gid {gids}"
        assert status["CapEff"].strip() == "0000000000000000"
    finally:
        call(lambda_client, fn, {"stop": True})


def test_no_host_environment_leaks_in(lambda_client: Any, create_function: Fn, server: LaminaServer) -> None:
    code = "import os\ndef handler(event, context):\n    return dict(os.environ)\n"
    fn = create_function({"app.py": code})
    _, env = call(lambda_client, fn)
    leaked = [k for k in env if k.startswith(("LAMINA", "PYTEST", "VIRTUAL_ENV", "SUDO_", "SSH_"))]
    assert leaked == []
    assert not any(str(server.data_dir) in v for v in env.values())
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == fn
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert env["AWS_LAMBDA_RUNTIME_API"]


# --- network --------------------------------------------------------------------------------------


NETWORK_PROBE = (
    "import os, socket, time\n"
    "def connect(host, port):\n"
    "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    "    s.settimeout(1.0)\n"
    "    started = time.monotonic()\n"
    "    try:\n"
    "        s.connect((host, port))\n"
    "        return {'result': 'connected', 'seconds': time.monotonic() - started}\n"
    "    except socket.timeout:\n"
    "        return {'result': 'timeout', 'seconds': time.monotonic() - started}\n"
    "    except OSError as e:\n"
    "        return {'result': e.errno, 'seconds': time.monotonic() - started}\n"
    "    finally:\n"
    "        s.close()\n"
    "def handler(event, context):\n"
    "    out = {t[0] + ':' + str(t[1]): connect(t[0], t[1]) for t in event['targets']}\n"
    "    host, port = os.environ['AWS_LAMBDA_RUNTIME_API'].rsplit(':', 1)\n"
    "    out['runtime-api'] = connect(host, int(port))\n"
    "    out['interfaces'] = sorted(line.split(':')[0].strip()\n"
    "                               for line in open('/proc/net/dev').read().splitlines()[2:])\n"
    "    try:\n"
    "        out['sys_class_net'] = sorted(os.listdir('/sys/class/net'))\n"
    "    except OSError:\n"
    "        out['sys_class_net'] = None\n"
    "    return out\n"
)


def host_address() -> str | None:
    """The host's address on its default route, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return str(s.getsockname()[0])
        except OSError:
            return None


def test_network_is_isolated(lambda_client: Any, create_function: Fn, server: LaminaServer) -> None:
    targets: list[tuple[str, int]] = [("127.0.0.1", server.port), ("169.254.169.254", 80),
                                      ("169.254.170.2", 80)]
    addr = host_address()
    if addr:
        targets.append((addr, server.port))
        targets.append((addr, 22))
    fn = create_function({"app.py": NETWORK_PROBE}, Timeout=15)
    resp, out = call(lambda_client, fn, {"targets": targets})
    assert "FunctionError" not in resp, out
    assert out["runtime-api"]["result"] == "connected", "the probe itself must be able to connect"
    refused = {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EACCES, errno.EPERM,
               "timeout"}
    for host, port in targets:
        r = out[f"{host}:{port}"]
        assert r["result"] in refused, f"{host}:{port} is reachable from inside: {r}"
        assert r["seconds"] < 1.5
    metadata = out["169.254.169.254:80"]
    assert metadata["result"] in (errno.ENETUNREACH, errno.EHOSTUNREACH, "timeout")
    assert out["interfaces"] == ["lo"]
    assert out["sys_class_net"] in (None, ["lo"])


# --- pid namespace ------------------------------------------------------------------------------


def test_host_processes_are_invisible(lambda_client: Any, create_function: Fn, server: LaminaServer) -> None:
    code = (
        "import os, signal\n"
        "def handler(event, context):\n"
        "    pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "    cmdlines = []\n"
        "    for p in pids:\n"
        "        try:\n"
        "            raw = open(f'/proc/{p}/cmdline', 'rb').read()\n"
        "            cmdlines.append(raw.replace(b'\\0', b' ').decode())\n"
        "        except OSError:\n"
        "            pass\n"
        "    try:\n"
        "        os.kill(event['host_pid'], 0)\n"
        "        signal_host = 'ok'\n"
        "    except OSError as e:\n"
        "        signal_host = e.errno\n"
        "    return {'pids': pids, 'cmdlines': cmdlines, 'signal_host': signal_host}\n"
    )
    fn = create_function({"app.py": code})
    # the test runner's own pid is far beyond the few pids inside a fresh pid namespace
    resp, out = call(lambda_client, fn, {"host_pid": os.getpid()})
    assert "FunctionError" not in resp, out
    assert len(out["pids"]) < 20, out["pids"]
    host_markers = ("lamina serve", "pytest", str(server.data_dir))
    assert not any(m in c for m in host_markers for c in out["cmdlines"]), out["cmdlines"]
    if os.getpid() > 100:
        assert out["signal_host"] in (errno.ESRCH, errno.EPERM)


def test_concurrent_environments_of_a_function_share_nothing_writable(
        lambda_client: Any, create_function: Fn) -> None:
    # two environments of one function at once: neither sees the other's files or terminals
    code = (
        "import os, time\n"
        "def handler(event, context):\n"
        "    mark = event['mark']\n"
        "    written = []\n"
        "    for d in ('/tmp', '/dev/shm', '/dev'):\n"
        "        try:\n"
        "            open(os.path.join(d, 'probe-' + mark), 'w').close()\n"
        "            written.append(d)\n"
        "        except OSError:\n"
        "            pass\n"
        "    os.openpty()\n"
        "    time.sleep(1)\n"
        "    seen = sorted(f for d in ('/tmp', '/dev/shm', '/dev') for f in os.listdir(d) if f.startswith('probe-'))\n"
        "    return {'written': written, 'seen': seen, 'ptys': sorted(os.listdir('/dev/pts'))}\n"
    )
    fn = create_function({"app.py": code})
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda mark: call(lambda_client, fn, {"mark": mark})[1], ["a", "b"]))
    for mark, body in zip(["a", "b"], results, strict=True):
        assert "/tmp" in body["written"] and "/dev/shm" in body["written"]
        assert set(body["seen"]) == {f"probe-{mark}"}, body
        assert [p for p in body["ptys"] if p != "ptmx"] == ["0"], body
