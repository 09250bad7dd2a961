"""scripts/bench/vs_go.py: phase selection and the verdicts of its table (no daemon, no Go)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts" / "bench"))

import vs_go


def test_phases_keep_run_order_and_drop_repeats() -> None:
    assert vs_go.parse_phases("rss, ingest,rss") == ["ingest", "rss"]
    assert vs_go.parse_phases(",".join(vs_go.PHASES)) == list(vs_go.PHASES)


@pytest.mark.parametrize("text", ["ingest,bogus", "", " , "])
def test_bad_phases_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        vs_go.parse_phases(text)


def _verdicts(ours: dict[str, float], go: dict[str, float] | None) -> dict[str, str]:
    lines = vs_go.table(vs_go.Side("ours", None, ours),
                        vs_go.Side("go", "nsqd", go) if go is not None else None)
    return {label: line.split()[-1] for key, label, _ in vs_go.ROWS
            for line in lines[1:] if line.startswith(label)}


def test_targets_compare_ours_against_go() -> None:
    got = _verdicts({"consume": 119.0, "ingest": 90.0, "rss": 151.0, "e2e_p99": 5.0},
                    {"consume": 100.0, "ingest": 100.0, "rss": 100.0, "e2e_p99": 1.0})
    assert got == {"consume msgs/s": "FAIL", "ingest msgs/s": "pass",
                   "rss MiB, 1M x 100 B": "FAIL", "e2e p99 ms": "pass"}


def test_ours_only_has_no_go_column_and_no_ratio_verdict() -> None:
    lines = vs_go.table(vs_go.Side("ours", None, {"ingest": 5.0, "e2e_p99": 6.0}), None)
    assert lines[0].split() == ["phase", "ours", "target", "result"]
    assert lines[1].split()[-1] == "0.9x"  # the target shown, no verdict without Go
    assert lines[2].split()[-1] == "FAIL"
