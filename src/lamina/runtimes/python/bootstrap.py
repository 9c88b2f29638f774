"""Entry point of Lamina's Python runtime (`python3.X -B -S /var/runtime/bootstrap.py`).

Kept tiny because a script is compiled on every start; the runtime itself lives in
`_lamina_runtime.py`, whose cached bytecode (when the host has written it) loads at once.
"""

from _lamina_runtime import main

if __name__ == "__main__":
    main()
