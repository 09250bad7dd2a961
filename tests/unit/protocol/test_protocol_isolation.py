"""The codec stays sans-I/O: importing it pulls in neither trio nor socket."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import client.protocol

REPO_ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import json, sys
import client.protocol
print(json.dumps(sorted(m for m in ("trio", "socket", "ssl", "selectors", "asyncio")
                        if m in sys.modules)))
"""


def test_import_does_not_pull_in_io() -> None:
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r})\n" + PROBE],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
        check=True,
    )
    assert json.loads(result.stdout) == []


def test_all_names_exist() -> None:
    names = client.protocol.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(client.protocol, name), name
