"""`lamina runtimes list | install | remove`, run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lamina.cli.main import main
from lamina.cli.runtimes import ProgressLine
from lamina.runtimes.images import ImageStore
from lamina.runtimes.recipes import RECIPES
from tests.runtimes.conftest import copy_tree, shared_dir


def test_list_an_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runtimes", "list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["RUNTIME", "STATE", "VERSION", "SIZE", "DIGEST"]
    rows = {line.split()[0]: line.split() for line in out[1:-1]}
    assert set(rows) == set(RECIPES)
    assert rows["python3.13"][1:4] == ["absent", "-", "-"]
    assert rows["python3.13"][4] == RECIPES["python3.13"].digest()[:16]
    assert out[-1] == f"(images in {tmp_path})"


def test_install_and_list_from_the_shared_cache(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LAMINA_RUNTIMES_DIR", str(shared_dir()))
    assert main(["runtimes", "install", "provided.al2023", "provided.al2023"]) == 0  # built by make setup
    out = capsys.readouterr().out.splitlines()  # (and the build's steps first if it was not)
    assert [line.split()[:2] for line in out if "ready" in line.split()] == [["provided.al2023", "ready"]]
    assert main(["runtimes", "list", "--json"]) == 0
    listed = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert listed["provided.al2023"]["state"] == "ready" and listed["provided.al2023"]["size"] > 0
    assert listed["provided.al2023"]["digest"] == RECIPES["provided.al2023"].digest()


def test_install_refuses_unknown_runtimes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runtimes", "install", "--dir", str(tmp_path), "python3.12", "python3.13"]) == 2
    err = capsys.readouterr().err
    assert "no image recipe for python3.12" in err and "python3.13" in err
    assert not list(tmp_path.iterdir())  # nothing was built


def test_remove(shared_store: ImageStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = shared_store.ensure("provided.al2023")
    copy_tree(image.root.parent, tmp_path / "provided.al2023" / image.root.parent.name)
    assert main(["runtimes", "list", "--dir", str(tmp_path)]) == 0
    assert "provided.al2023  ready" in capsys.readouterr().out
    assert main(["runtimes", "remove", "--dir", str(tmp_path), "provided.al2023"]) == 0
    assert "removed the provided.al2023 images" in capsys.readouterr().out
    assert ImageStore(tmp_path).ready("provided.al2023") is None
    assert main(["runtimes", "remove", "--dir", str(tmp_path), "provided.al2023"]) == 1
    assert "no provided.al2023 image" in capsys.readouterr().err


class Terminal:
    def __init__(self, tty: bool) -> None:
        self.text = ""
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("tty", [True, False])
def test_progress_display(tty: bool) -> None:
    terminal = Terminal(tty)
    line = ProgressLine("python3.13", terminal)  # type: ignore[arg-type]
    for message in ("[1/5] debootstrap: Debian trixie (minbase)", "[1/5] debootstrap: I: Retrieving libc6",
                    "[2/5] sdk: pip install boto3==1.44.8", "[5/5] publish: measuring and publishing"):
        line(message)
    line.finish("ready")
    if tty:  # one line redrawn in place: a bar over the steps and the tool's latest words
        assert "\rpython3.13       [" + "#" * 4 + "." * 16 + "] 2/5 sdk" in terminal.text
        assert "I: Retrieving libc6" in terminal.text and "\n" not in terminal.text.rstrip("\n")
    else:  # one line per step
        assert terminal.text.splitlines() == [
            "python3.13: [1/5] debootstrap: Debian trixie (minbase)",
            "python3.13: [2/5] sdk: pip install boto3==1.44.8",
            "python3.13: [5/5] publish: measuring and publishing",
            "python3.13       ready"]
