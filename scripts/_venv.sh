# Sourced by scripts/run and scripts/test: create/update .venv and install the project.
# Re-installs only when pyproject.toml or the version changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV" >&2
    "$PY" -m venv "$VENV"
fi
# the version lives in internal/version.py (pyproject reads it): a change there reinstalls too
STAMP="$VENV/.installed-$(cat "$ROOT/pyproject.toml" "$ROOT/internal/version.py" | sha1sum | cut -c1-12)-${1:-run}"
if [ ! -f "$STAMP" ]; then
    echo "installing trio-nsq into $VENV" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2 || true
    if [ "${1:-run}" = test ]; then
        "$VENV/bin/python" -m pip install -q -e "$ROOT[test,native]" >&2
    else
        # mypyc is optional: without it everything runs as pure Python
        "$VENV/bin/python" -m pip install -q -e "$ROOT[native]" >&2 \
            || "$VENV/bin/python" -m pip install -q -e "$ROOT" >&2
    fi
    touch "$STAMP"
fi
# mypyc-compiled hot modules are opt-in (TRIO_NSQ_NATIVE=1): measured after the consume and
# publish rewrites they no longer pay (README, "Compiled hot modules"). Without it any earlier
# build is removed, so what runs is always the .py in the tree.
if [ "${TRIO_NSQ_NATIVE:-0}" = 1 ]; then
    nice "$VENV/bin/python" "$ROOT/scripts/build_native.py" \
        || echo "scripts/build_native.py failed; running pure Python" >&2
elif [ -d "$ROOT/.native" ]; then
    "$VENV/bin/python" "$ROOT/scripts/build_native.py" --clean >&2 || true
fi
