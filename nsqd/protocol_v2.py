"""Protocol V2: the command loop of one client connection and every command's rules.

The loop reads whatever arrived, parses every complete command, runs them one after
another (synchronously: publishing, delivering and acknowledging never await per
message), then lets the writer send all resulting frames in one write. Errors and their
fatality, texts and order of checks follow nsqd 1.3's ``protocol_v2.go``.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import trio

from client.protocol import (
    CLOSE_WAIT,
    OK,
    Command,
    V2_BODY_COMMANDS,
    CommandReader,
    RemoteProtocolError,
    encode_error,
    encode_response,
    is_valid_channel_name,
    is_valid_topic_name,
)

from .backend import BackendError
from .client_v2 import ClientV2, State
from .errors import ChannelError, ClientError, FatalClientError, TopicError
from .protocol_pub import PublishCommands
from .protocol_session import SessionCommands
from .protocol_util import (
    AwaitIO,
    NeedBody,
    StartUpgrade,
    base10,
    fatal,
    go_quote,
    msg_id_param,
)
from .tls import TLS_NOT_REQUIRED
from .transport import UpgradeError, upgrade_connection

if TYPE_CHECKING:
    from .nsqd import NSQD

__all__ = ["ProtocolV2"]

logger = logging.getLogger(__name__)

RECV_SIZE = 256 * 1024


def _fin_failed(msg_id: bytes, exc: ChannelError) -> ClientError:
    return ClientError("E_FIN_FAILED", f"FIN {msg_id.decode('latin-1')} failed {exc}", exc)


def _internal_error(name: bytes, exc: Exception) -> FatalClientError:
    return FatalClientError("E_INVALID", f"{name.decode('latin-1')} failed", exc)


class ProtocolV2(SessionCommands, PublishCommands):
    """Runs protocol V2 for the connections of one nsqd."""

    def __init__(self, nsqd: NSQD) -> None:
        self.nsqd = nsqd
        self._handlers = {
            b"IDENTIFY": self.identify,
            b"AUTH": self.auth,
            b"SUB": self.sub,
            b"RDY": self.rdy,
            b"FIN": self.fin,
            b"REQ": self.req,
            b"TOUCH": self.touch,
            b"CLS": self.cls,
            b"NOP": self.nop,
            b"PUB": self.pub,
            b"MPUB": self.mpub,
            b"DPUB": self.dpub,
        }
        #: commands handled several at a time when they arrive in a row
        self._runs = {b"PUB": self.publish_run, b"DPUB": self.publish_run, b"FIN": self.fin_run}
        #: before a TLS upgrade when TLS is required: anything but IDENTIFY is refused
        self._tls_guard = {b"IDENTIFY": self.identify}

    # ------------------------------------------------------------------ loop
    async def serve(self, stream: trio.abc.Stream, client: ClientV2, initial: bytes) -> None:
        """Run the connection until the client leaves, errs fatally or is closed."""
        opts = self.nsqd.options
        # sizes are refused on the size header, before any of the body is buffered
        reader = CommandReader(V2_BODY_COMMANDS, max_body_size=opts.max_body_size,
                               body_limits={b"PUB": opts.max_msg_size, b"DPUB": opts.max_msg_size},
                               early_reject=lambda name, params: self._rejects(client, name, params))
        reader.feed(initial)
        handlers = self._handlers_for(client)
        try:
            async with trio.open_nursery() as nursery:
                client.cancel_scope = nursery.cancel_scope
                nursery.start_soon(client.writer, stream)
                try:
                    await self._read_loop(stream, client, reader, handlers)
                finally:
                    client.finish_output()
                    nursery.cancel_scope.deadline = trio.current_time() + 5
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as group:
            logger.debug("PROTOCOL(V2): [%s] connection error: %s", client, group.exceptions[0])
        finally:
            self._cleanup(client)

    async def _read_loop(self, stream: trio.abc.Stream, client: ClientV2,
                         reader: CommandReader, handlers: dict) -> None:
        pending = reader.buffered > 0
        received = trio.current_time()
        started = received if pending else None  # first byte of the incomplete command
        while True:
            if not pending:
                limit = self._idle_limit(client)
                if started is None:
                    deadline = trio.current_time() + limit
                else:
                    # every command must be complete within the limit of its first byte,
                    # however slowly it trickles in (--client-timeout without heartbeats)
                    deadline = started + self._io_limit(client)
                with trio.move_on_at(deadline) as cs:
                    data = await stream.receive_some(RECV_SIZE)
                if cs.cancelled_caught:
                    if started is None:
                        logger.info("PROTOCOL(V2): [%s] read timeout (missed heartbeats)", client)
                    else:
                        logger.info("PROTOCOL(V2): [%s] command not complete after %.1fs",
                                    client, trio.current_time() - started)
                    return
                if not data:
                    return
                received = trio.current_time()
                reader.feed(data)
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
            closing = False
            upgrade = None
            runs = self._runs
            token = self._hold_responses(client)
            i, count = 0, len(commands)
            while i < count:
                cmd = commands[i]
                i += 1
                try:
                    run = runs.get(cmd.name)
                    if run is not None and i < count and commands[i].name == cmd.name \
                            and handlers is self._handlers:
                        taken = run(client, commands, i - 1)
                        if taken:
                            i += taken - 1
                            continue
                    handler = handlers.get(cmd.name)
                    if handler is None:
                        raise self._no_handler(client, cmd.name)
                    try:
                        response = handler(client, cmd)
                    except NeedBody:
                        raise fatal("E_BAD_BODY", f"{cmd.name.decode()} failed to read body")
                    except AwaitIO as aw:
                        response = await aw.fn()
                        if aw.retry:
                            response = handler(client, cmd)
                    if response is not None:
                        client.send(encode_response(response))
                except StartUpgrade as up:
                    client.send(encode_response(up.plan.response))
                    if i < count or reader.buffered:
                        # a client must wait for IDENTIFY's response before upgrading
                        logger.info("PROTOCOL(V2): [%s] data after IDENTIFY before the upgrade",
                                    client)
                        closing = True
                    upgrade = up.plan
                    break
                except ClientError as err:
                    closing = self._report(client, err)
                    if closing:
                        break
                except Exception as exc:  # a bug: still an error frame, then close
                    logger.exception("PROTOCOL(V2): [%s] %s failed", client, cmd.name)
                    closing = self._report(client, _internal_error(cmd.name, exc))
                    break
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
                handlers = self._handlers_for(client)
                continue
            if client.out_bytes > client.reader_limit \
                    and not await client.wait_output_drained(self._io_limit(client)):
                logger.info("PROTOCOL(V2): [%s] write timeout (%d bytes not read)",
                            client, client.out_bytes)
                return

    def _idle_limit(self, client: ClientV2) -> float:
        """How long a client may stay silent: NSQ's read deadline of two heartbeats."""
        hb = client.heartbeat_interval
        return 2 * hb if hb > 0 else math.inf

    def _io_limit(self, client: ClientV2) -> float:
        """How long one command may take to arrive, or the output to be read."""
        limit = self._idle_limit(client)
        return limit if limit < math.inf else self.nsqd.options.client_timeout

    def _report(self, client: ClientV2, err: ClientError) -> bool:
        """Log and send a command's error frame; return whether it closes the connection."""
        closing = isinstance(err, FatalClientError)
        ctx = f" - {err.parent}" if err.parent else ""
        logger.log(logging.INFO if closing else logging.DEBUG, "[%s] - %s%s", client, err, ctx)
        client.send(encode_error(err.wire()))
        return closing

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
                cmd = "SUB" if client.channel is not None and not client.pub_counts else "PUB"
                logger.error("PROTOCOL(V2): [%s] %s - %s", client, cmd, exc)
                client.send(encode_error(f"E_{cmd}_FAILED {cmd} failed {exc}".encode()))
                return False
        if self.nsqd.syncer.pending(durable):
            try:
                await self.nsqd.wait_durable(durable)
            except BackendError as exc:
                logger.error("PROTOCOL(V2): [%s] publish not stored - %s", client, exc)
                client.send(encode_error(f"E_PUB_FAILED PUB failed {exc}".encode()))
                return False
        if held:
            client.send_frames(held)
        return True

    def _rejects(self, client: ClientV2, name: bytes, params: list[bytes]) -> bool:
        """Would this command fail before its body is read (NSQ checks params first)?"""
        if name != b"IDENTIFY" and self._tls_pending(client):
            return True
        try:
            self._handlers[name](client, Command(name, params))
        except (NeedBody, AwaitIO):
            return False
        except Exception:  # ClientError, or a bug the command loop then reports
            return True
        return False

    def _tls_pending(self, client: ClientV2) -> bool:
        return self.nsqd.options.tls_required != TLS_NOT_REQUIRED and not client.tls

    def _handlers_for(self, client: ClientV2) -> dict[bytes, Any]:
        return self._tls_guard if self._tls_pending(client) else self._handlers

    def _no_handler(self, client: ClientV2, name: bytes) -> FatalClientError:
        """The error for a command without handler (unknown, or TLS still required)."""
        text = name.decode("latin-1")
        if self._tls_pending(client):
            return fatal("E_INVALID", f"cannot {text} in current state (TLS required)")
        return fatal("E_INVALID", "invalid command " + text)

    def _cleanup(self, client: ClientV2) -> None:
        logger.info("PROTOCOL(V2): [%s] exiting ioloop", client)
        channel = client.channel
        if channel is not None:
            channel.remove_client(client, trio.current_time())
        client.state = State.DISCONNECTED
        self.nsqd.remove_client(client)

    # ------------------------------------------------------------------ commands
    def sub(self, client: ClientV2, cmd: Any) -> bytes | None:
        if client.state != State.INIT:
            raise fatal("E_INVALID", "cannot SUB in current state")
        if client.heartbeat_interval <= 0:
            raise fatal("E_INVALID", "cannot SUB with heartbeats disabled")
        params = cmd.params
        if len(params) < 2:
            raise fatal("E_INVALID", "SUB insufficient number of parameters")
        topic_name = params[0].decode("latin-1")
        if not is_valid_topic_name(topic_name):
            raise fatal("E_BAD_TOPIC", f"SUB topic name {go_quote(topic_name)} is not valid")
        channel_name = params[1].decode("latin-1")
        if not is_valid_channel_name(channel_name):
            raise fatal("E_BAD_CHANNEL", f"SUB channel name {go_quote(channel_name)} is not valid")
        if self.nsqd.options.auth_http_addresses:
            self._check_auth(client, "SUB", topic_name, channel_name)
        try:
            topic = self.nsqd.get_topic(topic_name)
            channel = topic.get_channel(channel_name)
            channel.add_client(client, self.nsqd.options.max_channel_consumers)
        except (ChannelError, TopicError) as exc:
            raise FatalClientError("E_SUB_FAILED", f"SUB failed {exc}", exc)
        client.state = State.SUBSCRIBED
        client.channel = channel
        return OK

    def rdy(self, client: ClientV2, cmd: Any) -> bytes | None:
        if client.state == State.CLOSING:
            logger.info("PROTOCOL(V2): [%s] ignoring RDY after CLS in state ClientStateV2Closing",
                        client)
            return None
        if client.state != State.SUBSCRIBED:
            raise fatal("E_INVALID", "cannot RDY in current state")
        count = 1
        if cmd.params:
            parsed = base10(cmd.params[0])
            if parsed is None:
                raise fatal("E_INVALID",
                             f"RDY could not parse count {cmd.params[0].decode('latin-1')}")
            count = parsed
        max_rdy = self.nsqd.options.max_rdy_count
        if count > max_rdy:
            raise fatal("E_INVALID", f"RDY count {count} out of range 0-{max_rdy}")
        client.ready_count = count
        client.needs_fill = True
        return None

    @staticmethod
    def _may_ack(client: ClientV2) -> bool:
        return client.state == State.SUBSCRIBED or client.state == State.CLOSING

    def _check_ack_state(self, client: ClientV2, name: str) -> None:
        if not self._may_ack(client):
            raise fatal("E_INVALID", f"cannot {name} in current state")

    def fin(self, client: ClientV2, cmd: Any) -> bytes | None:
        self._check_ack_state(client, "FIN")
        if not cmd.params:
            raise fatal("E_INVALID", "FIN insufficient number of params")
        msg_id = msg_id_param(cmd.params[0])
        try:
            client.channel.finish(client, msg_id)
        except ChannelError as exc:
            raise _fin_failed(msg_id, exc)
        client.finish_count += 1
        client.needs_fill = True
        return None

    def fin_run(self, client: ClientV2, commands: list[Command], start: int) -> int:
        """FIN ``commands[start:]`` up to the first that is not a well-formed FIN.

        Returns how many were handled (0: ``commands[start]`` runs alone, as when the
        client may not FIN at all). An ID not in flight gets its E_FIN_FAILED in turn.
        """
        if not self._may_ack(client):
            return 0
        finish = client.channel.finish
        done = 0
        i = start
        end = len(commands)
        while i < end:
            cmd = commands[i]
            params = cmd.params
            if cmd.name != b"FIN" or not params or len(params[0]) != 16:
                break
            i += 1
            try:
                finish(client, params[0])
            except ChannelError as exc:
                self._report(client, _fin_failed(params[0], exc))
                continue
            done += 1
        if done:
            client.finish_count += done
            client.needs_fill = True
        return i - start

    def req(self, client: ClientV2, cmd: Any) -> bytes | None:
        self._check_ack_state(client, "REQ")
        params = cmd.params
        if len(params) < 2:
            raise fatal("E_INVALID", "REQ insufficient number of params")
        msg_id = msg_id_param(params[0])
        timeout_ms = base10(params[1])
        if timeout_ms is None:
            raise fatal("E_INVALID", f"REQ could not parse timeout {params[1].decode('latin-1')}")
        max_ms = int(self.nsqd.options.max_req_timeout * 1000)
        if timeout_ms > max_ms:
            logger.info("PROTOCOL(V2): [%s] REQ timeout %dms out of range 0-%dms. Setting to %dms",
                        client, timeout_ms, max_ms, max_ms)
            timeout_ms = max_ms
        try:
            client.channel.requeue(client, msg_id, timeout_ms / 1000, trio.current_time())
        except ChannelError as exc:
            raise ClientError("E_REQ_FAILED", f"REQ {msg_id.decode('latin-1')} failed {exc}", exc)
        client.requeue_count += 1
        client.needs_fill = True
        return None

    def touch(self, client: ClientV2, cmd: Any) -> bytes | None:
        self._check_ack_state(client, "TOUCH")
        if not cmd.params:
            raise fatal("E_INVALID", "TOUCH insufficient number of params")
        msg_id = msg_id_param(cmd.params[0])
        try:
            client.channel.touch(client, msg_id, trio.current_time())
        except ChannelError as exc:
            raise ClientError("E_TOUCH_FAILED",
                              f"TOUCH {msg_id.decode('latin-1')} failed {exc}", exc)
        return None

    def cls(self, client: ClientV2, cmd: Any) -> bytes | None:
        if client.state != State.SUBSCRIBED:
            raise fatal("E_INVALID", "cannot CLS in current state")
        client.start_close()
        return CLOSE_WAIT

    def nop(self, client: ClientV2, cmd: Any) -> bytes | None:
        return None

