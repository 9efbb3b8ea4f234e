"""The spool keeps whole records only: a full disk or a crash never leaves half a line that
swallows the next record (telephony/records/spool.py)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from telephony.records import spool as spool_module
from telephony.records.spool import append_to_spool, read_spool
from tests.record_fixtures import make_record


def big_record(number: int) -> dict[str, object]:
    """A record of about 3 KB, so a small disk fills in the middle of one."""
    record = make_record(number).to_dict()
    record["job_metadata"] = "x" * 3000
    return record


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KB filesystem (tmpfs), or a skip where this process may not mount one."""
    mount_point = tmp_path / "tiny-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the simulated test covers it")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_appending_to_a_full_disk_leaves_only_whole_records(tiny_disk: Path) -> None:
    spool = tiny_disk / "unsaved-call-records.jsonl"
    appended = []
    refused = 0
    for number in range(60):  # 180 KB into 64 KB
        try:
            append_to_spool(spool, big_record(number))
            appended.append(f"r-{number:04d}")
        except OSError as e:
            assert e.errno == errno.ENOSPC
            refused += 1
    assert refused > 0 and appended  # the disk filled up part-way
    lines = read_spool(spool)
    assert [line.problem for line in lines if line.record is None] == []
    assert [line.record["record_id"] for line in lines if line.record] == appended
    assert spool.read_bytes().endswith(b"\n")


def test_a_write_cut_short_is_taken_back_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "unsaved-call-records.jsonl"
    append_to_spool(spool, make_record(1).to_dict())
    before = spool.read_bytes()
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_module.os, "write", full_disk)
    with pytest.raises(OSError):
        append_to_spool(spool, make_record(2).to_dict())
    assert spool.read_bytes() == before


def test_a_torn_tail_never_swallows_the_next_record(tmp_path: Path) -> None:
    spool = tmp_path / "unsaved-call-records.jsonl"
    torn = b'{"record_id": "r-0001", "call_id": "SC'  # a crash mid-write, no newline
    spool.write_bytes(torn)
    append_to_spool(spool, make_record(2).to_dict())

    first, second = read_spool(spool)
    assert (first.record, first.raw) == (None, torn + b"\n")
    assert second.record == make_record(2).to_dict()


def test_a_record_glued_to_a_torn_line_is_read_back_whole(tmp_path: Path) -> None:
    """A spool written before appends were atomic: a torn line ran into the next record."""
    spool = tmp_path / "unsaved-call-records.jsonl"

    torn = b'{"record_id": "r-0001", "call_id": "SC'
    spool.write_bytes(torn + json.dumps(make_record(2).to_dict()).encode() + b"\n")

    torn_part, record = read_spool(spool)
    assert (torn_part.number, torn_part.record, torn_part.raw) == (1, None, torn)
    assert torn_part.problem.startswith("JSONDecodeError")
    assert (record.number, record.record) == (1, make_record(2).to_dict())
