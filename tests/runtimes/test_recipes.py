"""Recipes are data with a stable digest; the host's Debian mirror is read from its apt sources."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.runtimes import recipes
from lamina.runtimes.images import host_mirror
from lamina.runtimes.recipes import RECIPES


def test_digest_is_stable_across_processes() -> None:
    here = {name: recipe.digest() for name, recipe in RECIPES.items()}
    code = ("import json; from lamina.runtimes.recipes import RECIPES; "
            "print(json.dumps({n: r.digest() for n, r in RECIPES.items()}))")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(there.stdout) == here
    copy = dataclasses.replace(RECIPES["python3.13"])
    assert copy.digest() == RECIPES["python3.13"].digest()
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in here.values())
    assert len(set(here.values())) == len(here)


@pytest.mark.parametrize("change", [
    {"apt": ("python3.13", "ca-certificates")},
    {"pip": ("boto3==1.44.7",)},
    {"suite": "forky"},
    {"smoke": ("/bin/true",)},
])
def test_digest_changes_with_the_recipe(change: dict[str, object]) -> None:
    recipe = RECIPES["python3.13"]
    assert dataclasses.replace(recipe, **change).digest() != recipe.digest()  # type: ignore[arg-type]


def test_digest_changes_with_the_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    before = RECIPES["nodejs22.x"].digest()
    monkeypatch.setattr(recipes, "BUILDER_VERSION", recipes.BUILDER_VERSION + 1)
    assert RECIPES["nodejs22.x"].digest() != before


def test_recipes_cover_the_scope_and_pin_everything() -> None:
    assert set(RECIPES) == {"python3.11", "python3.13", "python3.14", "nodejs18.x", "nodejs20.x", "nodejs22.x",
                            "nodejs24.x", "ruby3.3", "provided.al2023", "provided.al2"}
    for recipe in RECIPES.values():
        assert all("==" in pin for pin in recipe.pip)
        assert all(pin.rpartition("@")[2][:1].isdigit() for pin in recipe.npm)
        assert recipe.smoke, recipe.runtime
        assert bool(recipe.interpreter) == (recipe.family != "provided")
    pythons = {r.pip for r in RECIPES.values() if r.family == "python"}
    nodes = {r.npm for r in RECIPES.values() if r.family == "nodejs"}
    assert len(pythons) == 1 and len(nodes) == 1  # one SDK version for every image of a language


def _apt(tmp_path: Path, os_release: str, files: dict[str, str]) -> tuple[Path, Path]:
    (tmp_path / "apt" / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (tmp_path / "apt" / name).write_text(text)
    (tmp_path / "os-release").write_text(os_release)
    return tmp_path / "apt", tmp_path / "os-release"


DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n'


def test_host_mirror_is_the_first_main_source_of_the_host_release(tmp_path: Path) -> None:
    apt, release = _apt(tmp_path, DEBIAN, {
        "sources.list.d/a-nodesource.sources":
            "Types: deb\nURIs: https://nodes.example/node_20.x\nSuites: nodistro\nComponents: main\n",
        "sources.list.d/b-off.sources":
            "Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n",
        "sources.list.d/debian.sources":
            "# comment\nTypes: deb deb-src\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
            "Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n",
    })
    assert host_mirror(apt, release) == "http://mirror.example/debian"
    # sources.list comes first, in apt's order
    (apt / "sources.list").write_text("deb-src http://src.example/debian bookworm main\n"
                                      "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n")
    assert host_mirror(apt, release) == "http://one.example/debian"


def test_host_mirror_is_none_off_debian_or_without_a_source(tmp_path: Path) -> None:
    apt, release = _apt(tmp_path, 'ID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n',
                        {"sources.list": "deb http://archive.example/ubuntu noble main\n"})
    assert host_mirror(apt, release) is None
    apt, release = _apt(tmp_path / "2", DEBIAN, {"sources.list": "deb cdrom:[Debian]/ bookworm main\n"})
    assert host_mirror(apt, release) is None
    assert host_mirror(tmp_path / "none", tmp_path / "none") is None
