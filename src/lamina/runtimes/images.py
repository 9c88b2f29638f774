"""Runtime images: read-only root file systems built from a recipe (`lamina.runtimes.recipes`) by
`lamina.runtimes.builder`, kept under a runtimes directory and shared by every environment.

Layout: `<root>/<runtime>/<digest16>/{rootfs/, manifest.json}`, beside `<root>/<runtime>/.lock`.

Invariants:
- An image directory exists only complete: it is built in `<root>/<runtime>/.build-*` and published
  by one rename, after its smoke check passed; a failed build removes its staging directory.
- One build per runtime at a time, across threads and processes (an exclusive `flock` on `.lock`);
  a caller that waited finds the image its predecessor published and builds nothing.
- An image is rebuilt only when its recipe's digest changes; `prune` removes old digests.
- The wait for another builder's lock is bounded (by a whole build's timeouts).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from lamina.errors import ImageBuildError
from lamina.runtimes.builder import TIMEOUTS, Progress, build, discard, host_mirror
from lamina.runtimes.recipes import RECIPES, Recipe

__all__ = ["Image", "ImageInfo", "ImageStore", "host_mirror"]

LOCK_TIMEOUT = sum(TIMEOUTS.values())
LOCK_POLL = 0.25
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Image:
    """A published image: `root` is its root file system, bound read-only at the sandbox's `/`."""

    runtime: str
    digest: str                 # the recipe's full sha256
    root: Path
    interpreter: str            # path inside the image ("" : an OS-only image)
    version: str                # the interpreter's exact version ("3.13.5"; Debian's for OS-only images)
    size: int                   # bytes on disk
    build_seconds: float = 0.0


@dataclass(frozen=True)
class ImageInfo:
    """One runtime's current image, as `ImageStore.list` sees it."""

    name: str
    digest: str
    size: int                   # 0 unless ready
    state: str                  # "ready" | "building" | "absent"
    version: str = ""


class ImageStore:
    """The runtimes directory. `ready` is cheap; `ensure` blocks while it builds (once)."""

    def __init__(self, root: Path, mirror: str | None = None, *, recipes: Mapping[str, Recipe] | None = None) -> None:
        """`mirror`: the Debian archive to build from; None: the host's (`host_mirror`), else
        debootstrap's default. `recipes`: what can be built (default: `RECIPES`)."""
        self.root = Path(root)
        self.mirror = mirror if mirror else host_mirror()
        self.recipes: Mapping[str, Recipe] = RECIPES if recipes is None else recipes

    # -- reading ---------------------------------------------------------------------------------------
    def ready(self, runtime: str) -> Image | None:
        """The current image of `runtime` if it is built, without building (one small file read)."""
        recipe = self.recipes.get(runtime)
        if recipe is None:
            return None
        return self._read(runtime, recipe.digest())

    def published(self, runtime: str) -> list[Image]:
        """Every image of `runtime` on disk, the current one and older ones kept because a
        function version is pinned to them (`prune`'s `keep`)."""
        folder = self.root / runtime
        if not _NAME.fullmatch(runtime) or folder.is_symlink():
            return []
        images = []
        with contextlib.suppress(OSError):
            for entry in sorted(folder.iterdir()):
                if not entry.name.startswith(".") and entry.is_dir() and not entry.is_symlink():
                    image = self._read(runtime, None, entry)
                    if image is not None:
                        images.append(image)
        return images

    def _read(self, runtime: str, digest: str | None, folder: Path | None = None) -> Image | None:
        """The image in `folder` (default: the one of `digest`) per its manifest; None when it is
        not complete or not the digest asked for."""
        folder = folder if folder is not None else self.root / runtime / (digest or "")[:16]
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("digest"), str) \
                or manifest["digest"][:16] != folder.name or (digest is not None and manifest["digest"] != digest):
            return None
        return Image(runtime, manifest["digest"], folder / "rootfs", str(manifest.get("interpreter", "")),
                     str(manifest.get("version", "")), int(manifest.get("size", 0)),
                     float(manifest.get("build_seconds", 0.0)))

    def list(self) -> list[ImageInfo]:
        """Every runtime with a recipe, sorted by name, with its current image's state."""
        infos = []
        for name in sorted(self.recipes):
            image = self.ready(name)
            digest = self.recipes[name].digest()
            if image is not None:
                infos.append(ImageInfo(name, digest, image.size, "ready", image.version))
            else:
                infos.append(ImageInfo(name, digest, 0, "building" if self._busy(name) else "absent"))
        return infos

    # -- building --------------------------------------------------------------------------------------
    def ensure(self, runtime: str, progress: Progress | None = None) -> Image:
        """`runtime`'s current image, built first if needed: blocks until built (by this call or by
        a concurrent builder in any thread or process). Raises ImageBuildError when it cannot be built.
        `progress` gets "[step/steps] name: detail" lines, possibly from a helper thread."""
        recipe = self.recipes.get(runtime)
        if recipe is None:
            known = ", ".join(sorted(self.recipes))
            raise ImageBuildError(f"no image recipe for runtime {runtime!r} on this Lamina host (recipes: {known})")
        image = self.ready(runtime)
        if image is not None:
            return image
        with self._locked(runtime, LOCK_TIMEOUT):
            image = self.ready(runtime)  # built while we waited
            if image is not None:
                return image
            self._clear_leftovers(self.root / runtime)
            build(recipe, self.root / runtime, self.mirror, progress or (lambda _message: None))
        image = self.ready(runtime)
        if image is None:
            raise ImageBuildError(f"the {runtime} image was built but cannot be read back from {self.root / runtime}")
        return image

    def remove(self, runtime: str) -> bool:
        """Delete every image of `runtime` (waiting for a build of it to end); False if there was none."""
        folder = self.root / runtime
        if not _NAME.fullmatch(runtime) or not folder.is_dir() or folder.is_symlink():
            return False
        removed = False
        with self._locked(runtime, LOCK_TIMEOUT):
            for entry in folder.iterdir():
                if entry.name != ".lock":
                    removed |= not entry.name.startswith(".")
                    discard(entry)
        return removed

    def prune(self, keep: Collection[str]) -> int:
        """Delete images whose digest is neither in `keep` (full digests or their first 16 digits)
        nor a current recipe's, and leftovers of interrupted builds; runtimes being built are
        skipped. Returns how many images it deleted."""
        kept = {digest[:16] for digest in keep} | {recipe.digest()[:16] for recipe in self.recipes.values()}
        removed = 0
        try:
            folders = sorted(self.root.iterdir())
        except OSError:
            return 0
        for folder in folders:
            if folder.is_symlink() or not (folder / ".lock").is_file() or not _NAME.fullmatch(folder.name):
                continue  # not a runtime's directory (the runtime clients live beside them)
            try:
                lock = self._try_lock(folder.name)
            except OSError:
                continue
            if lock is None:
                continue  # being built
            with lock:
                for entry in list(folder.iterdir()):
                    if entry.name.startswith((".build-", ".trash-")):
                        discard(entry)
                    elif not entry.name.startswith(".") and entry.name not in kept and entry.is_dir() \
                            and not entry.is_symlink():
                        discard(entry)
                        removed += 1
        return removed

    # -- locking ---------------------------------------------------------------------------------------
    def _lock_path(self, runtime: str) -> Path:
        if not _NAME.fullmatch(runtime):
            raise ImageBuildError(f"{runtime!r} is not a runtime name")
        folder = self.root / runtime
        folder.mkdir(parents=True, exist_ok=True)
        return folder / ".lock"

    @contextlib.contextmanager
    def _locked(self, runtime: str, timeout: float) -> Iterator[None]:
        path = self._lock_path(runtime)
        with open(path, "a") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ImageBuildError(f"timed out after {timeout:.0f} s waiting for another build of "
                                              f"{runtime} to finish (it holds {path})") from None
                    time.sleep(LOCK_POLL)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _try_lock(self, runtime: str) -> contextlib.AbstractContextManager[None] | None:
        """The runtime's lock if it is free now (as a context manager that releases it), else None."""
        handle = open(self._lock_path(runtime), "a")  # noqa: SIM115 - closed by the returned manager
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None

        @contextlib.contextmanager
        def held() -> Iterator[None]:
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
        return held()

    def _busy(self, runtime: str) -> bool:
        if not (self.root / runtime / ".lock").is_file():
            return False
        lock = self._try_lock(runtime)
        if lock is None:
            return True
        with lock:
            return False

    @staticmethod
    def _clear_leftovers(folder: Path) -> None:
        """Staging directories of builds that died (we hold the lock: no live builder owns one)."""
        for entry in folder.iterdir():
            if entry.name.startswith((".build-", ".trash-")):
                discard(entry)
