"""client.queue's public surface: sorted, complete and resolvable."""

from __future__ import annotations

import importlib

import client.queue

SUBMODULES = ("executors", "interfaces", "pushers", "queue", "service_group")


def test_all_is_sorted_and_resolves() -> None:
    names = client.queue.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert getattr(client.queue, name) is not None


def test_every_public_submodule_name_is_reexported() -> None:
    exported = set(client.queue.__all__)
    for module_name in SUBMODULES:
        module = importlib.import_module(f"client.queue.{module_name}")
        public = {n for n in module.__all__ if not n.startswith("DEFAULT_")}
        assert public <= exported, (module_name, public - exported)
