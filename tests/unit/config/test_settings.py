import os
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


def test_log_cap_and_disk_capacity_settings(tmp_path: Path) -> None:
    assert Settings().log_max_mb == 64
    s = Settings.from_env({"LAMINA_LOG_MAX_MB": "8", "LAMINA_DISK_CAPACITY_MB": "4096"})
    assert (s.log_max_mb, s.effective_disk_capacity_mb()) == (8, 4096)
    with pytest.raises(ValueError, match="LAMINA_LOG_MAX_MB must be at least 1"):
        Settings.from_env({"LAMINA_LOG_MAX_MB": "0"}).validate()
    with pytest.raises(ValueError, match="LAMINA_DISK_CAPACITY_MB must not be negative"):
        Settings.from_env({"LAMINA_DISK_CAPACITY_MB": "-1"}).validate()
    # by default: half of what is free on the data dir's file system
    fs = os.statvfs(tmp_path)
    free_mb = fs.f_bavail * fs.f_frsize // (1024 * 1024)
    assert abs(Settings(data_dir=tmp_path).effective_disk_capacity_mb() - free_mb // 2) <= 64


def test_api_edge_settings() -> None:
    s = Settings()
    assert (s.status_unsigned, s.code_url_expires, s.header_timeout, s.body_timeout) == ("off", 600, 30.0, 60.0)
    s = Settings.from_env({"LAMINA_STATUS_UNSIGNED": " Loopback ", "LAMINA_CODE_URL_EXPIRES": "5",
                           "LAMINA_HEADER_TIMEOUT": "0.5", "LAMINA_BODY_TIMEOUT": "2"})
    s.validate()
    assert (s.status_unsigned, s.code_url_expires, s.header_timeout, s.body_timeout) == ("loopback", 5, 0.5, 2.0)
    with pytest.raises(ValueError, match="LAMINA_STATUS_UNSIGNED must be one of off, loopback"):
        Settings.from_env({"LAMINA_STATUS_UNSIGNED": "anyone"}).validate()
    with pytest.raises(ValueError, match="LAMINA_CODE_URL_EXPIRES must be 1 to 604800"):
        Settings.from_env({"LAMINA_CODE_URL_EXPIRES": "604801"}).validate()
    with pytest.raises(ValueError, match="LAMINA_HEADER_TIMEOUT and LAMINA_BODY_TIMEOUT must be positive"):
        Settings.from_env({"LAMINA_BODY_TIMEOUT": "0"}).validate()
