"""Protocol V2's publishing commands: PUB, MPUB, DPUB — one by one, or as a run.

A publisher that pipelines (go-nsq's async publish, our Producer, the benchmarks)
sends many PUBs or DPUBs to one topic in one write. :meth:`PublishCommands.publish_run`
takes such a run as one publish: the topic checked and looked up once, IDs and clocks
taken once, one store call per channel, one frame holding every OK (one write per
received buffer, not one per command).
It stops before the first command that would fail, which then runs alone and gets
exactly the error NSQ gives it, after the commands before it were published.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from client.protocol import (
    OK,
    MPUBError,
    encode_response,
    is_valid_topic_name,
    parse_mpub_body,
)

from .backend import BackendError
from .errors import FatalClientError, TopicError
from .protocol_util import bad_size, base10, fatal, go_quote, sized_body

if TYPE_CHECKING:
    from client.protocol import Command

    from .client_v2 import ClientV2
    from .nsqd import NSQD

__all__ = ["PublishCommands"]

_OK_FRAME = encode_response(OK)


class PublishCommands:
    """The publishing command handlers of :class:`nsqd.protocol_v2.ProtocolV2`."""

    nsqd: NSQD
    _check_auth: Callable[[ClientV2, str, str, str], None]

    def _topic_param(self, cmd: Any, name: str, nparams: int) -> str:
        if len(cmd.params) < nparams:
            raise fatal("E_INVALID", f"{name} insufficient number of parameters")
        topic_name = cmd.params[0].decode("latin-1")
        if not is_valid_topic_name(topic_name):
            raise fatal("E_BAD_TOPIC", f"{name} topic name {go_quote(topic_name)} is not valid")
        return topic_name

    def _message_body(self, cmd: Any, name: str) -> bytes:
        max_size = self.nsqd.options.max_msg_size
        body = cmd.body
        size = len(body) if body is not None else bad_size(cmd)
        if size <= 0:
            raise fatal("E_BAD_MESSAGE", f"{name} invalid message body size {size}")
        if size > max_size:
            raise fatal("E_BAD_MESSAGE", f"{name} message too big {size} > {max_size}")
        return body

    def pub(self, client: ClientV2, cmd: Any) -> bytes | None:
        topic_name = self._topic_param(cmd, "PUB", 1)
        body = self._message_body(cmd, "PUB")
        if self.nsqd.options.auth_http_addresses:
            self._check_auth(client, "PUB", topic_name, "")
        try:
            self.nsqd.publish(topic_name, [body])
        except (TopicError, BackendError) as exc:
            raise FatalClientError("E_PUB_FAILED", f"PUB failed {exc}", exc)
        client.published(topic_name, 1)
        return OK

    def mpub(self, client: ClientV2, cmd: Any) -> bytes | None:
        opts = self.nsqd.options
        topic_name = self._topic_param(cmd, "MPUB", 1)
        if opts.auth_http_addresses:
            self._check_auth(client, "MPUB", topic_name, "")
        body = sized_body(cmd, "MPUB", opts.max_body_size)
        try:
            bodies = parse_mpub_body(body, opts.max_msg_size, opts.max_body_size)
        except MPUBError as exc:
            raise FatalClientError(exc.code, str(exc))
        try:
            self.nsqd.publish(topic_name, bodies)
        except (TopicError, BackendError) as exc:
            raise FatalClientError("E_MPUB_FAILED", f"MPUB failed {exc}", exc)
        client.published(topic_name, len(bodies))
        return OK

    def dpub(self, client: ClientV2, cmd: Any) -> bytes | None:
        topic_name = self._topic_param(cmd, "DPUB", 2)
        timeout_ms = base10(cmd.params[1])
        if timeout_ms is None:
            raise fatal("E_INVALID",
                        f"DPUB could not parse timeout {cmd.params[1].decode('latin-1')}")
        max_ms = int(self.nsqd.options.max_req_timeout * 1000)
        if timeout_ms > max_ms:
            raise fatal("E_INVALID", f"DPUB timeout {timeout_ms} out of range 0-{max_ms}")
        body = self._message_body(cmd, "DPUB")
        if self.nsqd.options.auth_http_addresses:
            self._check_auth(client, "DPUB", topic_name, "")
        try:
            self.nsqd.publish_deferred(topic_name, body, timeout_ms / 1000)
        except (TopicError, BackendError) as exc:
            raise FatalClientError("E_DPUB_FAILED", f"DPUB failed {exc}", exc)
        client.published(topic_name, 1)
        return OK

    def publish_run(self, client: ClientV2, commands: list[Command], start: int) -> int:
        """Publish ``commands[start:]`` that are the same command to the same topic at once.

        Returns how many commands were published and answered; 0 when fewer than two
        qualify (the caller then runs ``commands[start]`` alone). With auth enabled
        every command is checked alone.

        Raises:
            FatalClientError: E_PUB_FAILED / E_DPUB_FAILED (the store refused them).
        """
        nsqd = self.nsqd
        opts = nsqd.options
        first = commands[start]
        name = first.name
        deferred = name == b"DPUB"
        params = first.params
        if opts.auth_http_addresses or len(params) < (2 if deferred else 1):
            return 0
        topic_param = params[0]
        topic_name = topic_param.decode("latin-1")
        if topic_name not in nsqd.topics and not is_valid_topic_name(topic_name):
            return 0
        max_size = opts.max_msg_size
        max_ms = int(opts.max_req_timeout * 1000)
        bodies: list[bytes] = []
        delays: list[float] = []
        end = len(commands)
        i = start
        while i < end:
            cmd = commands[i]
            params = cmd.params
            body = cmd.body
            if (cmd.name != name or not params or params[0] != topic_param
                    or body is None or not 0 < len(body) <= max_size):
                break
            if deferred:
                ms = base10(params[1]) if len(params) > 1 else None
                if ms is None or ms > max_ms:
                    break
                delays.append(ms / 1000)
            bodies.append(body)
            i += 1
        count = i - start
        if count < 2:
            return 0
        try:
            if deferred:
                nsqd.publish_deferred_many(topic_name, bodies, delays)
            else:
                nsqd.publish(topic_name, bodies)
        except (TopicError, BackendError) as exc:
            what = name.decode()
            raise FatalClientError(f"E_{what}_FAILED", f"{what} failed {exc}", exc)
        client.published(topic_name, count)
        client.send(_OK_FRAME * count)
        return count
