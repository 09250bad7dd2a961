"""internal.options: Go flag spellings, TOML precedence, durations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from internal.options import (
    OptionsError,
    build_parser,
    duration,
    format_duration,
    option,
    option_specs,
    parse_bool,
    parse_duration,
    resolve,
)
from internal.version import version_string


def _tls_required(value: str) -> int:
    if value.lower() == "tcp-https":
        return 2
    return 1 if parse_bool(value) else 0


@dataclass
class Opts:
    node_id: int = field(default=7, metadata={"flag": "node-id", "cfg": "id", "help": "id"})
    mem_queue_size: int = field(default=10000, metadata={"flag": "mem-queue-size"})
    msg_timeout: float = field(default=60.0, metadata={"flag": "msg-timeout", "duration": True})
    statsd_prefix: str = field(default="nsq.%s", metadata={
        "flag": "statsd-prefix", "help": "prefix (%s for host replacement)"})
    verbose: bool = field(default=False, metadata={"flag": "verbose"})
    snappy: bool = field(default=True, metadata={"flag": "snappy"})
    ratio: float = field(default=0.25, metadata={"flag": "ratio"})
    lookupd_tcp_addresses: list[str] = field(default_factory=list, metadata={
        "flag": "lookupd-tcp-address", "cfg": "nsqlookupd_tcp_addresses"})
    percentiles: list[float] = field(default_factory=list, metadata={
        "flag": "e2e-processing-latency-percentile", "cfg": "e2e_processing_latency_percentiles"})
    tls_required: int = field(default=0, metadata={"flag": "tls-required", "parse": _tls_required})
    not_a_flag: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.node_id < 1024:
            raise ValueError(f"--node-id must be [0,1024), got {self.node_id}")


def run(argv: list[str]) -> Opts:
    opts, _ = resolve(Opts, argv, prog="nsqd", exit_on_error=False)
    return opts


@pytest.mark.parametrize("argv", [
    ["-mem-queue-size=5"], ["-mem-queue-size", "5"],
    ["--mem-queue-size", "5"], ["--mem-queue-size=5"],
])
def test_go_flag_spellings(argv):
    assert run(argv).mem_queue_size == 5


def test_defaults_and_explicit_namespace():
    opts, args = resolve(Opts, [], prog="nsqd", exit_on_error=False)
    assert opts == Opts()
    assert not hasattr(args, "mem_queue_size") and args.config is None and args.version is False


@pytest.mark.parametrize(("argv", "expected"), [
    (["--verbose"], True), (["-verbose"], True), (["--verbose=false"], False),
    (["-verbose=true"], True), (["--verbose=0"], False), (["--verbose=T"], True),
])
def test_go_bools(argv, expected):
    assert run(argv).verbose is expected


def test_bool_flag_does_not_consume_next_word():
    with pytest.raises(SystemExit) as info:
        run(["--snappy", "false"])
    assert info.value.code == 2


def test_value_may_start_with_dash():
    assert run(["--statsd-prefix", "-x.%s"]).statsd_prefix == "-x.%s"


def test_repeatable_and_comma_lists():
    opts = run(["--lookupd-tcp-address", "a:4160", "-lookupd-tcp-address=b:4160",
                "--e2e-processing-latency-percentile", "1.0,0.99",
                "--e2e-processing-latency-percentile=0.5"])
    assert opts.lookupd_tcp_addresses == ["a:4160", "b:4160"]
    assert opts.percentiles == [1.0, 0.99, 0.5]


def test_durations_and_custom_parse():
    opts = run(["--msg-timeout=1m30s", "--tls-required=tcp-https", "--ratio", "0.5"])
    assert opts.msg_timeout == 90.0 and opts.tls_required == 2 and opts.ratio == 0.5


@pytest.mark.parametrize("argv", [
    ["--msg-timeout=60"], ["--mem-queue-size=ten"], ["--verbose=maybe"],
    ["--tls-required=sometimes"], ["--unknown-flag=1"], ["--mem-queue"],
])
def test_bad_flags_exit_2_without_traceback(argv, capsys):
    with pytest.raises(SystemExit) as info:
        run(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "nsqd: error:" in err and "Traceback" not in err


def test_bad_duration_message(capsys):
    with pytest.raises(SystemExit):
        run(["--msg-timeout", "60"])
    assert 'time: missing unit in duration "60"' in capsys.readouterr().err


def write(tmp_path: Path, content: str) -> str:
    path = tmp_path / "nsqd.cfg"
    path.write_text(content)
    return str(path)


def test_precedence_flag_over_config_over_default(tmp_path):
    cfg = write(tmp_path, """
mem_queue_size = 500
msg_timeout = "2m"
id = 9
nsqlookupd_tcp_addresses = ["127.0.0.1:4160", "127.0.0.2:4160"]
e2e_processing_latency_percentiles = [1.0, 0.99]
verbose = true
tls_required = true
ratio = 1
""")
    opts = run(["--config", cfg, "--mem-queue-size=42"])
    assert opts.mem_queue_size == 42  # flag wins
    assert opts.msg_timeout == 120.0 and opts.node_id == 9  # cfg key "id"
    assert opts.lookupd_tcp_addresses == ["127.0.0.1:4160", "127.0.0.2:4160"]
    assert opts.percentiles == [1.0, 0.99] and opts.verbose is True
    assert opts.tls_required == 1 and opts.ratio == 1.0
    assert opts.snappy is True  # default


def test_config_coercions_like_go_options(tmp_path):
    cfg = write(tmp_path, """
msg_timeout = 1500
nsqlookupd_tcp_addresses = "a:1,b:2"
mem_queue_size = "0x10"
statsd_prefix = 12
verbose = "false"
""")
    opts = run([f"-config={cfg}"])
    assert opts.msg_timeout == 1.5  # integer durations are milliseconds
    assert opts.lookupd_tcp_addresses == ["a:1", "b:2"]
    assert opts.mem_queue_size == 16 and opts.statsd_prefix == "12" and opts.verbose is False


@pytest.mark.parametrize(("content", "needle"), [
    ("bogus_key = 1\nother = 2", "unknown option(s) in config file"),
    ("mem_queue_size = 1.5", "invalid value 1.5 for mem_queue_size"),
    ("msg_timeout = \"60\"", "missing unit"),
    ("verbose = [1]", "invalid value"),
    ("nsqlookupd_tcp_addresses = 5", "expected a list"),
    ("mem_queue_size = ", "failed to load config file"),
    ("id = 5000", "invalid options - --node-id must be [0,1024)"),
])
def test_config_errors(tmp_path, content, needle):
    with pytest.raises(OptionsError) as info:
        run(["--config", write(tmp_path, content)])
    assert needle in str(info.value)


def test_config_error_exits_1_with_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        resolve(Opts, ["--config", write(tmp_path, "bogus_key = 1")], prog="nsqd")
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("nsqd: error: unknown option(s)") and "bogus_key" in err
    assert "Traceback" not in err


def test_missing_config_file(tmp_path):
    with pytest.raises(OptionsError, match="failed to load config file"):
        run(["--config", str(tmp_path / "absent.cfg")])


def test_version_exits_before_reading_config(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        resolve(Opts, ["-version", "--config", str(tmp_path / "absent.cfg")], prog="nsqd")
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == version_string("nsqd")


def test_help_shows_go_defaults(capsys):
    parser = build_parser(Opts, "nsqd", "the daemon")
    with pytest.raises(SystemExit):
        parser.parse_args(["-help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--msg-timeout duration (default 1m0s)" in out
    assert 'prefix (%s for host replacement) (default "nsq.%s")' in out
    assert "--not-a-flag" not in out and "the daemon" in out


def test_option_specs_reject_unsupported_types():
    @dataclass
    class Bad:
        when: complex = field(default=0j, metadata={"flag": "when"})

    with pytest.raises(TypeError, match="unsupported option type"):
        option_specs(Bad)

    @dataclass
    class Reserved:
        config: str = field(default="", metadata={"flag": "config"})

    with pytest.raises(TypeError, match="reserved"):
        option_specs(Reserved)


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0.0), ("60s", 60.0), ("100ms", 0.1), ("1m30s", 90.0), ("1h", 3600.0),
    ("500us", 0.0005), ("500µs", 0.0005), ("2ns", 2e-9), ("1.5h", 5400.0),
    ("-1.5s", -1.5), ("+.5s", 0.5), ("1h2m3.25s", 3723.25), ("1.s", 1.0),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-12)


@pytest.mark.parametrize("bad", ["", "60", "1x", "s", ".s", "1.2.3s", "-", " 1s", "1s ",
                                 "9999999999h"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError, match="time:"):
        parse_duration(bad)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (60, "1m0s"), (0.1, "100ms"), (90, "1m30s"), (3600, "1h0m0s"),
    (0.0005, "500µs"), (1.5e-6, "1.5µs"), (2e-9, "2ns"), (3600.5, "1h0m0.5s"),
    (-1.5, "-1.5s"), (0.025, "25ms"), (10.25, "10.25s"), (900, "15m0s"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-12)


def test_parse_bool():
    assert parse_bool("TRUE") is True and parse_bool("f") is False
    with pytest.raises(ValueError):
        parse_bool("yes")


@dataclass
class ShortOpts:
    n: int = field(default=0, metadata={"flag": "n"})
    quiet: bool = field(default=False, metadata={"flag": "q"})


@pytest.mark.parametrize("argv", [["-n", "5", "-q"], ["--n", "5", "--q"], ["-n=5", "-q=true"]])
def test_one_letter_go_flags(argv):
    opts, _ = resolve(ShortOpts, argv, prog="nsq_tail", exit_on_error=False)
    assert (opts.n, opts.quiet) == (5, True)


def test_brief_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        resolve(ShortOpts, ["--bogus"], prog="nsq_tail", brief_errors=True)
    assert info.value.code == 2
    assert capsys.readouterr().err == "nsq_tail: error: unrecognized arguments: --bogus\n"


@dataclass
class Declared:
    addresses: list[str] = option(["a"], "address", "where (repeatable)", cfg="addresses")
    timeout: float = duration(2.5, "timeout", "how long")
    name: str = option("n", "name", "what")


def test_option_and_duration_fields() -> None:
    one, two = Declared(), Declared()
    one.addresses.append("b")
    assert two.addresses == ["a"]  # a list default is copied per instance
    specs = {s.name: s for s in option_specs(Declared)}
    assert (specs["addresses"].flag, specs["addresses"].cfg, specs["addresses"].kind) == \
        ("address", "addresses", "list_str")
    assert (specs["timeout"].kind, specs["timeout"].default, specs["timeout"].help) == ("duration", 2.5, "how long")
    assert (specs["name"].kind, specs["name"].cfg, specs["name"].default) == ("str", "name", "n")
    opts, _ = resolve(Declared, ["--timeout=1m", "--address=x", "--address=y"], prog="prog")
    assert (opts.timeout, opts.addresses) == (60.0, ["x", "y"])
