from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

sys.path.insert(0, str(Path(__file__).parent))

from client_fakes import FakeNetwork


@pytest.fixture
async def network(nursery: trio.Nursery) -> FakeNetwork:
    return FakeNetwork(nursery)
