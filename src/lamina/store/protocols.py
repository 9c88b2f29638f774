"""The store's contracts: what the control plane and the invoker may rely on.

Every implementation (SQLite and files today, PostgreSQL and object storage later) must
keep the semantics written here; callers depend on nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from lamina.domain.model import LATEST, FunctionConfig, LayerVersion


class MetadataStore(Protocol):
    """Function configurations keyed by (account, region, name, version).

    - Thread-safe: any method may be called from any thread at any time.
    - Every write is atomic and durable once the method returns: a crash or restart
      afterwards never loses it, and readers never see half of it.
    - Values round-trip exactly: what `get_function` returns equals what was stored.
    - Missing rows are not errors for readers: `get_function` returns None,
      `delete_function` returns False. Only the write preconditions below raise.
    - Lookups without an account match any account (one account per data dir is the
      normal case).
    """

    def get_function(self, region: str, name: str, *, version: str = LATEST,
                     account_id: str | None = None) -> FunctionConfig | None:
        """The stored configuration of one version ($LATEST by default), or None."""
        ...

    def put_function(self, cfg: FunctionConfig, *, expected_revision: str | None = None) -> None:
        """Insert or replace `cfg`.

        With `expected_revision`, a compare-and-swap: the write happens only if the stored
        row exists and its revision_id equals it; otherwise PreconditionFailedException.
        """
        ...

    def create_function(self, cfg: FunctionConfig) -> None:
        """Insert `cfg`; ResourceConflictException if that version already exists."""
        ...

    def delete_version(self, region: str, name: str, version: str, *, account_id: str | None = None) -> bool:
        """Remove one published version's row; False if there was none."""
        ...

    def delete_function(self, region: str, name: str, *, account_id: str | None = None) -> bool:
        """Delete every version of the function; True if anything was deleted."""
        ...

    def list_functions(self, region: str, marker: str | None, max_items: int, *,
                       account_id: str | None = None) -> tuple[list[FunctionConfig], str | None]:
        """One page of $LATEST configurations ordered by name, and the opaque marker of
        the next page (None on the last page). A marker that this store did not issue
        raises InvalidParameterValueException."""
        ...

    def all_functions(self) -> list[FunctionConfig]:
        """Every stored row, all accounts, regions and versions (what a cache is rebuilt from)."""
        ...

    def latest_functions(self, account_id: str) -> list[FunctionConfig]:
        """The $LATEST row of every function of the account, all regions."""
        ...

    def function_versions(self, account_id: str, region: str, name: str) -> list[FunctionConfig]:
        """Every row of one function: $LATEST first, then the published versions in order."""
        ...

    # -- layers: immutable versions, but for their policy --------------------------------

    def put_layer_version(self, layer: LayerVersion) -> None:
        """Insert a version, or replace its row (its policy changed)."""
        ...

    def get_layer_version(self, account_id: str, region: str, name: str, version: int) -> LayerVersion | None:
        ...

    def layer_versions(self, account_id: str, region: str, name: str | None = None) -> list[LayerVersion]:
        """The versions of one layer (or of every layer of the region), by name, newest first."""
        ...

    def delete_layer_version(self, account_id: str, region: str, name: str, version: int) -> bool:
        ...

    def next_layer_version(self, account_id: str, region: str, name: str) -> int:
        """Take the layer's next version number, atomically; a number is never handed out
        twice, even once its version is deleted."""
        ...


class BlobStore(Protocol):
    """Immutable byte blobs addressed by the hex sha256 of their content.

    - Thread- and process-safe: writes go to a temporary name and are renamed into
      place, so a blob is either absent or complete. `put` is idempotent.
    - `get` raises KeyError for a missing key; a key that is not 64 lowercase hex
      digits raises ValueError (keys never become arbitrary paths).
    - Blobs are readable only by the service's own user. Extracted code trees are the
      exception: they carry the permission bits stored in the zip (0755 at their top)
      so that the unprivileged sandbox user can read what the package allows it to.
    """

    def put(self, data: bytes) -> str:
        """Store `data` durably; return its key."""
        ...

    def get(self, key: str) -> bytes:
        ...

    def path(self, key: str) -> Path:
        """Where the blob's file is (or would be)."""
        ...

    def exists(self, key: str) -> bool:
        ...

    def extracted(self, key: str) -> Path:
        """A directory holding the zip blob's contents, extracted once and cached.

        Concurrent callers are safe: each gets the same complete tree. KeyError if the
        blob is missing; InvalidParameterValueException if it is not a usable zip.
        """
        ...

    def merged(self, keys: list[str]) -> Path:
        """The zip blobs' contents merged in order (a later one's entries replace what the
        earlier ones put at their paths; nothing is written through a link), built once per
        sequence of keys and cached. Errors as for `extracted`."""
        ...
