"""Which Lambda runtimes this host serves, on what, and how each one starts.

A managed runtime runs on its image (`lamina.runtimes.images`): a read-only root file
system with the interpreter under /var/lang and the AWS SDK beside it, as AWS ships it.
Lamina's runtime clients (this package's `python/`, `nodejs/`, `ruby/`) are bound at
/var/runtime, from a copy that carries their bytecode for every image's interpreter.

A runtime with no recipe on this host (python3.12: no registry carries a current CPython
3.12) is served by the nearest runtime of its language that has one, and says so: the
plan's `note` goes to the server log at CreateFunction and to the function's log at each
cold start; `LAMINA_RUNTIME_FALLBACK=refuse` refuses such runtimes instead.

With `LAMINA_RUNTIME_IMAGES=off` (a host with no registry to build from) Lamina serves the
host's own interpreters, as it did before images: `python3.X` for each /usr/bin/python3.X,
`nodejs<N>.x` for the host's Node.js, and `provided.*` on the host's /usr. With images,
`provided.*` run on their OS-only images, which carry no language, as on AWS: a custom
runtime brings its interpreter in its package or a layer.

Invariant: `plan(runtime)` is a pure function of the recipes and the settings, decided at
start-up; whether an image is built changes only `launch`, never the plan.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from lamina.runtimes.bytecode import PYC_ROOT, BytecodeCache
from lamina.runtimes.images import Image, ImageStore
from lamina.runtimes.recipes import RECIPES
from lamina.runtimes.versions import runtime_version_arn

log = logging.getLogger("lamina.runtimes")

RUNTIME_FILES = Path(__file__).resolve().parent

PROVIDED = ("provided.al2023", "provided.al2")
# The managed runtimes of the families Lamina serves, as AWS names them. Each is served by
# its own image when it has a recipe here, else (fallback "nearest") by its family's nearest.
MANAGED = (
    "python3.10", "python3.11", "python3.12", "python3.13", "python3.14",
    "nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x",
    "ruby3.3", "ruby3.4",
)
FALLBACKS = ("nearest", "refuse")
IMAGE_PATH = "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"
HOST_PATH = "/usr/local/bin:/usr/bin:/bin:/opt/bin"
PROVIDED_PATH = "/usr/local/bin:/usr/bin/:/bin:/opt/bin"   # AWS's, for the OS-only runtimes
CLIENT_DIRS = {"python": "python", "nodejs": "nodejs", "ruby": "ruby"}
# Experimental features upstream Node.js enables that AWS's runtime of that major disables; a
# function re-enables one with the positive flag in NODE_OPTIONS (`lamina.invoke.launch`).
NODE_DISABLED = {20: ("--no-experimental-require-module",),
                 22: ("--no-experimental-require-module", "--no-experimental-detect-module")}


@dataclass(frozen=True)
class RuntimeLaunch:
    """How to start one runtime inside a sandbox."""

    name: str
    argv: tuple[str, ...]
    runtime_dir: Path | None        # bound at /var/runtime (None: a custom runtime)
    execution_env: str | None       # AWS_EXECUTION_ENV
    extra_env: tuple[tuple[str, str], ...] = ()
    zygote_argv: tuple[str, ...] | None = None  # a zygote that forks environments (lamina.sandbox.zygote)
    root: Path | None = None        # the image bound read-only at / (None: the host's /usr)
    served_by: str = ""             # the runtime whose image runs it ("" : itself)
    image_digest: str | None = None
    version: str = ""               # the interpreter's exact version, e.g. "3.13.5"
    note: str | None = None         # said at every cold start when `served_by` is another runtime


@dataclass(frozen=True)
class Plan:
    """What serves a runtime on this host."""

    runtime: str
    served_by: str                  # the runtime whose image (or host interpreter) runs it
    image: bool                     # it needs an image (built on first use)
    note: str | None = None         # why another runtime serves it


def family_of(runtime: str) -> tuple[str, tuple[int, ...]] | None:
    """("python", (3, 12)) for python3.12, ("nodejs", (22,)) for nodejs22.x; None otherwise."""
    match = re.fullmatch(r"(python|ruby)(\d+)\.(\d+)|nodejs(\d+)\.x", runtime)
    if match is None:
        return None
    if match.group(4) is not None:
        return "nodejs", (int(match.group(4)),)
    return match.group(1), (int(match.group(2)), int(match.group(3)))


def nearest(runtime: str, candidates: list[str]) -> str | None:
    """The candidate of `runtime`'s family closest in version; a tie goes to the newer one
    (code written for 3.12 meets 3.13's additions, not 3.11's absences)."""
    family = family_of(runtime)
    if family is None:
        return None
    same = [(c, v) for c in candidates if (f := family_of(c)) is not None and f[0] == family[0]
            for v in [f[1]]]
    if not same:
        return None

    def distance(pair: tuple[str, tuple[int, ...]]) -> tuple[int, int]:
        version = pair[1]
        steps = abs(version[-1] - family[1][-1]) + 100 * abs(version[0] - family[1][0])
        return steps, -version[-1]

    return min(same, key=distance)[0]


def _client_hash(family: str) -> str:
    digest = hashlib.sha256()
    folder = RUNTIME_FILES / CLIENT_DIRS[family]
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in (".py", ".mjs", ".rb", ".js"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class RuntimeCatalog:
    """Decided once at start-up; `get` and `plan` are dictionary reads, `prepare` builds."""

    def __init__(self, images: ImageStore | None = None, *, fallback: str = "nearest",
                 usr_bin: Path = Path("/usr/bin"), bytecode: BytecodeCache | None = None) -> None:
        if fallback not in FALLBACKS:
            raise ValueError(f"LAMINA_RUNTIME_FALLBACK must be one of {', '.join(FALLBACKS)}, not {fallback!r}")
        self._images = images
        self._bytecode = bytecode
        self._plans: dict[str, Plan] = {}
        self._host: dict[str, RuntimeLaunch] = {}
        self._launches: dict[str, RuntimeLaunch] = {}
        self._pinned: dict[tuple[str, str, str], RuntimeLaunch | None] = {}
        self._lock = threading.Lock()
        self._host = _host_launches(usr_bin, languages=images is None)
        for name in PROVIDED:
            self._plans[name] = Plan(name, name, image=images is not None)
        if images is None:
            served = sorted(n for n in self._host if n not in PROVIDED)
        else:
            served = sorted(r for r in RECIPES if r not in PROVIDED)
        for name in served:
            self._plans[name] = Plan(name, name, image=images is not None)
        if fallback == "nearest":
            for name in MANAGED:
                if name in self._plans:
                    continue
                other = nearest(name, served)
                if other is not None:
                    self._plans[name] = Plan(
                        name, other, image=self._plans[other].image,
                        note=f"{name} is served by {other}: no {name} image can be built on this Lamina host")

    # -- what serves what -------------------------------------------------------------------------
    def plan(self, runtime: str) -> Plan | None:
        """None: this host cannot serve `runtime` at all."""
        return self._plans.get(runtime)

    def image_digest(self, runtime: str) -> str | None:
        """The digest of the image that serves `runtime` (known before it is built: it is its
        recipe's); None when no image does (the host's interpreters, custom runtimes)."""
        plan = self._plans.get(runtime)
        if plan is None or not plan.image:
            return None
        return RECIPES[plan.served_by].digest()

    def get(self, runtime: str) -> RuntimeLaunch | None:
        """How to start `runtime` now: None when it is not served here, or its image is not
        built yet (`prepare` builds it)."""
        launch = self._launches.get(runtime)
        if launch is not None:
            return launch
        plan = self._plans.get(runtime)
        if plan is None:
            return None
        if not plan.image:
            host = self._host.get(plan.served_by)
            if host is None:
                return None
            launch = replace(host, name=runtime, served_by=plan.served_by, note=plan.note,
                             execution_env=f"AWS_Lambda_{runtime}" if host.execution_env else None)
        else:
            assert self._images is not None
            image = self._images.ready(plan.served_by)
            if image is None:
                return None
            launch = self._image_launch(plan, image)
        self._launches[runtime] = launch
        return launch

    def pinned(self, runtime: str, region: str, version_arn: str) -> RuntimeLaunch | None:
        """Blocking (reads the runtime's manifests once): how to start `runtime` on the older
        image `version_arn` names (a version pinned to the runtime version it ran before its
        recipe changed). None when that is not an image kept on this host."""
        key = (runtime, region, version_arn)
        if key in self._pinned:
            return self._pinned[key]
        launch = None
        image = self._image_of(runtime, region, version_arn)
        plan = self._plans.get(runtime)
        if image is not None and plan is not None:
            launch = self._image_launch(plan, image)
        self._pinned[key] = launch
        return launch

    def kept_versions(self, runtime: str, region: str) -> list[str]:
        """Blocking: the RuntimeVersionArns of every image of `runtime` on this host, the
        current one and older ones kept for pinned versions."""
        plan = self._plans.get(runtime)
        if plan is None or not plan.image or self._images is None:
            return []
        return [runtime_version_arn(region, runtime, image.digest) for image in self._images.published(plan.served_by)]

    def _image_of(self, runtime: str, region: str, version_arn: str) -> Image | None:
        plan = self._plans.get(runtime)
        if plan is None or not plan.image or self._images is None:
            return None
        for image in self._images.published(plan.served_by):
            if runtime_version_arn(region, runtime, image.digest) == version_arn:
                return image
        return None

    @property
    def names(self) -> list[str]:
        return sorted(self._plans)

    def describe(self) -> list[dict[str, object]]:
        """Every runtime served here: what serves it and the state of that image (reads the
        runtimes directory: call it off the event loop)."""
        images = {info.name: info for info in self._images.list()} if self._images is not None else {}
        described: list[dict[str, object]] = []
        for name in sorted(self._plans):
            plan = self._plans[name]
            entry: dict[str, object] = {"Runtime": name, "ServedBy": plan.served_by}
            info = images.get(plan.served_by)
            if info is not None:
                entry.update({"Image": {"Digest": info.digest, "State": info.state, "Size": info.size,
                                        "Version": info.version}})
            elif not plan.image:
                entry["Image"] = None  # the host's own interpreter (or /usr)
            if plan.note:
                entry["Note"] = plan.note
            described.append(entry)
        return described

    # -- building ---------------------------------------------------------------------------------
    def prepare(self, runtime: str, progress: Callable[[str], None] | None = None) -> RuntimeLaunch:
        """Blocking: build `runtime`'s image if it is not built (once, however many callers),
        and return how to start it. ImageBuildError when the build fails; KeyError when the
        runtime is not served here."""
        plan = self._plans[runtime]
        launch = self.get(runtime)
        if launch is not None:
            return launch
        if plan.image:
            assert self._images is not None
            self._images.ensure(plan.served_by, progress)
            self._launches.pop(runtime, None)
        launch = self.get(runtime)
        if launch is None:
            raise KeyError(runtime)
        return launch

    # -- bytecode of functions' code (lamina.runtimes.bytecode) ---------------------------------------
    def _python_image(self, runtime: str) -> Image | None:
        plan = self._plans.get(runtime)
        if plan is None or not plan.image or self._images is None or self._bytecode is None \
                or RECIPES[plan.served_by].family != "python":
            return None
        return self._images.ready(plan.served_by)

    def compile(self, runtime: str, trees: list[tuple[Path, str]]) -> None:
        """Blocking: compile a Python function's trees ((host path, where it is seen)) once
        for its image's interpreter; nothing for other runtimes, or before the image exists."""
        image = self._python_image(runtime)
        if image is not None:
            assert self._bytecode is not None
            for tree, mount in trees:
                self._bytecode.compile(image, tree, mount)

    def bytecode_binds(self, runtime: str, trees: list[tuple[Path, str]]) -> tuple[tuple[str, str], ...]:
        """(host path, path inside) of the compiled trees an environment binds: a few stat calls."""
        image = self._python_image(runtime)
        if image is None:
            return ()
        assert self._bytecode is not None
        found = ((self._bytecode.compiled(image, tree, mount), mount) for tree, mount in trees)
        return tuple((str(path), PYC_ROOT + mount) for path, mount in found if path is not None)

    def prune(self, pins: Iterable[tuple[str, str, str]] = ()) -> int:
        """Blocking: delete the images no recipe here names any more, but for those a function
        version is pinned to (`pins`: its (runtime, region, RuntimeVersionArn)), and the runtime
        clients of older Lamina code. Returns how many images it deleted."""
        if self._images is None:
            return 0
        keep = {image.digest for pin in set(pins) if (image := self._image_of(*pin)) is not None}
        removed = self._images.prune(keep)
        clients = self._images.root / "clients"
        current = {f"{family}-{_client_hash(family)}" for family in CLIENT_DIRS}
        with self._lock, contextlib.suppress(OSError):
            for entry in list(clients.iterdir()):
                if entry.name not in current and entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)  # Lamina's own copies: links in them are not followed
        return removed

    def forget(self, runtime: str | None = None) -> None:
        """Drop cached launches (an image was removed or rebuilt)."""
        self._pinned.clear()
        if runtime is None:
            self._launches.clear()
        else:
            for name in [n for n, launch in self._launches.items() if runtime in (n, launch.served_by)]:
                del self._launches[name]

    def _image_launch(self, plan: Plan, image: Image) -> RuntimeLaunch:
        recipe = RECIPES[plan.served_by]
        family = recipe.family
        if family == "provided":
            launch = RuntimeLaunch(plan.runtime, ("/var/task/bootstrap",), None, None, (("PATH", PROVIDED_PATH),))
        elif family == "python":
            python = image.interpreter
            launch = RuntimeLaunch(
                plan.runtime, (python, "-B", "-S", "/var/runtime/bootstrap.py"), None, f"AWS_Lambda_{plan.runtime}",
                (("PATH", IMAGE_PATH), ("PYTHONPATH", "/var/runtime")),
                (python, "-B", "-S", "/var/runtime/zygote.py"))
        elif family == "nodejs":
            disabled = NODE_DISABLED.get(int(recipe.version), ())
            launch = RuntimeLaunch(
                plan.runtime, (image.interpreter, *disabled, "/var/runtime/bootstrap.mjs"), None,
                f"AWS_Lambda_{plan.runtime}",
                (("PATH", IMAGE_PATH),
                 ("NODE_PATH", f"/opt/nodejs/node{recipe.version}/node_modules:/opt/nodejs/node_modules:"
                               "/var/runtime/node_modules:/var/runtime:/var/task")))
        else:  # ruby: RubyGems loads on first need (the client's --disable-gems saves ~70 ms a start)
            gems = f"{recipe.version}.0"
            launch = RuntimeLaunch(
                plan.runtime, (image.interpreter, "--disable-gems", "/var/runtime/bootstrap.rb"), None,
                f"AWS_Lambda_{plan.runtime}",
                (("PATH", IMAGE_PATH), ("GEM_PATH", f"/var/task/vendor/bundle/ruby/{gems}:/opt/ruby/gems/{gems}"),
                 ("RUBYLIB", "/var/task:/var/runtime/lib:/opt/ruby/lib")))
        client = None if family == "provided" else self._client_dir(family, image)
        return replace(launch, runtime_dir=client, root=image.root, served_by=plan.served_by,
                       image_digest=image.digest, version=image.version, note=plan.note)

    def _client_dir(self, family: str, image: Image) -> Path:
        """Lamina's runtime client for `family`, as a directory of its own beside the images:
        a copy of the client's files, their bytecode for `image`'s interpreter (compiled by it,
        so cold starts load rather than compile it) and, for Node.js, `node_modules` pointing at
        the image's SDK (resolved inside the sandbox)."""
        assert self._images is not None
        with self._lock:
            target = self._images.root / "clients" / f"{family}-{_client_hash(family)}"
            if not target.is_dir():
                staging = target.with_name(target.name + f".tmp{os.getpid()}")
                shutil.rmtree(staging, ignore_errors=True)
                shutil.copytree(RUNTIME_FILES / CLIENT_DIRS[family], staging,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                if family == "nodejs":
                    os.symlink("/var/lang/lib/node_modules", staging / "node_modules")
                os.chmod(staging, 0o755)
                os.rename(staging, target)
            if family == "python":
                self._compile_client(target, image)
            return target

    def _compile_client(self, client: Path, image: Image) -> None:
        tag = "cpython-" + "".join(image.version.split(".")[:2])
        if any((client / "__pycache__").glob(f"*.{tag}.pyc")):
            return
        sources = [p.name for p in client.glob("*.py")]
        script = ("import py_compile, sys\n"
                  "for f in sys.argv[1:]: py_compile.compile('/var/runtime/' + f, doraise=True)")
        with contextlib.suppress(OSError, subprocess.SubprocessError):  # else it compiles itself at each start
            subprocess.run(
                ["bwrap", "--ro-bind", str(image.root), "/", "--bind", str(client), "/var/runtime",
                 "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--unshare-all", "--die-with-parent",
                 image.interpreter, "-S", "-c", script, *sources],
                capture_output=True, timeout=60, check=True)
            for path in client.rglob("*"):
                os.chmod(path, 0o755 if path.is_dir() else 0o644)


# --- the host's own interpreters (LAMINA_RUNTIME_IMAGES=off) ------------------------------------------

def _node_major(node: Path) -> int | None:
    try:
        out = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", out.strip())
    return int(match.group(1)) if match else None


def _precompile(python: Path) -> None:
    """Write the runtime's bytecode for this interpreter (the sandbox sees it read-only),
    so that cold starts load it instead of compiling it."""
    sources = [str(RUNTIME_FILES / "python" / name) for name in ("_lamina_runtime.py", "_lamina_zygote.py")]
    with contextlib.suppress(OSError, subprocess.SubprocessError):  # else it compiles itself at each start
        subprocess.run([str(python), "-c",
                        "import py_compile, sys\nfor f in sys.argv[1:]: py_compile.compile(f, doraise=True)",
                        *sources], capture_output=True, timeout=30, check=True)


def _host_launches(usr_bin: Path, *, languages: bool) -> dict[str, RuntimeLaunch]:
    """`provided.*` on the host's /usr and, with `languages`, the host's interpreters."""
    launches = {name: RuntimeLaunch(name, ("/var/task/bootstrap",), None, None, served_by=name) for name in PROVIDED}
    if not languages:
        return launches
    for python in sorted(usr_bin.glob("python3.*")):
        match = re.fullmatch(r"python(3\.\d+)", python.name)
        if match and python.is_file():
            version = match.group(1)
            _precompile(python)
            name = f"python{version}"
            launches[name] = RuntimeLaunch(
                name, (str(python), "-B", "-S", "/var/runtime/bootstrap.py"),
                RUNTIME_FILES / "python", f"AWS_Lambda_{name}",
                (("PATH", HOST_PATH),
                 ("PYTHONPATH", f"/var/runtime:/var/task:/opt/python/lib/python{version}/site-packages:"
                                "/opt/python")),
                (str(python), "-B", "-S", "/var/runtime/zygote.py"),
                served_by=name,
            )
    node = usr_bin / "node"
    major = _node_major(node) if node.is_file() else None
    if major is not None and major >= 18:
        name = f"nodejs{major}.x"
        launches[name] = RuntimeLaunch(
            name, (str(node), *NODE_DISABLED.get(major, ()), "/var/runtime/bootstrap.mjs"), RUNTIME_FILES / "nodejs",
            f"AWS_Lambda_{name}",
            (("PATH", HOST_PATH),
             ("NODE_PATH", f"/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:"
                           "/var/runtime/node_modules:/var/runtime:/var/task")),
            served_by=name,
        )
    return launches
