"""nsqd.metadata: reading nsqd.dat, the writer and its waiters, queue discovery."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import trio

from nsqd.metadata import MetadataError, MetadataFile, discover_queues


def test_discover_queues_from_file_names(tmp_path: Path) -> None:
    for name in ("t.tdq.meta.json", "t:c.tdq.000003.dat", "t:c.tdq.000003.acks",
                 "u:d.tdq.000000.dat.bad", "v:e.deferred", "w.tdq.000000.dat", "nsqd.dat",
                 "x.tdq.meta.json.tmp"):
        (tmp_path / name).write_text("")
    assert discover_queues(str(tmp_path)) == {"t": ["c"], "v": ["e"], "w": []}
    assert discover_queues(str(tmp_path / "missing")) == {}


@pytest.mark.parametrize("raw", [b"\x00garbage", b"[]", b'{"topics": "x"}',
                                 b'{"topics": [{"name": "t", "channels": [1]}]}'])
def test_garbage_names_the_file_and_the_way_out(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "nsqd.dat"
    path.write_bytes(raw)
    with pytest.raises(RuntimeError) as info:
        MetadataFile(str(path), dict).load()
    text = str(info.value)
    assert text.startswith(f"failed to parse metadata in {path} - ")
    assert "move the file aside" in text


def test_load(tmp_path: Path) -> None:
    meta = MetadataFile(str(tmp_path / "nsqd.dat"), dict)
    assert meta.load() is None
    doc = {"topics": [{"name": "t", "paused": True, "channels": [{"name": "c"}]}]}
    (tmp_path / "nsqd.dat").write_text(json.dumps(doc))
    assert meta.load() == doc["topics"]


async def test_waiters_get_the_write_error_then_success(tmp_path: Path,
                                                        autojump_clock: Any) -> None:
    topics: list[str] = []
    meta = MetadataFile(str(tmp_path / "nsqd.dat"), lambda: {"topics": list(topics)})
    blocker = tmp_path / "nsqd.dat.tmp"
    blocker.mkdir()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(meta.run)
        topics.append("a")
        meta.changed()
        with pytest.raises(MetadataError, match="failed to persist metadata"):
            await meta.saved()
        os.rmdir(blocker)
        mark = meta.mark()
        topics.append("b")
        meta.changed()
        assert meta.changed_since(mark)
        await meta.saved()
        assert json.loads((tmp_path / "nsqd.dat").read_text()) == {"topics": ["a", "b"]}
        await meta.saved()  # nothing new: at once
        nursery.cancel_scope.cancel()

