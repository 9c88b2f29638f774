"""Entry point of Lamina's Python zygote (`python3.X -B -S /var/runtime/zygote.py`).

Function code must never run in the zygote: /var/task and /opt leave the module search
path before any module that could be shadowed there is imported. Each environment the
zygote forks puts them back (`_lamina_runtime.setup_sys_path`) and forgets the modules
only the zygote needed, so that it imports exactly what a freshly started runtime would.
"""

import sys

sys.path[:] = [entry for entry in sys.path if entry != "/var/task" and not entry.startswith("/opt")]

import _lamina_runtime  # noqa: E402, F401 - after the search path is safe

RUNTIME_MODULES = frozenset(sys.modules)

from _lamina_zygote import main  # noqa: E402

if __name__ == "__main__":
    main(RUNTIME_MODULES)
