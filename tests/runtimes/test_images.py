"""Runtime images, built for real: the shared cache's images work, concurrent callers build once,
a failed build leaves nothing, and list/remove/prune keep to their contracts."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from lamina.errors import ImageBuildError
from lamina.runtimes.images import Image, ImageStore
from lamina.runtimes.recipes import RECIPES, Recipe
from tests.runtimes.conftest import MINIMAL, SETUP_RUNTIMES, copy_tree

MOUNT_POINTS = ("var/task", "var/runtime", "opt", "tmp", "proc", "dev")


def run_in(image: Image, *argv: str, env: tuple[tuple[str, str], ...] = ()) -> str:
    setenv = [arg for key, value in env for arg in ("--setenv", key, value)]
    done = subprocess.run(["bwrap", "--ro-bind", str(image.root), "/", "--proc", "/proc", "--dev", "/dev",
                           "--tmpfs", "/tmp", "--unshare-all", "--die-with-parent", "--clearenv", *setenv, *argv],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("runtime", SETUP_RUNTIMES)
def test_setup_images_have_aws_layout(shared_store: ImageStore, runtime: str) -> None:
    image = shared_store.ensure(runtime)  # `make setup` built it: no build here
    recipe = RECIPES[runtime]
    assert image.digest == recipe.digest() and image.root.name == "rootfs"
    assert image.root.parent.name == image.digest[:16] and image.size > 20 * 2**20
    assert shared_store.ready(runtime) == image
    for mount_point in MOUNT_POINTS:
        assert (image.root / mount_point).is_dir(), mount_point
    assert not any((image.root / "var/lib/apt/lists").glob("*_Packages"))
    assert not (image.root / "usr/share/man").exists() or not any((image.root / "usr/share/man").iterdir())
    assert "nobody:x:65534:" in (image.root / "etc/passwd").read_text()
    assert not any((image.root / "dev").iterdir())  # bwrap mounts its own; no device nodes in an image
    assert "localhost" in (image.root / "etc/hosts").read_text()
    assert (image.root / "etc/resolv.conf").read_text() == ""  # not the build host's resolver
    assert image.root.stat().st_mode & 0o777 == 0o755
    if recipe.family == "python":
        assert image.interpreter == f"/var/lang/bin/python{recipe.version}"
        site = image.root / f"var/lang/lib/python{recipe.version}/site-packages"
        tag = "cpython-" + recipe.version.replace(".", "")
        assert list((site / "botocore/__pycache__").glob(f"*.{tag}.pyc"))  # bytecode for its own interpreter
        assert (site / "boto3/__init__.py").stat().st_mode & 0o004  # readable by the sandbox's user
        out = run_in(image, "/var/lang/bin/python3", "-c",
                     "import sys, boto3; print(sys.version.split()[0], boto3.__file__)")
        version, boto3 = out.split()
        assert version == image.version and version.startswith(recipe.version + ".")
        assert boto3 == f"/var/lang/lib/python{recipe.version}/site-packages/boto3/__init__.py"
    elif recipe.family == "nodejs":
        assert image.interpreter == "/var/lang/bin/node" and image.version.startswith(recipe.version + ".")
        assert not list((image.root / "var/lang/lib/node_modules/@aws-sdk/client-s3").glob("dist-types"))
        out = run_in(image, "/var/lang/bin/node", "-p",
                     "require('@aws-sdk/client-dynamodb').DynamoDBClient.name + ' ' + process.version",
                     env=(("NODE_PATH", "/var/lang/lib/node_modules"),))
        assert out.split() == ["DynamoDBClient", "v" + image.version]
    else:
        assert image.interpreter == "" and (image.root / "etc/ssl/certs/ca-certificates.crt").is_file()
    manifest = json.loads((image.root.parent / "manifest.json").read_text())
    assert manifest["runtime"] == runtime and manifest["version"] == image.version
    assert manifest["build_seconds"] > 0 and manifest["size"] == image.size


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImageStore, list[Image], int]:
    """Two threads ensure the same image at once in an empty store: (store, their images, builds)."""
    store = ImageStore(tmp_path_factory.mktemp("images"), os.environ.get("LAMINA_DEBIAN_MIRROR") or None,
                       recipes={MINIMAL.runtime: MINIMAL})
    builds: list[str] = []
    images: list[Image] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def ensure() -> None:
        def progress(message: str) -> None:
            if message.startswith("[1/") and "debootstrap: Debian" in message:
                builds.append(message)
        start.wait(10)
        try:
            images.append(store.ensure(MINIMAL.runtime, progress))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ensure) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    assert not errors, errors
    return store, images, len(builds)


def test_concurrent_ensure_builds_once(built: tuple[ImageStore, list[Image], int]) -> None:
    store, images, builds = built
    assert builds == 1
    assert len(images) == 2 and images[0] == images[1]
    folder = store.root / MINIMAL.runtime
    assert sorted(p.name for p in folder.iterdir()) == [".lock", MINIMAL.digest()[:16]]
    assert store.ensure(MINIMAL.runtime, lambda message: pytest.fail(f"built again: {message}")) == images[0]


def test_list_prune_remove(built: tuple[ImageStore, list[Image], int], tmp_path: Path) -> None:
    store, images, _ = built
    image = images[0]
    assert [(i.name, i.state, i.digest) for i in store.list()] == [(MINIMAL.runtime, "ready", MINIMAL.digest())]
    folder = store.root / MINIMAL.runtime
    # an image of an older recipe, a dead build's leftovers, and a directory that is not a runtime's
    old = folder / "0123456789abcdef"
    copy_tree(image.root.parent, old)
    (folder / ".build-0123456789abcdef-x" / "rootfs").mkdir(parents=True)
    (store.root / "clients" / "python-1").mkdir(parents=True)
    assert store.prune(keep=["0123456789abcdef" + "0" * 48]) == 0
    assert old.is_dir() and not (folder / ".build-0123456789abcdef-x").exists()
    assert store.prune(keep=[]) == 1
    assert not old.exists() and store.ready(MINIMAL.runtime) == image  # the current recipe's is kept
    assert (store.root / "clients" / "python-1").is_dir()
    # a recipe that changed: its old image is no longer current
    changed = ImageStore(store.root, store.mirror, recipes={MINIMAL.runtime: replace(MINIMAL, apt=("zstd",))})
    assert changed.ready(MINIMAL.runtime) is None
    assert [i.state for i in changed.list()] == ["absent"]
    # remove takes every image of the runtime, and says when there was none
    copy = ImageStore(tmp_path / "copy", store.mirror, recipes=store.recipes)
    copy_tree(folder, tmp_path / "copy" / MINIMAL.runtime)
    assert copy.ready(MINIMAL.runtime) is not None
    assert copy.remove(MINIMAL.runtime) is True
    assert copy.ready(MINIMAL.runtime) is None
    assert sorted(p.name for p in (tmp_path / "copy" / MINIMAL.runtime).iterdir()) == [".lock"]
    assert copy.remove(MINIMAL.runtime) is False
    assert copy.remove("../etc") is False


def test_failed_build_names_the_package_and_leaves_nothing(tmp_path: Path) -> None:
    broken = Recipe(runtime="test-broken", family="provided", version="", suite="bookworm",
                    apt=("lamina-no-such-package",), smoke=("/bin/true",))
    store = ImageStore(tmp_path, os.environ.get("LAMINA_DEBIAN_MIRROR") or None, recipes={broken.runtime: broken})
    with pytest.raises(ImageBuildError) as caught:
        store.ensure(broken.runtime)
    message = str(caught.value)
    assert "test-broken" in message and "'debootstrap'" in message
    assert "lamina-no-such-package" in message  # debootstrap's own words, from its last lines
    assert sorted(p.name for p in (tmp_path / broken.runtime).iterdir()) == [".lock"]
    assert store.ready(broken.runtime) is None
    assert [i.state for i in store.list()] == ["absent"]


def test_unknown_runtime_is_refused(tmp_path: Path) -> None:
    store = ImageStore(tmp_path, "http://unused.invalid/debian")
    with pytest.raises(ImageBuildError, match=r"no image recipe for runtime 'python3\.12'"):
        store.ensure("python3.12")
    assert store.ready("python3.12") is None and not list(tmp_path.iterdir())
