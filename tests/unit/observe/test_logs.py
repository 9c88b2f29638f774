"""The function log store: the cap, rotation with its marker, removal, symlinks, rate, reading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lamina.observe.logs import DROPPED, LogReader, LogSink, log_path

REGION = "us-east-1"
CAP = 4096  # two segments of 2 KiB


def lines(start: int, count: int) -> list[bytes]:
    return [f"line {i:06d} {'x' * 37}\n".encode() for i in range(start, start + count)]  # 50 bytes each


def segments(data_dir: Path, name: str = "fn") -> tuple[Path, Path]:
    active = log_path(data_dir, REGION, name)
    return active.with_name(active.name + ".1"), active


def read(data_dir: Path, name: str = "fn") -> bytes:
    chunks: list[bytes] = []
    reader = LogReader(data_dir, REGION, name)
    assert reader.poll(chunks.append)
    reader.close()
    return b"".join(chunks)


@pytest.fixture
def sink(tmp_path: Path) -> LogSink:
    return LogSink(tmp_path, max_bytes=CAP)


def test_small_log_is_one_segment_written_as_given(sink: LogSink, tmp_path: Path) -> None:
    log = sink.open(REGION, "fn")
    for line in lines(0, 10):
        assert log.write(line) == 0.0
    previous, active = segments(tmp_path)
    assert active.read_bytes() == b"".join(lines(0, 10))
    assert not previous.exists()
    assert read(tmp_path) == b"".join(lines(0, 10))


def test_first_rotation_keeps_everything_and_says_nothing(sink: LogSink, tmp_path: Path) -> None:
    log = sink.open(REGION, "fn")
    for line in lines(0, 60):  # 3,000 bytes: one rotation, nothing dropped yet
        log.write(line)
    previous, active = segments(tmp_path)
    assert previous.exists() and active.exists()
    assert read(tmp_path) == b"".join(lines(0, 60))
    assert DROPPED.encode() not in read(tmp_path)


def test_log_stays_under_the_cap_drops_oldest_first_and_says_so(sink: LogSink, tmp_path: Path) -> None:
    log = sink.open(REGION, "fn")
    written = lines(0, 1000)  # 50,000 bytes through a 4 KiB cap
    for line in written:
        log.write(line)
    previous, active = segments(tmp_path)
    assert previous.stat().st_size <= CAP // 2 and active.stat().st_size <= CAP // 2
    text = read(tmp_path)
    assert text.endswith(written[-1]), "the newest lines are kept"
    assert DROPPED.encode() in active.read_bytes().splitlines()[0], "the new segment starts with the marker"
    kept = [line + b"\n" for line in text.splitlines() if DROPPED.encode() not in line]
    assert kept == written[-len(kept):], "what is kept is the newest lines, in order, none missing"
    assert len(kept) * 50 > CAP // 2


def test_marker_counts_what_was_dropped(sink: LogSink, tmp_path: Path) -> None:
    log = sink.open(REGION, "fn")
    for line in lines(0, 100):  # segments of 40 lines: the first 40 are dropped at line 81
        log.write(line)
    text = read(tmp_path)
    markers = [line for line in text.splitlines() if DROPPED.encode() in line]
    assert len(markers) == 1
    assert markers[0].startswith(b"[lamina] ") and int(markers[0].split()[2]) == 40 * 50
    assert [line + b"\n" for line in text.splitlines() if DROPPED.encode() not in line] == lines(40, 60)


def test_a_chunk_bigger_than_a_segment_keeps_its_tail(sink: LogSink, tmp_path: Path) -> None:
    log = sink.open(REGION, "fn")
    log.write(b"partial line without end")
    chunk = b"".join(lines(0, 200))
    log.write(chunk)
    previous, active = segments(tmp_path)
    assert active.stat().st_size <= CAP // 2
    assert previous.read_bytes() == b"partial line without end"
    partial, mark, rest = read(tmp_path).split(b"\n", 2)
    assert partial == b"partial line without end", "the marker is a line of its own"
    assert DROPPED.encode() in mark
    assert chunk.endswith(rest) and len(rest) > CAP // 4


def test_remove_deletes_both_segments_and_later_writes_of_old_handles_are_dropped(
        sink: LogSink, tmp_path: Path) -> None:
    old = sink.open(REGION, "fn")
    for line in lines(0, 100):
        old.write(line)
    sink.remove(REGION, "fn")
    previous, active = segments(tmp_path)
    assert not previous.exists() and not active.exists()
    old.write(b"END RequestId: of an environment still ending\n")
    assert not active.exists(), "a removed log is not written again"
    new = sink.open(REGION, "fn")
    assert new is not old
    new.write(b"first line of the new function\n")
    assert read(tmp_path) == b"first line of the new function\n"


def test_remove_without_a_handle_removes_files_left_from_before(tmp_path: Path) -> None:
    first = LogSink(tmp_path, max_bytes=CAP)
    for line in lines(0, 100):
        first.write(REGION, "fn", line)
    first.close()
    second = LogSink(tmp_path, max_bytes=CAP)
    second.remove(REGION, "fn")
    assert not any(p.exists() for p in segments(tmp_path))


def test_sweep_removes_logs_of_unknown_functions(sink: LogSink, tmp_path: Path) -> None:
    for name in ("kept", "gone"):
        for line in lines(0, 60):
            sink.write(REGION, name, line)
    assert sink.sweep({(REGION, "kept")}) == 1
    assert segments(tmp_path, "kept")[1].exists()
    assert not any(p.exists() for p in segments(tmp_path, "gone"))


def test_a_log_left_bigger_than_the_cap_is_cut_on_first_write(tmp_path: Path) -> None:
    previous, active = segments(tmp_path)
    active.parent.mkdir(parents=True)
    active.write_bytes(b"old\n" * 10_000)
    previous.write_bytes(b"older\n" * 10_000)
    LogSink(tmp_path, max_bytes=CAP).write(REGION, "fn", b"new\n")
    assert not previous.exists()
    body = active.read_bytes()
    assert body.endswith(b"\nnew\n") and DROPPED.encode() in body and len(body) < 300


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious\n")
    data = tmp_path / "data"
    _previous, active = segments(data)
    active.parent.mkdir(parents=True)
    active.symlink_to(outside)
    sink = LogSink(data, max_bytes=CAP)
    sink.write(REGION, "fn", b"attack\n")
    assert outside.read_bytes() == b"precious\n"
    # a symlinked region directory is refused too
    (data / "logs" / "eu-west-1").symlink_to(tmp_path)
    sink.write("eu-west-1", "outside", b"attack\n")
    assert outside.read_bytes() == b"precious\n"
    sink.remove(REGION, "fn")
    assert outside.exists()


@pytest.mark.parametrize(("region", "name"), [("..", "fn"), (REGION, "../../outside"), (REGION, "a.b"), ("", "x")])
def test_unsafe_names_never_become_paths(tmp_path: Path, region: str, name: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    sink = LogSink(data, max_bytes=CAP)
    assert sink.write(region, name, b"attack\n") == 0.0
    sink.remove(region, name)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["data"]


def test_rate_over_the_burst_asks_the_writer_to_pause(tmp_path: Path) -> None:
    sink = LogSink(tmp_path, max_bytes=1 << 20, rate_bytes=1000, burst_bytes=1000)
    log = sink.open(REGION, "fn")
    assert log.write(b"x" * 999 + b"\n") == 0.0
    pause = log.write(b"y" * 499 + b"\n")
    assert 0.45 < pause <= 0.5
    assert len(read(tmp_path)) == 1500, "nothing is dropped: the pause is the writer's to take"


def test_reader_follows_across_rotations(sink: LogSink, tmp_path: Path) -> None:
    log = sink.open(REGION, "fn")
    seen: list[bytes] = []
    reader = LogReader(tmp_path, REGION, "fn")
    assert not reader.poll(seen.append), "no log yet"
    written = lines(0, 1000)
    step = 0
    for count in (10, 30, 35, 80, 1, 40, 200):  # one rotation, then several between polls
        for line in written[step:step + count]:
            log.write(line)
        step += count
        assert reader.poll(seen.append)
    text = b"".join(seen)
    got = [line + b"\n" for line in text.splitlines() if DROPPED.encode() not in line]
    numbers = [int(line.split()[1]) for line in got]
    assert numbers == sorted(set(numbers)), "in order, no line twice"
    assert got[-1] == written[step - 1], "up to the newest"
    assert numbers[:75] == list(range(75)), "nothing is missed while the reader keeps up"
    assert len(numbers) < step, "the last burst rotated more than a segment past the reader"
    assert len(numbers) > step - 200
    reader.close()


def test_reader_of_a_quiet_log_reads_it_once(sink: LogSink, tmp_path: Path) -> None:
    for line in lines(0, 60):
        sink.write(REGION, "fn", line)
    seen: list[bytes] = []
    reader = LogReader(tmp_path, REGION, "fn")
    for _ in range(3):
        reader.poll(seen.append)
    assert b"".join(seen) == b"".join(lines(0, 60))
    reader.close()
    assert sorted(os.listdir(tmp_path / "logs" / REGION)) == ["fn.log", "fn.log.1"]


def test_a_log_that_cannot_be_written_loses_the_data_without_raising(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / REGION).write_bytes(b"")  # a file where the region's directory belongs
    sink = LogSink(tmp_path, max_bytes=CAP)
    assert sink.write(REGION, "fn", b"lost\n") == 0.0
    (tmp_path / "logs" / REGION).unlink()
    sink.write(REGION, "fn", b"kept\n")
    assert read(tmp_path) == b"kept\n"
