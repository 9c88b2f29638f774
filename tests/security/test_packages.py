"""Hostile packages: what a zip or a layer can make the server do on the host.

A package is untrusted content that the server, running as root, unpacks and merges.
Each test uploads what an attacker would and checks the host afterwards: nothing
written outside the data dir, no host path followed, and nothing learnt about the host
from how the server treats a link.
"""

from __future__ import annotations

import json
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROLE
from tests.integration.conftest import raw_zip

LINK = stat.S_IFLNK | 0o777
FILE = stat.S_IFREG | 0o644
EXEC = stat.S_IFREG | 0o755


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory on the host that the attacks aim at (root's, like /etc)."""
    path = Path(tempfile.mkdtemp(prefix="lamina-target-"))
    try:
        yield path
    finally:
        for child in sorted(path.rglob("*"), reverse=True):
            child.unlink() if not child.is_dir() or child.is_symlink() else child.rmdir()
        path.rmdir()


@pytest.fixture
def publish(lambda_client: Any) -> Callable[[bytes], str]:
    published: list[tuple[str, int]] = []

    def make(zip_bytes: bytes) -> str:
        layer = lambda_client.publish_layer_version(LayerName=f"attack-{uuid.uuid4().hex[:8]}",
                                                    Content={"ZipFile": zip_bytes})
        published.append((layer["LayerArn"].rsplit(":", 1)[1], layer["Version"]))
        return str(layer["LayerVersionArn"])

    yield make  # type: ignore[misc]
    for name, version in published:
        lambda_client.delete_layer_version(LayerName=name, VersionNumber=version)


@pytest.fixture
def function(lambda_client: Any, unique_name: Callable[[str], str]) -> Iterator[Callable[..., str]]:
    """Create a function from raw zip bytes (links and all); deleted afterwards."""
    created: list[str] = []

    def make(zip_bytes: bytes, runtime: str = "python3.11", **kwargs: Any) -> str:
        name = unique_name("")
        lambda_client.create_function(FunctionName=name, Runtime=runtime, Handler="app.handler", Role=ROLE,
                                      Code={"ZipFile": zip_bytes}, **kwargs)
        created.append(name)
        lambda_client.get_waiter("function_active_v2").wait(FunctionName=name,
                                                             WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
        return name

    yield make
    for name in created:
        lambda_client.delete_function(FunctionName=name)


LIST_OPT = raw_zip([("app.py", (
    b"import os\n"
    b"def handler(event, context):\n"
    b"    out = {}\n"
    b"    for name in sorted(os.listdir('/opt')):\n"
    b"        path = '/opt/' + name\n"
    b"        if os.path.islink(path):\n"
    b"            out[name] = 'link -> ' + os.readlink(path)\n"
    b"        elif os.path.isdir(path):\n"
    b"            out[name] = sorted(os.listdir(path))\n"
    b"        else:\n"
    b"            out[name] = open(path).read()\n"
    b"    return out\n"), FILE)])


def test_a_later_layer_cannot_write_through_an_earlier_layers_symlinks(
        lambda_client: Any, function: Callable[..., str], publish: Callable[[bytes], str],
        host_dir: Path) -> None:
    """Layer A plants links to host paths, layer B has a file and a directory of the same
    names: merging them used to write B's content where A's links pointed, as root."""
    (host_dir / "pwndir").mkdir()
    a = publish(raw_zip([("evil", str(host_dir / "pwned_file").encode(), LINK),
                         ("evildir", str(host_dir / "pwndir").encode(), LINK)]))
    b = publish(raw_zip([("evil", b"content of B", FILE), ("evildir/payload.sh", b"#!/bin/sh\nid\n", EXEC)]))
    name = function(LIST_OPT, Layers=[a, b])
    response = lambda_client.invoke(FunctionName=name)
    seen = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, seen
    assert sorted(p.name for p in host_dir.rglob("*")) == ["pwndir"]  # nothing landed on the host
    assert seen == {"evil": "content of B", "evildir": ["payload.sh"]}  # later layers win, as on AWS


def test_links_in_a_layer_stay_links_inside_the_sandbox(
        lambda_client: Any, function: Callable[..., str], publish: Callable[[bytes], str],
        host_dir: Path) -> None:
    """A link that leaves the layer's tree points at the sandbox's own files, never the host's."""
    (host_dir / "secret").write_text("host only")
    layer = publish(raw_zip([("secret", str(host_dir / "secret").encode(), LINK)]))
    name = function(raw_zip([("app.py", (
        b"def handler(event, context):\n"
        b"    try:\n"
        b"        return open('/opt/secret').read()\n"
        b"    except OSError as exc:\n"
        b"        return type(exc).__name__\n"), FILE)]), Layers=[layer])
    assert json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read()) == "FileNotFoundError"


def test_how_a_bootstrap_link_is_treated_says_nothing_about_the_host(
        lambda_client: Any, function: Callable[..., str], host_dir: Path) -> None:
    """A custom runtime's bootstrap that is a link is resolved inside the sandbox: whether
    its target exists on the host must not change what the function sees."""
    (host_dir / "exists").write_text("#!/bin/sh\n")
    outcomes = []
    for target in (host_dir / "exists", host_dir / "missing"):
        name = function(raw_zip([("bootstrap", str(target).encode(), LINK)]),
                         runtime="provided.al2023")
        response = lambda_client.invoke(FunctionName=name)
        body = json.loads(response["Payload"].read())
        outcomes.append((response.get("FunctionError"), body["errorType"]))
    assert outcomes[0] == outcomes[1], outcomes
    assert outcomes[0][0] == "Unhandled"
