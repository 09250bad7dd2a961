"""Protocol V2: the command loop of one client connection, and the command table.

Each command is a row of :data:`COMMANDS`: the client states it is allowed in, a pure
check and a run that returns what to do (see :mod:`nsqd.protocol_util`). A command with
a body is checked on its line before the body is buffered, and again, by the same pure
check, once it is complete; it runs once.

The loop reads whatever arrived, parses every complete command, runs them one after
another (synchronously: publishing, delivering and acknowledging never await per
message; runs of PUB, DPUB or FIN are taken at once), then lets the writer send all
resulting frames in one write. Errors and their fatality, texts and order of checks
follow nsqd 1.3's ``protocol_v2.go``.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import trio

from client.protocol import (
    FIN_RUN,
    V2_BODY_COMMANDS,
    Command,
    CommandReader,
    RemoteProtocolError,
    encode_error,
    encode_response,
)
from internal.directstream import DirectSocketStream

from .backend import BackendError
from .client_v2 import ClientV2, State
from .errors import (
    ClientError,
    body_not_read,
    command_failed,
    internal_error,
    invalid_command,
    invalid_state,
    tls_required,
)
from .protocol_consume import (
    check_fin,
    check_nothing,
    check_rdy,
    check_req,
    check_sub,
    fin_run,
    run_cls,
    run_fin,
    run_nop,
    run_rdy,
    run_req,
    run_sub,
    run_touch,
)
from .protocol_pub import (
    check_dpub,
    check_mpub,
    check_pub,
    publish_run,
    run_mpub,
    run_pub,
)
from .protocol_session import (
    check_auth_command,
    check_identify,
    run_auth_command,
    run_identify,
)
from .protocol_util import AwaitIO, CommandSpec, Outcome, StartUpgrade, report
from .read_deadlines import ReadDeadlines
from .tls import TLS_NOT_REQUIRED
from .transport import UpgradeError, UpgradePlan, upgrade_connection

if TYPE_CHECKING:
    from .nsqd import NSQD

__all__ = ["ProtocolV2"]

logger = logging.getLogger(__name__)

RECV_SIZE = 256 * 1024

_INIT = frozenset({State.INIT})
_SUBSCRIBED = frozenset({State.SUBSCRIBED})
_ACKING = frozenset({State.SUBSCRIBED, State.CLOSING})

#: Every command: the states it is allowed in (else ``cannot X in current state``), its
#: checks and its run. Before a required TLS upgrade only IDENTIFY is allowed.
COMMANDS: dict[bytes, CommandSpec] = {
    b"IDENTIFY": CommandSpec(_INIT, check_identify, run_identify, "max_body_size"),
    b"AUTH": CommandSpec(_INIT, check_auth_command, run_auth_command, "max_body_size"),
    b"SUB": CommandSpec(_INIT, check_sub, run_sub),
    b"RDY": CommandSpec(_ACKING, check_rdy, run_rdy),  # ignored while closing
    b"FIN": CommandSpec(_ACKING, check_fin, run_fin),
    b"REQ": CommandSpec(_ACKING, check_req, run_req),
    b"TOUCH": CommandSpec(_ACKING, check_fin, run_touch),
    b"CLS": CommandSpec(_SUBSCRIBED, check_nothing, run_cls),
    b"NOP": CommandSpec(None, check_nothing, run_nop),
    b"PUB": CommandSpec(None, check_pub, run_pub, "max_msg_size"),
    b"MPUB": CommandSpec(None, check_mpub, run_mpub, "max_body_size"),
    b"DPUB": CommandSpec(None, check_dpub, run_pub, "max_msg_size"),
}
assert {name for name, spec in COMMANDS.items() if spec.body_limit} == V2_BODY_COMMANDS

#: several of these in a row are taken at once (``publish_run``; FINs come as the
#: reader's ``FIN_RUN``, see ``fin_run``)
RUNS = frozenset({b"PUB", b"DPUB"})


def _release(client: ClientV2, release: list[list[bytes]], error: BaseException | None
             ) -> None:
    """A batch's durable publish is fsync'ed: send its responses, unless its task did."""
    if error is None and release:
        client.send_frames(release.pop())


class ProtocolV2:
    """Runs protocol V2 for the connections of one nsqd."""

    def __init__(self, nsqd: NSQD) -> None:
        self.nsqd = nsqd
        #: the command table (a copy: tests may patch one server's)
        self.commands = dict(COMMANDS)
        #: the read timeouts (its task is started by :meth:`NSQD.run`)
        self.read_deadlines = ReadDeadlines()

    # ------------------------------------------------------------------ commands
    def check(self, client: ClientV2, cmd: Command) -> ClientError | None:
        """Why ``cmd`` may not run now (None: it may). Pure: the same answer before a
        body arrives (from its line) and once it is complete."""
        return self._refusal(client, cmd, self.commands.get(cmd.name))

    def _refusal(self, client: ClientV2, cmd: Command,
                 spec: CommandSpec | None) -> ClientError | None:
        name = cmd.name
        if name != b"IDENTIFY" and self._tls_pending(client):
            return tls_required(name)
        if spec is None:
            return invalid_command(name)
        if spec.states is not None and client.state not in spec.states:
            return invalid_state(name)
        return spec.check(self.nsqd, client, cmd)

    def run(self, client: ClientV2, cmd: Command) -> Outcome:
        """Check ``cmd``, then (if allowed) do it."""
        spec = self.commands.get(cmd.name)
        err = self._refusal(client, cmd, spec)
        if err is not None:
            return err
        assert spec is not None
        if spec.body_limit is not None and cmd.body is None:
            return body_not_read(cmd.name)  # refused on its line earlier, allowed by now
        return spec.run(self.nsqd, client, cmd)

    def _rejects(self, client: ClientV2, name: bytes, params: list[bytes]) -> bool:
        """Would this command fail before its body is read (NSQ checks params first)?"""
        try:
            return self.check(client, Command(name, params)) is not None
        except Exception:
            return True

    def publish_run(self, client: ClientV2, commands: list[Command],
                    start: int) -> tuple[int, ClientError | None]:
        """PUBs or DPUBs to one topic in a row, at once (see :mod:`nsqd.protocol_pub`)."""
        return publish_run(self.nsqd, client, commands, start)

    def fin_run(self, client: ClientV2, msg_ids: list[bytes]) -> bool:
        """FINs in a row, at once (see :mod:`nsqd.protocol_consume`); False: the client
        may not FIN now."""
        return fin_run(self.nsqd, client, msg_ids)

    # ------------------------------------------------------------------ loop
    async def serve(self, stream: trio.abc.Stream, client: ClientV2, initial: bytes) -> None:
        """Run the connection until the client leaves, errs fatally or is closed."""
        opts = self.nsqd.options
        # sizes are refused on the size header, before any of the body is buffered
        limits = {name: getattr(opts, spec.body_limit)
                  for name, spec in self.commands.items() if spec.body_limit}
        reader = CommandReader(V2_BODY_COMMANDS, max_body_size=opts.max_body_size,
                               body_limits=limits, fin_runs=True,
                               early_reject=lambda name, params: self._rejects(client, name,
                                                                               params))
        reader.feed(initial)
        try:
            async with trio.open_nursery() as nursery:
                client.cancel_scope = nursery.cancel_scope
                nursery.start_soon(client.writer, stream)
                try:
                    await self._read_loop(stream, client, reader)
                finally:
                    client.finish_output()
                    nursery.cancel_scope.deadline = trio.current_time() + 5
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as group:
            logger.debug("PROTOCOL(V2): [%s] connection error: %s", client, group.exceptions[0])
        finally:
            self._cleanup(client)

    async def _read_loop(self, stream: trio.abc.Stream, client: ClientV2,
                         reader: CommandReader) -> None:
        pending = reader.buffered > 0
        received = trio.current_time()
        started = received if pending else None  # first byte of the incomplete command
        deadlines = self.read_deadlines
        # cancelled by ``deadlines`` only while a read waits (see nsqd/read_deadlines.py)
        read_scope = trio.CancelScope()
        with read_scope:
            while True:
                if not pending:
                    now = trio.current_time()
                    # a command must be complete within the limit of its first byte,
                    # however slowly it trickles in (--client-timeout without heartbeats)
                    deadline = (now + self._idle_limit(client) if started is None
                                else started + self._io_limit(client))
                    data: bytes | bytearray | None = None
                    if isinstance(stream, DirectSocketStream) and now < deadline:
                        # what is there already is read without a timeout to set up
                        data = await stream.receive_ready(RECV_SIZE)
                    if data is None:
                        if deadlines.running:
                            deadlines.waiting(client, deadline, read_scope)
                            try:
                                data = await stream.receive_some(RECV_SIZE)
                            finally:
                                deadlines.done(client)
                            if read_scope.cancel_called:  # the data came at the deadline
                                break
                        else:
                            with trio.move_on_at(deadline) as cs:
                                data = await stream.receive_some(RECV_SIZE)
                            if cs.cancelled_caught:
                                break
                    if not data:
                        return
                    received = trio.current_time()
                    reader.feed(bytes(data))  # TLS streams give bytearrays
                pending = False
                try:
                    commands = reader.commands()
                except RemoteProtocolError as exc:
                    logger.info("PROTOCOL(V2): [%s] failed to read command - %s", client, exc)
                    return
                if not reader.buffered:
                    started = None
                elif commands or started is None:
                    started = received  # the rest began in the last read
                token = self._hold_responses(client)
                closing, upgrade = await self._run_batch(client, commands, reader.buffered > 0)
                if not await self._release_responses(client, token):
                    return
                if client.needs_fill:
                    client.needs_fill = False
                    channel = client.channel
                    if channel is not None:
                        channel.fill(client, trio.current_time())
                if closing:
                    return
                if upgrade is not None:
                    try:
                        stream = await upgrade_connection(stream, client, upgrade,
                                                          self.nsqd.tls_context)
                    except UpgradeError as exc:
                        logger.info("PROTOCOL(V2): [%s] %s", client, exc)
                        return
                    continue
                if client.out_bytes > client.reader_limit \
                        and not await client.wait_output_drained(self._io_limit(client)):
                    logger.info("PROTOCOL(V2): [%s] write timeout (%d bytes not read)",
                                client, client.out_bytes)
                    return
        if started is None:
            logger.info("PROTOCOL(V2): [%s] read timeout (missed heartbeats)", client)
        else:
            logger.info("PROTOCOL(V2): [%s] command not complete after %.1fs",
                        client, trio.current_time() - started)

    async def _run_batch(self, client: ClientV2, commands: list[Command],
                         more: bool) -> tuple[bool, UpgradePlan | None]:
        """Run one receive buffer's commands in order; ``more``: bytes follow them.

        Returns whether the connection closes, and the upgrade IDENTIFY asked for.
        """
        runs = not self._tls_pending(client)
        i, count = 0, len(commands)
        while i < count:
            cmd = commands[i]
            name = cmd.name
            i += 1
            try:
                if name == FIN_RUN:
                    if not (runs and self.fin_run(client, cmd.params)):
                        # one by one, for the error each of them gets
                        commands[i - 1:i] = [Command(b"FIN", [msg_id]) for msg_id in cmd.params]
                        count = len(commands)
                        i -= 1
                    continue
                if runs and i < count and commands[i].name == name and name in RUNS:
                    taken, err = self.publish_run(client, commands, i - 1)
                    if err is not None and report(client, err):
                        return True, None
                    if taken:
                        i += taken - 1
                        continue
                outcome = self.run(client, cmd)
                if isinstance(outcome, AwaitIO):
                    outcome = await outcome.fn()
                if outcome is None:
                    continue
                if isinstance(outcome, bytes):
                    client.send(encode_response(outcome))
                elif isinstance(outcome, StartUpgrade):
                    client.send(encode_response(outcome.plan.response))
                    if i < count or more:
                        # a client must wait for IDENTIFY's response before upgrading
                        logger.info("PROTOCOL(V2): [%s] data after IDENTIFY before the upgrade",
                                    client)
                        return True, None
                    return False, outcome.plan
                elif report(client, outcome):
                    return True, None
            except Exception as exc:  # a bug: still an error frame, then close
                logger.exception("PROTOCOL(V2): [%s] %s failed", client, cmd.name)
                report(client, internal_error(cmd.name, exc))
                return True, None
        return False, None

    def _idle_limit(self, client: ClientV2) -> float:
        """How long a client may stay silent: NSQ's read deadline of two heartbeats."""
        hb = client.heartbeat_interval
        return 2 * hb if hb > 0 else math.inf

    def _io_limit(self, client: ClientV2) -> float:
        """How long one command may take to arrive, or the output to be read."""
        limit = self._idle_limit(client)
        return limit if limit < math.inf else self.nsqd.options.client_timeout

    def _hold_responses(self, client: ClientV2) -> tuple[int, int]:
        """Collect this batch's responses apart (group commit, see ``nsqd/syncer.py``)."""
        client.held = []
        return self.nsqd.durable_token(), self.nsqd.meta.mark()

    async def _release_responses(self, client: ClientV2, token: tuple[int, int]) -> bool:
        """Send the batch's responses; after an fsync if it published in durable mode,
        after the metadata write if it created a topic or channel (PUB, SUB).

        Returns False (after sending E_PUB_FAILED or E_SUB_FAILED) when the disk failed
        to store them.
        """
        held, client.held = client.held, None
        durable, mark = token
        if self.nsqd.meta.changed_since(mark):
            try:
                await self.nsqd.meta.saved()
            except BackendError as exc:
                # a consumer's batch created its channel; a publisher's its topic
                cmd = b"SUB" if client.channel is not None and not client.pub_counts else b"PUB"
                logger.error("PROTOCOL(V2): [%s] %s - %s", client, cmd.decode(), exc)
                client.send(encode_error(command_failed(cmd, exc).wire()))
                return False
        syncer = self.nsqd.syncer
        cycle = syncer.covering_cycle(durable)
        if cycle is not None:
            # the cycle's end sends the responses (no hop through this task first)
            release = [held] if held else []
            if release:
                cycle.call_when_done(lambda error: _release(client, release, error))
            try:
                await syncer.wait_cycle(cycle)
            except BackendError as exc:
                logger.error("PROTOCOL(V2): [%s] publish not stored - %s", client, exc)
                client.send(encode_error(command_failed(b"PUB", exc).wire()))
                return False
            held = release.pop() if release else None
        if held:
            client.send_frames(held)
        return True

    def _tls_pending(self, client: ClientV2) -> bool:
        return self.nsqd.options.tls_required != TLS_NOT_REQUIRED and not client.tls

    def _cleanup(self, client: ClientV2) -> None:
        logger.info("PROTOCOL(V2): [%s] exiting ioloop", client)
        channel = client.channel
        if channel is not None:
            channel.remove_client(client, trio.current_time())
        client.state = State.DISCONNECTED
        self.nsqd.remove_client(client)
