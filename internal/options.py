"""Dataclass options → Go-style command line + TOML config, after go-options.

A daemon declares its options as a dataclass whose fields carry NSQ's flag
names in their metadata (:func:`option` and :func:`duration` build such fields)::

    @dataclass
    class Options:
        mem_queue_size: int = option(10000, "mem-queue-size", "number of messages ...")
        msg_timeout: float = duration(60.0, "msg-timeout", "...")
        lookupd_tcp_addresses: list[str] = option([], "lookupd-tcp-address", "...",
                                                  cfg="nsqlookupd_tcp_addresses")

Metadata keys: ``flag`` (required to be resolvable), ``help``, ``cfg``
(config-file key; default is the flag with ``-`` → ``_``), ``duration``
(float seconds parsed from Go durations), ``parse`` (a ``str -> value``
callable overriding the type's converter, e.g. nsqd's ``tls-required``).
Supported field types: ``int``, ``float``, ``str``, ``bool``,
``list[str]``, ``list[int]``, ``list[float]``.

:func:`resolve` applies NSQ's precedence: explicit flag > config file key >
dataclass default.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import tomllib
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from internal.version import version_string

__all__ = [
    "OptionSpec",
    "OptionsError",
    "build_parser",
    "duration",
    "format_duration",
    "load_config",
    "option",
    "option_specs",
    "parse_bool",
    "parse_duration",
    "resolve",
]

T = TypeVar("T")


def option(default: T, flag: str, help: str, **extra: object) -> T:
    """A dataclass field for one option: its default (a list is copied per instance),
    its ``flag`` and ``help``, and further metadata keys as keywords (``cfg=...``)."""
    meta = {"flag": flag, "help": help, **extra}
    if isinstance(default, list):
        items = list(default)
        return cast(T, dataclasses.field(default_factory=lambda: list(items), metadata=meta))
    return dataclasses.field(default=default, metadata=meta)


def duration(default: float, flag: str, help: str, **extra: object) -> float:
    """:func:`option` for a duration: float seconds, written as a Go duration."""
    return option(default, flag, help, duration=True, **extra)


class OptionsError(ValueError):
    """A bad flag value, config file or option combination."""


# --- scalar converters -------------------------------------------------------

_TRUE = frozenset(("1", "t", "T", "TRUE", "true", "True"))
_FALSE = frozenset(("0", "f", "F", "FALSE", "false", "False"))


def parse_bool(value: str) -> bool:
    """Parse a boolean the way Go's ``strconv.ParseBool`` does.

    Raises:
        ValueError: For anything but ``1 t T TRUE true True`` / ``0 f F FALSE false False``.
    """
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"invalid boolean {value!r}")


def _parse_int(value: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        pass
    try:
        return int(value, 10)
    except ValueError:
        raise ValueError(f"invalid integer {value!r}") from None


def _parse_float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"invalid number {value!r}") from None


_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # µ MICRO SIGN
    "\u03bcs": 1_000,  # μ GREEK SMALL LETTER MU
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)?")
_MAX_NS = 2**63 - 1


def _parse_duration_ns(text: str) -> int:
    quoted = f'"{text}"'
    s = text
    sign = 1
    if s[:1] in ("-", "+"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        assert m is not None  # every group is optional
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if not whole and not frac:
            raise ValueError(f"time: invalid duration {quoted}")
        if unit is None:
            if m.end() == len(s):
                raise ValueError(f"time: missing unit in duration {quoted}")
            raise ValueError(f"time: unknown unit in duration {quoted}")
        scale = _UNIT_NS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
        if total > _MAX_NS:
            raise ValueError(f"time: invalid duration {quoted}")
        pos = m.end()
    return sign * total


def parse_duration(text: str) -> float:
    """Parse a Go duration string (``"60s"``, ``"1m30s"``, ``"100ms"``) to seconds.

    Like Go's ``time.ParseDuration``, every number needs a unit
    (``ns us µs ms s m h``) except a bare ``"0"``.

    Args:
        text: The duration text, optionally signed.

    Returns:
        The duration in (float) seconds.

    Raises:
        ValueError: With Go's message, e.g. ``time: missing unit in duration "60"``.
    """
    return _parse_duration_ns(text) / 1e9


def _frac(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def format_duration(seconds: float) -> str:
    """Format seconds like Go's ``time.Duration.String`` (``1m0s``, ``100ms``, ``1.5µs``).

    Args:
        seconds: Duration in seconds; rounded to whole nanoseconds.

    Returns:
        The Go spelling; ``"0s"`` for zero.
    """
    ns = round(seconds * 1e9)
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_frac(ns, 1_000)}\u00b5s"
    if ns < 1_000_000_000:
        return f"{sign}{_frac(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = f"{_frac(rest, 1_000_000_000)}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


# --- option specs ------------------------------------------------------------

_KINDS: dict[Any, str] = {
    int: "int",
    float: "float",
    str: "str",
    bool: "bool",
    list[str]: "list_str",
    list[int]: "list_int",
    list[float]: "list_float",
}
_SCALAR_PARSERS: dict[str, Callable[[str], Any]] = {
    "int": _parse_int,
    "float": _parse_float,
    "str": str,
    "bool": parse_bool,
    "duration": parse_duration,
    "list_int": _parse_int,
    "list_float": _parse_float,
}
_METAVARS = {"int": "int", "float": "float", "str": "string", "duration": "duration"}
_RESERVED = frozenset(("config", "version", "help", "h"))


@dataclasses.dataclass(frozen=True, slots=True)
class OptionSpec:
    """How one dataclass field maps to a flag and a config-file key.

    Attributes:
        name: Dataclass field name.
        flag: Flag name without dashes (``mem-queue-size``).
        cfg: Config file key (``mem_queue_size``).
        kind: ``int float str bool duration list_str list_int list_float custom``.
        help: Help text.
        default: The field's default value.
        parse: Converter from a string for ``custom`` (and every other) kind.
        bool_flag: A bare ``--flag`` means ``--flag=true`` (Go's ``IsBoolFlag``, as
            nsqd's ``--tls-required`` has); metadata key ``"bool_flag"``.
    """

    name: str
    flag: str
    cfg: str
    kind: str
    help: str
    default: Any
    parse: Callable[[str], Any]
    bool_flag: bool = False

    def coerce_config(self, value: Any) -> Any:
        """Convert a TOML value for this option, as go-options coerces it.

        Raises:
            ValueError: If the value has the wrong type or does not parse.
        """
        kind = self.kind
        if kind.startswith("list_"):
            if isinstance(value, str):
                items: list[Any] = value.split(",") if value else []
            elif isinstance(value, list):
                items = value
            else:
                raise ValueError(f"expected a list, got {_toml_type(value)}")
            return [self._coerce_item(item) for item in items]
        if kind == "duration" and isinstance(value, int) and not isinstance(value, bool):
            return value / 1000.0  # go-options reads integer durations as milliseconds
        return self._coerce_item(value)

    def _coerce_item(self, value: Any) -> Any:
        kind = self.kind.removeprefix("list_")
        if isinstance(value, str):
            return self.parse(value.strip() if kind in ("int", "float") else value)
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind in ("str", "custom") and isinstance(value, (bool, int, float)):
            return self.parse(_go_string(value))
        raise ValueError(f"expected {kind}, got {_toml_type(value)}")


def _go_string(value: bool | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _toml_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string",
            list: "array", dict: "table"}.get(type(value), type(value).__name__)


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def option_specs(options_cls: type[Any]) -> list[OptionSpec]:
    """List the resolvable (``flag``-tagged) fields of an options dataclass.

    Raises:
        TypeError: If a field has an unsupported type or a reserved flag name.
    """
    hints = typing.get_type_hints(options_cls)
    specs = []
    for f in dataclasses.fields(options_cls):
        meta = f.metadata
        flag = meta.get("flag")
        if not flag or not f.init:
            continue
        flag = flag.lstrip("-")
        if flag in _RESERVED:
            raise TypeError(f"{options_cls.__name__}.{f.name}: flag name {flag!r} is reserved")
        parse = meta.get("parse")
        if parse is not None:
            kind = "custom"
        else:
            kind = _KINDS.get(hints[f.name], "")
            if meta.get("duration"):
                if kind != "float":
                    raise TypeError(f"{options_cls.__name__}.{f.name}: durations must be float")
                kind = "duration"
            if not kind:
                raise TypeError(
                    f"{options_cls.__name__}.{f.name}: unsupported option type {hints[f.name]!r}"
                )
            parse = _SCALAR_PARSERS.get(kind, str)
        specs.append(
            OptionSpec(
                name=f.name,
                flag=flag,
                cfg=meta.get("cfg") or flag.replace("-", "_"),
                kind=kind,
                help=meta.get("help", ""),
                default=_field_default(f),
                parse=parse,
                bool_flag=bool(meta.get("bool_flag")),
            )
        )
    return specs


# --- argument parser ---------------------------------------------------------


def _argparse_type(parse: Callable[[str], Any], kind: str) -> Callable[[str], Any]:
    def convert(value: str) -> Any:
        try:
            return parse(value)
        except (ValueError, TypeError) as exc:
            raise argparse.ArgumentTypeError(f"invalid value {value!r}: {exc}") from None

    convert.__name__ = kind
    return convert


def _split_list(parse: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def convert(value: str) -> list[Any]:
        return [parse(item.strip()) for item in value.split(",")]

    return convert


class _ExtendSplitAction(argparse.Action):
    """Repeatable flag whose values may also be comma separated (Go's FloatArray)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.extend(values)
        setattr(namespace, self.dest, items)


def _show_default(spec: OptionSpec) -> str:
    value = spec.default
    if not value:
        return ""  # Go omits zero-value defaults
    if spec.kind == "duration":
        return f" (default {format_duration(value)})"
    if spec.kind == "str":
        return f' (default "{value}")'
    if spec.kind.startswith("list_"):
        return f" (default {','.join(str(v) for v in value)})"
    return f" (default {value})"


class GoFlagParser(argparse.ArgumentParser):
    """``ArgumentParser`` that also accepts Go's flag spellings.

    ``-flag``, ``-flag=v``, ``--flag v`` and ``--flag=v`` all work; boolean
    flags take ``--flag`` or ``--flag=true|false`` only (a following word is
    not consumed, as in Go).
    """

    def __init__(self, *args: Any, brief_errors: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._go_bools: set[str] = set()
        self._go_values: set[str] = set()
        self.brief_errors = brief_errors

    def error(self, message: str) -> typing.NoReturn:
        """Exit 2 on a bad flag; with ``brief_errors`` one line, no usage text."""
        if self.brief_errors:
            self.exit(2, f"{self.prog}: error: {message}\n")
        super().error(message)

    def add_go_flag(self, flag: str, *, boolean: bool, **kwargs: Any) -> None:
        """Register ``--flag`` and remember whether it takes a value."""
        (self._go_bools if boolean else self._go_values).add(flag)
        self.add_argument(f"--{flag}", **kwargs)

    def normalise(self, argv: Sequence[str]) -> list[str]:
        """Rewrite Go spellings into ``--flag=value`` tokens argparse understands."""
        out: list[str] = []
        args = list(argv)
        i = 0
        while i < len(args):
            tok = args[i]
            i += 1
            if tok == "--":
                out.extend(args[i - 1 :])
                break
            if len(tok) > 2 and tok[0] == "-" and tok[1].isalpha():
                tok = "-" + tok  # Go's single-dash long flag
            elif len(tok) == 2 and tok[0] == "-" and tok[1:] in self._go_values | self._go_bools:
                tok = "-" + tok  # a one-letter Go flag (nsq_tail's -n)
            if not tok.startswith("--") or "=" in tok:
                out.append(tok)
                continue
            name = tok[2:]
            if name in self._go_bools:
                out.append(f"{tok}=true")
            elif name in self._go_values and i < len(args):
                out.append(f"{tok}={args[i]}")
                i += 1
            else:
                out.append(tok)
        return out

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if args is None:
            args = sys.argv[1:]
        return super().parse_known_args(self.normalise(args), namespace)


def build_parser(options_cls: type[Any], prog: str, description: str = "", *,
                 brief_errors: bool = False) -> GoFlagParser:
    """Build the command line parser for an options dataclass.

    Explicitly given flags are the only option attributes set on the parsed
    namespace (defaults are ``argparse.SUPPRESS``), so callers can tell them
    apart from defaults. ``--config FILE`` and ``--version`` are always added.

    Args:
        options_cls: The daemon's options dataclass.
        prog: Program name for usage and ``--version``.
        description: Text shown by ``--help``.
        brief_errors: Report a bad flag in one line, without the usage text.

    Returns:
        The parser; its ``parse_args`` accepts Go flag spellings.
    """
    parser = GoFlagParser(prog=prog, description=description, brief_errors=brief_errors)
    parser.add_go_flag("config", boolean=False, default=None, metavar="string",
                       help="path to config file")
    parser.add_go_flag("version", boolean=True, default=False,
                       type=_argparse_type(parse_bool, "bool"), nargs="?", const=True,
                       metavar="true|false", help="print version string")
    for spec in option_specs(options_cls):
        help_text = (spec.help + _show_default(spec)).replace("%", "%%")
        common: dict[str, Any] = {
            "dest": spec.name, "default": argparse.SUPPRESS, "help": help_text,
            "type": _argparse_type(spec.parse, spec.kind),
        }
        if spec.kind == "bool":
            parser.add_go_flag(spec.flag, boolean=True, nargs="?", const=True,
                               metavar="true|false", **common)
        elif spec.bool_flag:
            parser.add_go_flag(spec.flag, boolean=True, metavar="value", **common)
        elif spec.kind == "list_str":
            parser.add_go_flag(spec.flag, boolean=False, action="append",
                               metavar="value", **common)
        elif spec.kind in ("list_int", "list_float"):
            common["type"] = _argparse_type(_split_list(spec.parse), spec.kind)
            parser.add_go_flag(spec.flag, boolean=False, action=_ExtendSplitAction,
                               metavar="value[,value]", **common)
        else:
            metavar = _METAVARS.get(spec.kind, "value")
            parser.add_go_flag(spec.flag, boolean=False, metavar=metavar, **common)
    return parser


# --- resolution --------------------------------------------------------------


def load_config(path: str) -> dict[str, Any]:
    """Read a TOML config file.

    Raises:
        OptionsError: If the file can't be read or isn't valid TOML.
    """
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise OptionsError(f"failed to load config file {path} - {exc}") from None


def _resolve(options_cls: type[T], args: argparse.Namespace) -> T:
    specs = option_specs(options_cls)
    cfg: dict[str, Any] = load_config(args.config) if args.config else {}
    by_key = {spec.cfg: spec for spec in specs}
    unknown = sorted(set(cfg) - set(by_key))
    if unknown:
        raise OptionsError(
            f"unknown option(s) in config file {args.config}: {', '.join(unknown)}"
        )
    kwargs: dict[str, Any] = {}
    for spec in specs:
        if hasattr(args, spec.name):
            kwargs[spec.name] = getattr(args, spec.name)
        elif spec.cfg in cfg:
            try:
                kwargs[spec.name] = spec.coerce_config(cfg[spec.cfg])
            except (ValueError, TypeError) as exc:
                raise OptionsError(
                    f"invalid value {cfg[spec.cfg]!r} for {spec.cfg} "
                    f"in config file {args.config}: {exc}"
                ) from None
    try:
        return options_cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise OptionsError(f"invalid options - {exc}") from None


def resolve(
    options_cls: type[T],
    argv: Sequence[str] | None = None,
    *,
    prog: str,
    description: str = "",
    exit_on_error: bool = True,
    brief_errors: bool = False,
) -> tuple[T, argparse.Namespace]:
    """Parse flags, read ``--config`` and build the options instance.

    Precedence is explicit flag > config file key > dataclass default. With
    ``--version`` the version line is printed and the process exits 0 before
    the config file is read (as nsqd does). Validation errors raised by the
    dataclass (``ValueError`` in ``__post_init__``) are reported like config
    errors.

    Args:
        options_cls: The daemon's options dataclass.
        argv: Arguments without the program name; ``sys.argv[1:]`` if None.
        prog: Program name (``nsqd``).
        description: ``--help`` text.
        exit_on_error: Print config/validation errors to stderr and exit with
            status 1 (bad flags always exit 2, as Go's flag package does).
        brief_errors: Report a bad flag in one line, without the usage text.

    Returns:
        ``(options, namespace)``; the namespace holds ``config``, ``version``
        and only the flags given explicitly.

    Raises:
        OptionsError: When ``exit_on_error`` is false and resolution fails.
    """
    parser = build_parser(options_cls, prog, description, brief_errors=brief_errors)
    args = parser.parse_args(argv)
    if args.version:
        print(version_string(prog))
        sys.exit(0)
    try:
        return _resolve(options_cls, args), args
    except OptionsError as exc:
        if not exit_on_error:
            raise
        parser.exit(1, f"{prog}: error: {exc}\n")
