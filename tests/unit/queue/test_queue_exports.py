"""client.queue's public surface: sorted, complete and resolvable."""

from __future__ import annotations

import importlib
import pkgutil

import client.queue

#: every public submodule of client.queue (private ones start with "_")
SUBMODULES = sorted(m.name for m in pkgutil.iter_modules(client.queue.__path__)
                    if not m.name.startswith("_"))


def test_all_is_sorted_and_resolves() -> None:
    names = client.queue.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert getattr(client.queue, name) is not None


def test_every_public_submodule_name_is_reexported() -> None:
    assert {"delay", "interfaces", "nsq_queue", "service_group"} <= set(SUBMODULES)
    exported = set(client.queue.__all__)
    for module_name in SUBMODULES:
        module = importlib.import_module(f"client.queue.{module_name}")
        public = set(module.__all__)
        assert public <= exported, (module_name, public - exported)
        for name in public:
            assert getattr(client.queue, name) is getattr(module, name), name
