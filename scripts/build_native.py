#!/usr/bin/env python3
"""Compile the hottest modules with mypyc into ``.native/<ext tag>/``; pure Python stays the fallback.

    .venv/bin/python scripts/build_native.py           # build if a source changed (TRIO_NSQ_NATIVE=1 _venv.sh)
    .venv/bin/python scripts/build_native.py --check   # exit 0 if the build is current, 1 if not
    .venv/bin/python scripts/build_native.py --clean   # remove the build: everything runs pure Python

The build is keyed by a digest of every compiled module and of each project module they
import (the types and constants mypyc compiled in); ``internal/_native.py`` compares the
same digests at run time and ignores a build that no longer matches. A build that fails
(no mypyc, no C compiler or Python headers, a construct mypyc rejects, an import that
crashes) prints one warning, leaves nothing behind and exits 0. Output of the compiler
goes to ``.native/build.log``.
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _load_native() -> ModuleType:
    """internal/_native.py on its own: importing the package would already use the build."""
    spec = importlib.util.spec_from_file_location("_trio_nsq_native", ROOT / "internal" / "_native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_native = _load_native()
BUILD_ROOT = Path(_native.BUILD_ROOT)
ENV_PURE: str = _native.ENV_PURE
MANIFEST: str = _native.MANIFEST
check = _native.check
source_digests = _native.source_digests

#: the compiled modules (one mypyc group); opt-in (TRIO_NSQ_NATIVE=1 in scripts/_venv.sh)
#: since the consume rewrite, after which pure Python did as well (README). Earlier: nsqd CPU per consumed
#: message (FIN loop, scripts/bench/nsqd_bench.py --messages 500000, pure vs compiled,
#: interleaved, medians) fell from 2.36 to 1.82 us with the codec + channel and to 1.51-1.70 us
#: with protocol_consume too. Measured and left out, no gain: client_v2, topic, guid,
#: protocol_pub (ingest stayed at 1.3 us/msg), internal/_http* (HTTP /pub stayed at 28 us/req).
#: Not compilable as they stand: protocol_v2 (except*), protocol_util (its dataclass field is
#: typed by a TYPE_CHECKING-only import), nsqd.nsqd (crashes at import, through its import
#: cycle with pure modules), transport (crashes at import, through protocol_util's field).
#: commands stays pure: compiled, it would refuse req(id, 1500.9) (typed int).
MODULES = [
    "client/protocol/_buffer.py",
    "client/protocol/constants.py",
    "client/protocol/errors.py",
    "client/protocol/frames.py",
    "client/protocol/message.py",
    "client/protocol/names.py",
    "client/protocol/reader.py",
    "nsqd/channel.py",
    "nsqd/in_flight.py",
    "nsqd/protocol_consume.py",
]
PACKAGES = ("client", "nsqd", "nsqlookupd", "nsqadmin", "internal", "apps")


def _module_file(name: str) -> str | None:
    """The source of a project module (package or plain module), relative to ROOT."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = name.replace(".", "/")
    for rel in (f"{base}.py", f"{base}/__init__.py"):
        if (ROOT / rel).is_file():
            return rel
    return None


def _imports(rel: str) -> set[str]:
    """Project modules a source imports (also under TYPE_CHECKING: mypyc read their types)."""
    module = rel.removesuffix(".py").replace("/", ".")
    package = module.removesuffix(".__init__") if rel.endswith("__init__.py") else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse((ROOT / rel).read_bytes(), rel)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            source = _module_file(name)
            if source is not None:
                found.add(source)
    return found


def sources() -> list[str]:
    """The compiled modules, the project modules they import, and what those packages'
    ``__init__`` files re-export (mypyc inlines constants reached through them)."""
    out = set(MODULES)
    for rel in MODULES:
        out |= _imports(rel)
    todo = [rel for rel in out if rel.endswith("__init__.py")]
    while todo:
        for dep in _imports(todo.pop()):
            if dep not in out:
                out.add(dep)
                if dep.endswith("__init__.py"):
                    todo.append(dep)
    return sorted(out)


def _mypy_version() -> str:
    try:
        from importlib.metadata import version

        return version("mypy")
    except Exception:
        return ""


def _key() -> dict[str, object]:
    return {"compiled": MODULES, "mypy": _mypy_version(), "sources": source_digests(str(ROOT), sources())}


def current() -> bool:
    """Whether the build exists, matches the sources and was made from this list and mypyc."""
    try:
        manifest = json.loads((BUILD_ROOT / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    key = _key()
    paths, _ = check(str(BUILD_ROOT), str(ROOT))
    return paths is not None and all(manifest.get(k) == v for k, v in key.items())


def _compile(out: Path) -> None:
    """In a child process (its compiler output goes to the log): mypyc + build_ext into ``out``."""
    from mypyc.build import mypycify
    from setuptools import Distribution

    os.chdir(ROOT)
    exts = mypycify(["--cache-dir", str(out / "cache"), *MODULES], opt_level="3", target_dir=str(out / "c"))
    dist = Distribution({"name": "trio-nsq-native", "ext_modules": exts})
    dist.script_args = ["build_ext", "--build-lib", str(out / "lib"), "--build-temp", str(out / "tmp"),
                        "--parallel", str(min(2, os.cpu_count() or 1))]
    dist.parse_command_line()
    dist.run_commands()


def _smoke_test() -> str | None:
    """Import every compiled module in a fresh interpreter; the error output if that fails."""
    names = [rel.removesuffix(".py").replace("/", ".") for rel in MODULES]
    code = ("import sys, internal._native as n; n.install(); import nsqd, nsqlookupd, nsqadmin\n"
            f"names = {names!r}\n"
            "for name in names: __import__(name)\n"
            "bad = [m for m in names if not sys.modules[m].__file__.endswith(('.so', '.pyd'))]\n"
            "assert n.status() == 'compiled' and not bad, (n.status(), bad)\n")
    env = {k: v for k, v in os.environ.items() if k != ENV_PURE}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    return None if proc.returncode == 0 else (proc.stderr.strip() or f"exit status {proc.returncode}")


def build() -> bool:
    """Rebuild when not current; False (with a warning printed) when it could not be built."""
    BUILD_ROOT.parent.mkdir(exist_ok=True)
    with open(BUILD_ROOT.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two scripts/test at once: one builds, the other waits
        if current():
            return True
        key = _key()  # before compiling: a source edited meanwhile leaves the build stale
        shutil.rmtree(BUILD_ROOT, ignore_errors=True)
        log = BUILD_ROOT.parent / "build.log"
        print(f"build_native: compiling {len(MODULES)} modules with mypyc (log: {log})", file=sys.stderr)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=BUILD_ROOT.parent, prefix="tmp-") as tmp, open(log, "w") as out:
            proc = subprocess.run([sys.executable, __file__, "--compile-into", tmp], stdout=out,
                                  stderr=subprocess.STDOUT)
            if proc.returncode != 0:
                print(f"build_native: WARNING: mypyc build failed (see {log}); running pure Python",
                      file=sys.stderr)
                return False
            lib = Path(tmp) / "lib"
            modules = {p.name.split(".")[0] if p.parent == lib else
                       ".".join([*p.relative_to(lib).parent.parts, p.name.split(".")[0]]): str(p.relative_to(lib))
                       for p in lib.rglob("*.so")}
            (lib / MANIFEST).write_text(json.dumps({**key, "modules": modules}, indent=1, sort_keys=True))
            lib.rename(BUILD_ROOT)
        failure = _smoke_test()
        if failure is not None:
            shutil.rmtree(BUILD_ROOT, ignore_errors=True)
            print(f"build_native: WARNING: the compiled modules do not import, running pure Python:\n{failure}",
                  file=sys.stderr)
            return False
        print(f"build_native: done in {time.monotonic() - started:.0f}s", file=sys.stderr)
        return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 0 if the build is current, else 1")
    ap.add_argument("--clean", action="store_true", help="remove the build")
    ap.add_argument("--compile-into", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.compile_into:
        _compile(Path(args.compile_into))
        return 0
    if args.check:
        return 0 if current() else 1
    if args.clean:
        shutil.rmtree(BUILD_ROOT, ignore_errors=True)
        return 0
    if os.environ.get(ENV_PURE, "") not in ("", "0"):
        print(f"build_native: {ENV_PURE} is set, not building", file=sys.stderr)
        return 0
    build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
