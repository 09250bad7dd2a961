"""Protocol V2's consuming commands: SUB, RDY, FIN, REQ, TOUCH, CLS and NOP.

Checks, texts and order follow nsqd 1.3's ``protocol_v2.go``. A consumer's FINs arrive
many to a read: :func:`fin_run` takes such a run (the reader's ``FIN_RUN``) at once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from client.protocol import (
    CLOSE_WAIT,
    OK,
    Command,
    is_valid_channel_name,
    is_valid_topic_name,
)

from .client_v2 import ClientV2, State
from .errors import (
    ChannelError,
    ClientError,
    TopicError,
    bad_channel,
    bad_topic,
    command_failed,
    heartbeats_disabled,
    insufficient_params,
    message_failed,
    not_a_number,
    out_of_range,
)
from .protocol_session import authorization_error, when_authorized
from .protocol_util import Outcome, Reply, base10, msg_id_error, report

if TYPE_CHECKING:
    from .channel import Channel
    from .nsqd import NSQD

__all__ = ["check_fin", "check_nothing", "check_rdy", "check_req", "check_sub", "fin_run",
           "run_cls", "run_fin", "run_nop", "run_rdy", "run_req", "run_sub", "run_touch"]

logger = logging.getLogger("nsqd.protocol_v2")


def _channel(client: ClientV2) -> Channel:
    """The subscribed client's channel (the command table allows acks only then)."""
    channel = client.channel
    assert channel is not None
    return channel


def check_nothing(nsqd: NSQD, client: ClientV2, cmd: Command) -> ClientError | None:
    """For commands whose only rule is the state they are allowed in."""
    return None


# --------------------------------------------------------------------------- SUB
def check_sub(nsqd: NSQD, client: ClientV2, cmd: Command) -> ClientError | None:
    if client.heartbeat_interval <= 0:
        return heartbeats_disabled()
    params = cmd.params
    if len(params) < 2:
        return insufficient_params(cmd.name)
    topic_name = params[0].decode("latin-1")
    if not is_valid_topic_name(topic_name):
        return bad_topic(cmd.name, topic_name)
    channel_name = params[1].decode("latin-1")
    if not is_valid_channel_name(channel_name):
        return bad_channel(cmd.name, channel_name)
    return authorization_error(nsqd, client, cmd.name, topic_name, channel_name)


def run_sub(nsqd: NSQD, client: ClientV2, cmd: Command) -> Outcome:
    topic_name = cmd.params[0].decode("latin-1")
    channel_name = cmd.params[1].decode("latin-1")
    return when_authorized(nsqd, client, cmd.name, topic_name, channel_name,
                           lambda: _subscribe(nsqd, client, cmd, topic_name, channel_name))


def _subscribe(nsqd: NSQD, client: ClientV2, cmd: Command, topic_name: str,
               channel_name: str) -> Reply:
    try:
        topic = nsqd.get_topic(topic_name)
        channel = topic.get_channel(channel_name)
        channel.add_client(client, nsqd.options.max_channel_consumers)
    except (ChannelError, TopicError) as exc:
        return command_failed(cmd.name, exc)
    client.state = State.SUBSCRIBED
    client.channel = channel
    return OK


# --------------------------------------------------------------------------- RDY
def check_rdy(nsqd: NSQD, client: ClientV2, cmd: Command) -> ClientError | None:
    if client.state == State.CLOSING or not cmd.params:
        return None  # ignored after CLS; no count means 1
    count = base10(cmd.params[0])
    if count is None:
        return not_a_number(cmd.name, "count", cmd.params[0])
    max_rdy = nsqd.options.max_rdy_count
    if count > max_rdy:
        return out_of_range(cmd.name, "count", count, max_rdy)
    return None


def run_rdy(nsqd: NSQD, client: ClientV2, cmd: Command) -> Outcome:
    if client.state == State.CLOSING:
        logger.info("PROTOCOL(V2): [%s] ignoring RDY after CLS in state ClientStateV2Closing",
                    client)
        return None
    client.ready_count = int(cmd.params[0]) if cmd.params else 1
    client.needs_fill = True
    return None


# --------------------------------------------------------------------------- FIN, REQ, TOUCH
def check_fin(nsqd: NSQD, client: ClientV2, cmd: Command) -> ClientError | None:
    """FIN and TOUCH: one message ID."""
    if not cmd.params:
        return insufficient_params(cmd.name, "params")
    return msg_id_error(cmd.params[0])


def run_fin(nsqd: NSQD, client: ClientV2, cmd: Command) -> Outcome:
    msg_id = cmd.params[0]
    try:
        _channel(client).finish(client, msg_id)
    except ChannelError as exc:
        return message_failed(cmd.name, msg_id, exc)
    client.finish_count += 1
    client.needs_fill = True
    return None


def fin_run(nsqd: NSQD, client: ClientV2, msg_ids: list[bytes]) -> bool:
    """FIN each of ``msg_ids`` (well-formed IDs of consecutive FINs), in turn: one not
    in flight gets its E_FIN_FAILED in its place.

    Returns False, having done nothing, when the client may not FIN (the FINs then
    run one by one for their errors).
    """
    if client.state != State.SUBSCRIBED and client.state != State.CLOSING:
        return False
    failed = _channel(client).finish_many(client, msg_ids)
    done = len(msg_ids)
    if failed is not None:
        for msg_id, exc in zip(msg_ids, failed, strict=True):
            if exc is not None:
                done -= 1
                report(client, message_failed(b"FIN", msg_id, exc))
    if done:
        client.finish_count += done
        client.needs_fill = True
    return True


def check_req(nsqd: NSQD, client: ClientV2, cmd: Command) -> ClientError | None:
    params = cmd.params
    if len(params) < 2:
        return insufficient_params(cmd.name, "params")
    err = msg_id_error(params[0])
    if err is not None:
        return err
    if base10(params[1]) is None:
        return not_a_number(cmd.name, "timeout", params[1])
    return None


def run_req(nsqd: NSQD, client: ClientV2, cmd: Command) -> Outcome:
    msg_id = cmd.params[0]
    timeout_ms = int(cmd.params[1])
    max_ms = int(nsqd.options.max_req_timeout * 1000)
    if timeout_ms > max_ms:
        logger.info("PROTOCOL(V2): [%s] REQ timeout %dms out of range 0-%dms. Setting to %dms",
                    client, timeout_ms, max_ms, max_ms)
        timeout_ms = max_ms
    try:
        _channel(client).requeue(client, msg_id, timeout_ms / 1000, trio.current_time())
    except ChannelError as exc:
        return message_failed(cmd.name, msg_id, exc)
    client.requeue_count += 1
    client.needs_fill = True
    return None


def run_touch(nsqd: NSQD, client: ClientV2, cmd: Command) -> Outcome:
    msg_id = cmd.params[0]
    try:
        _channel(client).touch(client, msg_id, trio.current_time())
    except ChannelError as exc:
        return message_failed(cmd.name, msg_id, exc)
    return None


# --------------------------------------------------------------------------- CLS, NOP
def run_cls(nsqd: NSQD, client: ClientV2, cmd: Command) -> Outcome:
    client.start_close()
    return CLOSE_WAIT


def run_nop(nsqd: NSQD, client: ClientV2, cmd: Command) -> Outcome:
    return None
