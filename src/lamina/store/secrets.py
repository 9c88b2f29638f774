"""Encryption at rest for function environment variables (AES-256-GCM).

The key is 32 random bytes in `<data dir>/env.key` (created on first start, mode 0600) or
given in configuration. Values are decrypted only when a configuration is read back into
memory, from where they reach the API's responses and the environments themselves.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class EnvelopeCipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the environment-variable key must be 32 bytes")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, context: bytes = b"") -> str:
        nonce = os.urandom(NONCE_BYTES)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, plaintext, context)).decode()

    def decrypt(self, token: str, context: bytes = b"") -> bytes:
        raw = base64.b64decode(token)
        return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context)


def load_or_create_key(path: Path, configured: str | None = None) -> bytes:
    """The configured key (base64 of 32 bytes), else the one under the data dir (made once)."""
    if configured:
        return base64.b64decode(configured)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(AESGCM.generate_key(bit_length=256))
        f.flush()
        os.fsync(f.fileno())
    return path.read_bytes()
