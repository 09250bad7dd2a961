"""Server-side command parsing: bytes in, :class:`Command` tuples out (sans-I/O).

One reader serves nsqd (V2) and nsqlookupd (V1); they differ only in which commands
carry a ``[size:int32][body]`` after their line. Parsing works by offset over the
received bytes and joins buffered pieces only once enough bytes for the next step
have arrived, so cost stays linear however the stream is split.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple

from ._buffer import ReceiveBuffer
from .errors import RemoteProtocolError
from .frames import _unpack_size

__all__ = [
    "V1_BODY_COMMANDS",
    "V2_BODY_COMMANDS",
    "FIN_RUN",
    "Command",
    "CommandReader",
    "MPUBError",
    "parse_mpub_body",
]

V2_BODY_COMMANDS = frozenset({b"IDENTIFY", b"PUB", b"MPUB", b"DPUB", b"AUTH"})
V1_BODY_COMMANDS = frozenset({b"IDENTIFY"})

#: NSQ reads commands through a 16 KiB bufio.Reader: longer lines are refused
DEFAULT_MAX_LINE = 16 * 1024

#: length of ``FIN <16-byte id>`` before its newline
_FIN_LINE = 20
#: the name of a run of FINs (no command's name has a space): ``params`` are the IDs
FIN_RUN = b"FIN "
#: the most FINs one run takes (bounds the work of looking for the run's end)
FIN_RUN_MAX = 512
#: each line of a run has these bytes at these offsets
_FIN_COLUMNS = ((0, b"F"), (1, b"I"), (2, b"N"), (3, b" "), (_FIN_LINE, b"\n"))


class Command(NamedTuple):
    """One parsed command.

    Attributes:
        name: e.g. ``b"PUB"``.
        params: the space-separated words after the name.
        body: the body of a body-carrying command, else None.
        bad_body_size: set instead of ``body`` when the declared size was <= 0 or over
            the reader's limit; the reader stops there (the connection must close).
    """

    name: bytes
    params: list[bytes]
    body: bytes | None = None
    bad_body_size: int | None = None


class CommandReader(ReceiveBuffer):
    """Incremental parser of the client → server command stream.

    Args:
        body_commands: names of commands followed by a sized body.
        max_body_size: bodies declared larger are not buffered; the command comes
            back with ``bad_body_size`` set.
        body_limits: per-command limits that replace ``max_body_size`` (nsqd refuses
            a PUB larger than --max-msg-size on its size header, as NSQ does).
        max_line: longest command line accepted.
        early_reject: called with ``(name, params)`` of a body-carrying command as soon
            as its line is complete; when it returns True the command comes back at
            once without a body (``body`` and ``bad_body_size`` both None) and the
            reader stops, so a server can refuse bad parameters before the body arrives
            (as nsqd does).
        fin_runs: ``FIN <16-byte id>`` lines come back as commands named
            :data:`FIN_RUN` whose params are the IDs of consecutive ones (up to
            :data:`FIN_RUN_MAX`), found without a step per line; a FIN the general
            parse would split otherwise (a space, newline or trailing ``\\r`` in its
            ID) is left to it.
    """

    __slots__ = ("_limits", "early_reject", "failed", "fin_runs", "max_body_size", "max_line")

    def __init__(
        self,
        body_commands: frozenset[bytes] = V2_BODY_COMMANDS,
        *,
        max_body_size: int = 5 * 1024 * 1024,
        max_line: int = DEFAULT_MAX_LINE,
        early_reject: Callable[[bytes, list[bytes]], bool] | None = None,
        body_limits: dict[bytes, int] | None = None,
        fin_runs: bool = False,
    ) -> None:
        self.early_reject = early_reject
        self.fin_runs = fin_runs
        self.max_body_size = max_body_size
        self._limits = {name: (body_limits or {}).get(name, max_body_size)
                        for name in body_commands}
        self.max_line = max_line
        super().__init__(1)
        self.failed = False

    def commands(self) -> list[Command]:
        """Every complete command buffered so far, in order.

        Raises:
            RemoteProtocolError: a command line longer than ``max_line``.
        """
        if self.failed or not self._available():
            return []
        buf = self._buf
        pos = self._pos
        end = len(buf)
        out: list[Command] = []
        append = out.append
        early_reject = self.early_reject
        limits = self._limits
        max_line = self.max_line
        fin_runs = self.fin_runs
        new = tuple.__new__
        # a pipelining publisher repeats one command line ("DPUB t 5000\n"): the line
        # just parsed is matched in place and its words reused
        last_line = b""
        name = b""
        params: list[bytes] = []
        need = 1
        while pos < end:
            if fin_runs and buf.startswith(b"FIN ", pos) \
                    and buf.startswith(b"FIN ", pos + _FIN_LINE + 1):  # two FINs at least
                k = _fin_run_length(buf, pos, end)
                if k:
                    stop = pos + k * (_FIN_LINE + 1)
                    append(new(Command, (FIN_RUN, buf[pos + 4 : stop - 1].split(b"\nFIN "),
                                         None, None)))
                    pos = stop
                    continue
            if buf.startswith(b"FIN ", pos) and end - pos > _FIN_LINE and buf[pos + _FIN_LINE] == 10:
                # the most frequent command of all, fixed size: no search, no split —
                # when the 16 bytes are one word, as the general path would find them
                msg_id = buf[pos + 4 : pos + _FIN_LINE]
                if b"\n" not in msg_id and b" " not in msg_id and msg_id[-1] != 13:
                    append(new(Command, (FIN_RUN if fin_runs else b"FIN", [msg_id], None, None)))
                    pos += _FIN_LINE + 1
                    continue
            if last_line and buf.startswith(last_line, pos):
                nl = pos + len(last_line) - 1
            else:
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    if end - pos > max_line:
                        self.failed = True
                        raise RemoteProtocolError(f"command line longer than {max_line} bytes")
                    need = end - pos + 1
                    break
                if nl - pos > max_line:
                    self.failed = True
                    raise RemoteProtocolError(f"command line longer than {max_line} bytes")
                line_end = nl - 1 if nl > pos and buf[nl - 1] == 13 else nl  # strip '\r'
                words = buf[pos:line_end].split(b" ")
                name = words[0]
                params = words[1:]
                last_line = buf[pos : nl + 1]
            max_body = limits.get(name)
            if max_body is not None:
                start = nl + 5
                size = _unpack_size(buf, nl + 1)[0] if end >= start else 0
                if early_reject is not None and (size <= 0 or end - start < size) \
                        and early_reject(name, params):
                    append(new(Command, (name, params, None, None)))
                    self.failed = True
                    pos = end
                    break
                if end < start:
                    need = start - pos
                    break
                if size <= 0 or size > max_body:
                    append(new(Command, (name, params, None, size)))
                    self.failed = True
                    pos = end
                    break
                if end - start < size:
                    need = start + size - pos
                    break
                append(new(Command, (name, params, buf[start : start + size], None)))
                pos = start + size
            else:
                append(new(Command, (name, params, None, None)))
                pos = nl + 1
        self._consumed(pos, need)
        return out


def _fin_run_length(buf: bytes, pos: int, end: int) -> int:
    """How many ``FIN <16-byte id>\\n`` lines (at most :data:`FIN_RUN_MAX`) follow
    ``pos``, each an ID the general parse would also see as one 16-byte word.

    Looked for in windows of lines growing fourfold from 16, so that a short run (FINs
    mixed with other commands) costs little more than its own length.
    """
    step = _FIN_LINE + 1
    n = min((end - pos) // step, FIN_RUN_MAX)
    k = 0
    window = 16
    while k < n:
        size = min(window, n - k)
        found = _fin_lines(buf, pos + k * step, size)
        k += found
        if found < size:
            break
        window *= 4
    return k


def _fin_lines(buf: bytes, pos: int, n: int) -> int:
    """How many of the ``n`` 21-byte lines from ``pos`` on are FINs, from the first."""
    step = _FIN_LINE + 1
    for offset, char in _FIN_COLUMNS:  # the fixed bytes of every line, by columns
        if n <= 0:
            return 0
        column = buf[pos + offset : pos + n * step : step]
        n -= len(column.lstrip(char))
    if n <= 0:
        return 0
    stop = pos + n * step
    if buf.count(b"\n", pos, stop) == n and buf.count(b" ", pos, stop) == n \
            and b"\r" not in buf[pos + _FIN_LINE - 1 : stop : step]:
        return n
    for i in range(n):  # an ID holds a space, newline or ends in '\r': the run ends there
        msg_id = buf[pos + i * step + 4 : pos + i * step + _FIN_LINE]
        if b"\n" in msg_id or b" " in msg_id or msg_id[-1] == 13:
            return i
    return n


class MPUBError(RemoteProtocolError):
    """An MPUB body that does not parse; ``code`` is the NSQ error code to send."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_unpack_count = struct.Struct(">l").unpack_from


def parse_mpub_body(body: bytes, max_msg_size: int, max_body_size: int) -> list[bytes]:
    """Split an MPUB body into message bodies, with NSQ's checks and messages.

    Raises:
        MPUBError: with code E_BAD_BODY or E_BAD_MESSAGE and NSQ's text.
    """
    end = len(body)
    if end < 4:
        raise MPUBError("E_BAD_BODY", "MPUB failed to read message count")
    (count,) = _unpack_count(body, 0)
    if count <= 0 or count > (max_body_size - 4) // 5:
        raise MPUBError("E_BAD_BODY", f"MPUB invalid message count {count}")
    if count * 5 + 4 <= end:
        (size,) = _unpack_count(body, 4)
        stride = size + 4
        if 0 < size <= max_msg_size and 4 + count * stride == end:
            # the usual batch: every message the same size. Then the body is exactly
            # that grid, and each size word the first one's (compared byte column by
            # byte column); a body that is not takes the general loop and its errors.
            word = body[4:8]
            if all(body[k::stride] == word[j:j + 1] * count
                   for j, k in enumerate(range(4, 8))):
                return [body[p : p + size] for p in range(8, end, stride)]
    pos = 4
    out: list[bytes] = []
    append = out.append
    for i in range(count):
        if end - pos < 4:
            raise MPUBError("E_BAD_MESSAGE", f"MPUB failed to read message({i}) body size")
        (size,) = _unpack_count(body, pos)
        pos += 4
        if size <= 0:
            raise MPUBError("E_BAD_MESSAGE", f"MPUB invalid message({i}) body size {size}")
        if size > max_msg_size:
            raise MPUBError("E_BAD_MESSAGE", f"MPUB message too big {size} > {max_msg_size}")
        if end - pos < size:
            raise MPUBError("E_BAD_MESSAGE", "MPUB failed to read message body")
        append(body[pos : pos + size])
        pos += size
    if pos != end:
        raise MPUBError("E_BAD_BODY", f"MPUB body has {end - pos} bytes after its {count} messages")
    return out
