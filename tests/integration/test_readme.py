"""The README's examples, run as a new user would run them, against a server of their own.

Every fenced block that talks to a server (it names the default endpoint) is run verbatim
but for that endpoint, which becomes this test's server: shell blocks with bash, Python
blocks with the test's interpreter. Blocks that describe commands (`make run`, the CLI's
synopsis) or start long runs are not examples to run here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, LaminaServer

DEFAULT_ENDPOINT = "http://127.0.0.1:3001"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def examples() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    return [(lang or "sh", body) for lang, body in FENCE.findall(text) if DEFAULT_ENDPOINT in body]


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path_factory.mktemp("lamina-readme") / "data")
    srv.start()
    yield srv
    srv.stop()


def test_the_readme_has_examples_to_run() -> None:
    assert {lang for lang, _ in examples()} == {"sh", "python"}


@pytest.mark.parametrize("index", range(len(examples())))
def test_readme_example_runs(index: int, readme_server: LaminaServer, tmp_path: Path) -> None:
    lang, body = examples()[index]
    script = body.replace(DEFAULT_ENDPOINT, readme_server.url)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        env.pop(key, None)  # the example sets what it needs, as it would for a new user
    command = ["bash", "-euo", "pipefail", "-c", script] if lang == "sh" else [sys.executable, "-c", script]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    # what the example's comments promise that a line prints
    promised = [line.split("# ", 1)[1].strip() for line in body.splitlines()
                if line.startswith(("cat ", "print(")) and "# " in line]
    assert promised, "an example should say what it prints"
    for text in promised:
        assert text in result.stdout, (text, result.stdout)
