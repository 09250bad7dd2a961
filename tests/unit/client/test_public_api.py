"""The client library's public surface: ``client.__all__`` and ``client.queue.__all__``
are sorted and importable, and no name means two different things in the two."""

from __future__ import annotations

import inspect
import subprocess
import sys

import client
import client.queue
from client import errors


def test_client_all_is_sorted_unique_and_importable() -> None:
    names = client.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    assert set(names) == set(client._LAZY)
    public_errors = {n for n in errors.__all__ if n != "for_code"}
    assert public_errors <= set(names)
    for name in names:
        assert getattr(client, name) is not None
        assert name in dir(client)


def test_every_name_imports_from_a_fresh_interpreter() -> None:
    """``from client import *`` and ``from client.queue import *`` work with nothing preloaded."""
    code = ("from client import *\nfrom client.queue import *\n"
            "import client, client.queue\n"
            "missing = [n for n in client.__all__ if n not in globals()]\n"
            "missing += [n for n in client.queue.__all__ if n not in globals()]\n"
            "assert not missing, missing\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_no_name_means_two_things() -> None:
    shared = set(client.__all__) & set(client.queue.__all__)
    for name in shared:
        assert getattr(client, name) is getattr(client.queue, name), name
    assert "Consumer" not in client.queue.__all__ and "Producer" not in client.queue.__all__
    assert client.queue.QueueProducer is not client.Producer
    assert client.queue.QueueConsumer is not client.Consumer


def test_consumer_plumbing_is_private() -> None:
    """Only what a user calls is public on Consumer; connection callbacks are not."""
    public = {n for n, _ in inspect.getmembers(client.Consumer) if not n.startswith("_")}
    assert public == {"addresses", "buffered", "change_max_in_flight", "close", "connection_count", "run",
                      "statistics", "stop", "wait_connected"}
    for name in ("deliver", "requeue_delay", "new_subscription", "subscribed", "lost"):
        assert hasattr(client.Consumer, f"_{name}")

