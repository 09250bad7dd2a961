"""Serve the mypyc-compiled hot modules, but only while they match the sources.

``scripts/build_native.py`` compiles a few hot modules into ``.native/<ext tag>/`` at the
repository root (never next to the sources, where Python would prefer a ``.so`` over an
edited ``.py``) and writes a manifest with a digest of every source the build read. At
first import of a package that holds compiled modules, :func:`install` checks those
digests: when all match, an import hook serves the compiled modules; when any source
changed since the build (or the build is for another mypyc), every module stays pure
Python and one warning names the changed file. ``TRIO_NSQ_PURE=1`` forces pure Python.
The compiled modules form one group (they call each other natively), so it is all or none.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["BUILD_ROOT", "ENV_PURE", "NativeFinder", "check", "compiled_modules", "install", "source_digests",
           "status"]

# cheap at import (``import client.protocol`` stays light): hashlib, json and logging load
# only when a build exists

#: set to a non-empty value other than ``0`` to run pure Python whatever is built
ENV_PURE = "TRIO_NSQ_PURE"
#: the repository root (the compiled modules' sources are relative to it)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: one build per interpreter ABI, e.g. ``.native/cpython-311-x86_64-linux-gnu``
BUILD_ROOT = os.path.join(ROOT, ".native", importlib.machinery.EXTENSION_SUFFIXES[0].strip(".").removesuffix(".so"))
MANIFEST = "manifest.json"

_finder: NativeFinder | None = None
_status = "pure: not checked yet"


def source_digests(root: str, sources: Sequence[str]) -> dict[str, str]:
    """SHA-256 of each source (relative path → hex; ``""`` for a missing file)."""
    import hashlib

    out = {}
    for rel in sources:
        try:
            with open(os.path.join(root, rel), "rb") as f:
                out[rel] = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            out[rel] = ""
    return out


def check(build_dir: str, root: str = ROOT) -> tuple[dict[str, str] | None, str]:
    """Validate a build: ``({module: .so path}, "compiled")`` or ``(None, why not)``."""
    try:
        with open(os.path.join(build_dir, MANIFEST), "rb") as f:
            text = f.read()
    except FileNotFoundError:
        return None, "pure: not built"
    except OSError as exc:
        return None, f"pure: unreadable manifest in {build_dir} ({exc})"
    import json

    try:
        manifest = json.loads(text)
        modules: dict[str, str] = manifest["modules"]
        recorded: dict[str, str] = manifest["sources"]
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"pure: unreadable manifest in {build_dir} ({exc})"
    changed = [rel for rel, digest in source_digests(root, list(recorded)).items() if digest != recorded[rel]]
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        return None, f"pure: stale build ({changed[0]}{more} changed since it was built)"
    paths = {name: os.path.join(build_dir, rel) for name, rel in modules.items()}
    missing = [path for path in paths.values() if not os.path.isfile(path)]
    if missing:
        return None, f"pure: incomplete build ({missing[0]} missing)"
    return paths, "compiled"


class NativeFinder:
    """A meta path finder: the listed modules, as the extension files of a validated build."""

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None,
                  ) -> importlib.machinery.ModuleSpec | None:
        so = self.paths.get(fullname)
        if so is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, so)
        return importlib.util.spec_from_file_location(fullname, so, loader=loader)


def install() -> None:
    """Check the build once per process and, when it is current, serve its modules."""
    global _finder, _status
    if _finder is not None or _status != "pure: not checked yet":
        return
    if os.environ.get(ENV_PURE, "") not in ("", "0"):
        _status = f"pure: {ENV_PURE} is set"
        return
    paths, _status = check(BUILD_ROOT)
    if paths is None:
        if _status.startswith(("pure: stale", "pure: unreadable")):
            import logging

            logging.getLogger("trio_nsq.native").warning(
                "compiled modules not used, %s; rebuild with scripts/build_native.py", _status.removeprefix("pure: "))
        return
    _finder = NativeFinder(paths)
    sys.meta_path.insert(0, _finder)


def status() -> str:
    """``"compiled"`` or ``"pure: <why>"`` for this process."""
    return _status


def compiled_modules() -> frozenset[str]:
    """The module names this process serves compiled (empty when pure)."""
    return frozenset(_finder.paths) if _finder is not None else frozenset()
