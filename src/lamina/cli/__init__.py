"""The `lamina` command: `serve`, `logs` and `status` (see `main`)."""
