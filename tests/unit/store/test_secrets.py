"""Environment variables are sealed with AES-GCM in the metadata store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from lamina.store.metadata import SqlMetadataStore
from lamina.store.secrets import EnvelopeCipher, load_or_create_key
from tests.unit.store.test_metadata import make_cfg


def test_key_is_made_once_and_private(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path / "env.key")
    assert len(key) == 32
    assert load_or_create_key(tmp_path / "env.key") == key
    assert (tmp_path / "env.key").stat().st_mode & 0o777 == 0o600


def test_environment_round_trips_and_is_not_stored_in_plain_text(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = SqlMetadataStore(url, EnvelopeCipher(os.urandom(32)))
    cfg = make_cfg(environment={"PASSWORD": "correct-horse-battery"})
    store.create_function(cfg)
    assert store.get_function(cfg.region, cfg.name) == cfg
    store.close()
    for path in tmp_path.iterdir():
        assert b"correct-horse-battery" not in path.read_bytes()


def test_a_different_key_cannot_read_the_values(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    cfg = make_cfg(environment={"A": "1"})
    SqlMetadataStore(url, EnvelopeCipher(os.urandom(32))).create_function(cfg)
    with pytest.raises(InvalidTag):
        SqlMetadataStore(url, EnvelopeCipher(os.urandom(32))).get_function(cfg.region, cfg.name)
    with pytest.raises(ValueError, match="without a key"):
        SqlMetadataStore(url).get_function(cfg.region, cfg.name)
