"""Which Lambda runtimes this host can serve, and how each one starts.

Managed runtimes use the host's interpreters under /usr (the sandbox sees /usr
read-only): `python3.X` for each /usr/bin/python3.X, `nodejs<N>.x` for the host's Node
major version. `provided.al2023`/`provided.al2` exec the function's own `bootstrap`.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

RUNTIME_FILES = Path(__file__).resolve().parent

# Runtimes AWS no longer accepts for CreateFunction/UpdateFunctionConfiguration.
DEPRECATED = frozenset({
    "python2.7", "python3.6", "python3.7", "python3.8",
    "nodejs", "nodejs4.3", "nodejs4.3-edge", "nodejs6.10", "nodejs8.10", "nodejs10.x", "nodejs12.x",
    "nodejs14.x", "nodejs16.x",
    "java8", "dotnetcore1.0", "dotnetcore2.0", "dotnetcore2.1", "dotnetcore3.1", "dotnet6", "dotnet5.0",
    "ruby2.5", "ruby2.7", "go1.x", "provided",
})
PROVIDED = ("provided.al2023", "provided.al2")


@dataclass(frozen=True)
class RuntimeLaunch:
    """How to start one runtime inside a sandbox."""

    name: str
    argv: tuple[str, ...]
    runtime_dir: Path | None        # bound at /var/runtime
    execution_env: str | None       # AWS_EXECUTION_ENV
    extra_env: tuple[tuple[str, str], ...] = ()
    zygote_argv: tuple[str, ...] | None = None  # a zygote that forks environments (lamina.sandbox.zygote)


def deprecation_message(runtime: str) -> str:
    return (f"The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda "
            "functions. We recommend you use a supported runtime while creating or updating functions.")


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


class RuntimeCatalog:
    """Discovered once at start-up; lookups are dictionary reads."""

    def __init__(self, usr_bin: Path = Path("/usr/bin")) -> None:
        self._launches: dict[str, RuntimeLaunch] = {}
        for python in sorted(usr_bin.glob("python3.*")):
            match = re.fullmatch(r"python(3\.\d+)", python.name)
            if match and python.is_file():
                version = match.group(1)
                _precompile(python)
                name = f"python{version}"
                self._launches[name] = RuntimeLaunch(
                    name, (str(python), "-B", "-S", "/var/runtime/bootstrap.py"),
                    RUNTIME_FILES / "python", f"AWS_Lambda_{name}",
                    (("PYTHONPATH", f"/var/runtime:/var/task:/opt/python/lib/python{version}/site-packages:"
                                    "/opt/python"),),
                    (str(python), "-B", "-S", "/var/runtime/zygote.py"),
                )
        node = usr_bin / "node"
        major = _node_major(node) if node.is_file() else None
        if major is not None and major >= 20:
            name = f"nodejs{major}.x"
            self._launches[name] = RuntimeLaunch(
                name, (str(node), "/var/runtime/bootstrap.mjs"), RUNTIME_FILES / "nodejs",
                f"AWS_Lambda_{name}",
                (("NODE_PATH", f"/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:"
                               "/var/runtime/node_modules:/var/runtime:/var/task"),),
            )
        for name in PROVIDED:
            self._launches[name] = RuntimeLaunch(name, ("/var/task/bootstrap",), None, None)

    def get(self, runtime: str) -> RuntimeLaunch | None:
        return self._launches.get(runtime)

    @property
    def names(self) -> list[str]:
        return sorted(self._launches)
