import subprocess
import sys
from pathlib import Path

import pytest

from lamina.settings import Settings


def test_defaults_follow_the_contract() -> None:
    s = Settings()
    assert (s.host, s.port, s.data_dir, s.account_id) == ("127.0.0.1", 3001, Path(".lamina"), "000000000000")
    assert s.credentials == {"test": "test"}
    assert s.base_url == "http://127.0.0.1:3001"


def test_environment_and_overrides() -> None:
    s = Settings.from_env({"LAMINA_PORT": "4000", "LAMINA_CREDENTIALS": "AK1:S1, AK2:S2",
                           "LAMINA_IDLE_TIMEOUT": "2.5"}, data_dir="/x", host=None)
    assert s.port == 4000 and s.data_dir == Path("/x") and s.idle_timeout == 2.5
    assert s.credentials == {"AK1": "S1", "AK2": "S2"}
    assert s.host == "127.0.0.1"  # None overrides are ignored


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::"])
def test_default_keys_are_refused_off_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="only allowed on loopback"):
        Settings(host=host).validate()
    Settings(host=host, credentials={"ak": "sk"}).validate()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_accepts_default_keys(host: str) -> None:
    Settings(host=host).validate()


def test_serve_refuses_a_public_address_with_default_keys() -> None:
    lamina = Path(sys.executable).with_name("lamina")
    done = subprocess.run([str(lamina), "serve", "--host", "0.0.0.0", "--port", "1"],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "LAMINA_CREDENTIALS" in done.stderr


def test_fork_starts_setting() -> None:
    assert Settings().fork_starts == "scale-out"
    assert Settings.from_env({"LAMINA_FORK_STARTS": " Always "}).fork_starts == "always"
    Settings.from_env({"LAMINA_FORK_STARTS": "off"}).validate()
    with pytest.raises(ValueError, match="LAMINA_FORK_STARTS must be one of scale-out, always, off"):
        Settings.from_env({"LAMINA_FORK_STARTS": "sometimes"}).validate()
