"""The mypyc-compiled modules (internal._native, scripts/build_native.py): used when the
build matches the sources, pure Python when it does not, when forced, or when no build exists."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from internal import _native

ROOT = Path(__file__).resolve().parents[3]


def test_the_compiled_modules_are_in_use_when_the_build_is_current() -> None:
    if os.environ.get(_native.ENV_PURE, "") not in ("", "0"):
        assert _native.status() == f"pure: {_native.ENV_PURE} is set"
        assert not _native.compiled_modules()
        pytest.skip(f"{_native.ENV_PURE} is set: this run is pure Python")
    paths, why = _native.check(_native.BUILD_ROOT)
    if paths is None:
        assert _native.status() == why and not _native.compiled_modules()
        pytest.skip(f"no current mypyc build ({why}); scripts/build_native.py makes one")
    assert _native.status() == "compiled"
    assert _native.compiled_modules() == set(paths)
    assert any(name.startswith("nsqd.") for name in paths) and "client.protocol.reader" in paths
    for name, so in paths.items():
        module = importlib.import_module(name)
        assert module.__file__ == so
        assert isinstance(module.__loader__, importlib.machinery.ExtensionFileLoader)


def test_pure_python_is_used_when_forced_and_the_daemons_work() -> None:
    code = """
import sys, trio
import internal._native as native
from client.protocol import CommandReader, FrameReader, commands, encode_response
import nsqd, nsqd.channel, nsqlookupd, nsqadmin
loaded = [m for m in sys.modules.values() if (getattr(m, '__file__', None) or '').endswith('.so')
          and m.__name__.split('.')[0] in ('client', 'nsqd', 'internal', 'nsqlookupd', 'nsqadmin')]
assert not loaded and native.status() == 'pure: TRIO_NSQ_PURE is set', (loaded, native.status())
reader = CommandReader()
reader.feed(bytearray(b"FIN 0123456789abcdef\\n") + commands.mpub("t", [b"a", b"bc"]))
fin, mpub = reader.commands()
assert fin.params == [b"0123456789abcdef"] and mpub.name == b"MPUB"
frames = FrameReader()
frames.feed(encode_response(b"OK"))
assert [f.data for f in frames.frames()] == [b"OK"]
print("pure ok")
"""
    env = {**os.environ, _native.ENV_PURE: "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "pure ok" and "compiled modules not used" not in proc.stderr


def _fake_build(root: Path) -> Path:
    """A build of ``pkg.mod`` (the "extension" is never loaded by these tests)."""
    (root / "pkg").mkdir()
    (root / "pkg" / "mod.py").write_text("X = 1\n")
    (root / "pkg" / "dep.py").write_text("Y = 2\n")
    build = root / ".native" / "tag"
    (build / "pkg").mkdir(parents=True)
    (build / "pkg" / "mod.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    digests = {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in ("pkg/mod.py", "pkg/dep.py")}
    manifest = {"modules": {"pkg.mod": "pkg/mod.cpython-311-x86_64-linux-gnu.so"}, "sources": digests}
    (build / _native.MANIFEST).write_text(json.dumps(manifest))
    return build


def test_a_current_build_is_served_by_the_finder(tmp_path: Path) -> None:
    build = _fake_build(tmp_path)
    paths, why = _native.check(str(build), str(tmp_path))
    assert why == "compiled" and paths == {"pkg.mod": str(build / "pkg" / "mod.cpython-311-x86_64-linux-gnu.so")}
    finder = _native.NativeFinder(paths)
    spec = finder.find_spec("pkg.mod", None)
    assert spec is not None and spec.origin == paths["pkg.mod"]
    assert isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
    assert finder.find_spec("pkg.dep", None) is None and finder.find_spec("pkg", None) is None


@pytest.mark.parametrize("edit", ["pkg/mod.py", "pkg/dep.py"])
def test_an_edited_source_makes_the_whole_build_stale(tmp_path: Path, edit: str) -> None:
    build = _fake_build(tmp_path)
    (tmp_path / edit).write_text("X = 3  # edited after the build\n")
    assert _native.check(str(build), str(tmp_path)) == (None, f"pure: stale build ({edit} changed since it was built)")
    (tmp_path / edit).unlink()
    assert _native.check(str(build), str(tmp_path)) == (None, f"pure: stale build ({edit} changed since it was built)")


def test_a_missing_or_broken_build_is_pure(tmp_path: Path) -> None:
    assert _native.check(str(tmp_path / "nothing"), str(tmp_path)) == (None, "pure: not built")
    build = _fake_build(tmp_path)
    (build / "pkg" / "mod.cpython-311-x86_64-linux-gnu.so").unlink()
    paths, why = _native.check(str(build), str(tmp_path))
    assert paths is None and why.startswith("pure: incomplete build")
    (build / _native.MANIFEST).write_text("{")
    paths, why = _native.check(str(build), str(tmp_path))
    assert paths is None and why.startswith("pure: unreadable manifest")


@pytest.mark.slow
def test_a_failed_build_warns_and_leaves_pure_python(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".venv", ".native", ".git", "__pycache__", "tests",
                                                              ".mypy_cache", ".pytest_cache", "*.egg-info"))
    env = {**os.environ, "CC": "/bin/false"}
    env.pop(_native.ENV_PURE, None)
    proc = subprocess.run([sys.executable, str(tree / "scripts" / "build_native.py")], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: mypyc build failed" in proc.stderr and "running pure Python" in proc.stderr
    assert sorted(p.name for p in (tree / ".native").iterdir()) == [".lock", "build.log"]  # no build, no temp
    check = subprocess.run([sys.executable, str(tree / "scripts" / "build_native.py"), "--check"], cwd=tree,
                           env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 1


def test_the_build_is_keyed_by_the_compiled_modules_and_what_they_import() -> None:
    spec = importlib.util.spec_from_file_location("build_native", ROOT / "scripts" / "build_native.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    sources = build.sources()
    assert set(build.MODULES) <= set(sources)
    # channel imports nsqd.backend; ``from client.protocol import ...`` reads the package's
    # __init__, whose re-exports (e.g. commands, not compiled) mypyc may have inlined
    assert {"nsqd/backend.py", "client/protocol/__init__.py", "client/protocol/commands.py"} <= set(sources)
    assert not any(rel.startswith(("tests/", "scripts/")) for rel in sources)
