"""Code storage, one way for functions and layers: validate the zip, keep its bytes.

A package is checked as AWS checks it at upload (`lamina.packages.inspect_zip`) and stored
in the blob store under its content address; the work runs off the event loop.
"""

from __future__ import annotations

import asyncio

from lamina.domain.model import CodeRef
from lamina.packages import inspect_zip
from lamina.store.protocols import BlobStore


class CodeStore:
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    async def store(self, zip_file: bytes, *, extract: bool = False) -> CodeRef:
        """Validate and keep `zip_file`; with `extract`, unpack it now too (layers: so that a
        function that uses the layer never waits for it)."""
        def work() -> CodeRef:
            prepared = inspect_zip(zip_file)
            self.blobs.put(zip_file)
            if extract:
                self.blobs.extracted(prepared.blob_key)
            return CodeRef(prepared.blob_key, prepared.sha256_b64, prepared.size, prepared.unzipped_size)

        return await asyncio.get_running_loop().run_in_executor(None, work)
