"""Protocol V2's publishing commands: PUB, MPUB, DPUB — one by one, or as a run.

A publisher that pipelines (go-nsq's async publish, our Producer, the benchmarks)
sends many PUBs or DPUBs to one topic in one write. :func:`publish_run`
takes such a run as one publish: the topic checked and looked up once, IDs and clocks
taken once, one store call per channel, one frame holding every OK (one write per
received buffer, not one per command).
It stops before the first command that would fail, which then runs alone and gets
exactly the error NSQ gives it, after the commands before it were published.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from client.protocol import (
    OK,
    Command,
    MPUBError,
    encode_response,
    is_valid_topic_name,
    parse_mpub_body,
)

from .backend import BackendError
from .client_v2 import ClientV2
from .errors import (
    ClientError,
    TopicError,
    bad_topic,
    command_failed,
    fatal,
    insufficient_params,
    invalid_message_size,
    message_too_big,
    not_a_number,
    out_of_range,
)
from .protocol_session import auth_expired, authorization_error, when_authorized
from .protocol_util import Outcome, Reply, base10, body_error

if TYPE_CHECKING:
    from .nsqd import NSQD

__all__ = ["check_dpub", "check_mpub", "check_pub", "publish_run", "run_mpub", "run_pub"]

_OK_FRAME = encode_response(OK)


def _topic_error(cmd: Command, nparams: int) -> ClientError | None:
    if len(cmd.params) < nparams:
        return insufficient_params(cmd.name)
    topic_name = cmd.params[0].decode("latin-1")
    if not is_valid_topic_name(topic_name):
        return bad_topic(cmd.name, topic_name)
    return None


def _message_error(nsqd: NSQD, cmd: Command) -> ClientError | None:
    """PUB/DPUB's message size (None also while the body has not arrived)."""
    body = cmd.body
    size = len(body) if body is not None else cmd.bad_body_size
    if size is None:
        return None
    max_size = nsqd.options.max_msg_size
    if size <= 0:
        return invalid_message_size(cmd.name, size)
    if size > max_size:
        return message_too_big(cmd.name, size, max_size)
    return None


def _auth_error(nsqd: NSQD, client: ClientV2, cmd: Command) -> ClientError | None:
    return authorization_error(nsqd, client, cmd.name, cmd.params[0].decode("latin-1"), "")


def _max_delay_ms(nsqd: NSQD) -> int:
    return int(nsqd.options.max_req_timeout * 1000)


# --------------------------------------------------------------------------- PUB
def check_pub(nsqd: NSQD, client: ClientV2, cmd: Command) -> ClientError | None:
    err = _topic_error(cmd, 1) or _message_error(nsqd, cmd)
    if err is not None or cmd.body is None:  # auth is checked once the body is here
        return err
    return _auth_error(nsqd, client, cmd)


def run_pub(nsqd: NSQD, client: ClientV2, cmd: Command) -> Outcome:
    """PUB, and DPUB (checked by :func:`check_dpub`)."""
    topic_name = cmd.params[0].decode("latin-1")
    return when_authorized(nsqd, client, cmd.name, topic_name, "",
                           lambda: _publish(nsqd, client, cmd, topic_name))


def _publish(nsqd: NSQD, client: ClientV2, cmd: Command, topic_name: str) -> Reply:
    assert cmd.body is not None
    try:
        if cmd.name == b"DPUB":
            nsqd.publish_deferred(topic_name, cmd.body, int(cmd.params[1]) / 1000)
        else:
            nsqd.publish(topic_name, [cmd.body])
    except (TopicError, BackendError) as exc:
        return command_failed(cmd.name, exc)
    client.published(topic_name, 1)
    return OK


# --------------------------------------------------------------------------- MPUB
def check_mpub(nsqd: NSQD, client: ClientV2, cmd: Command) -> ClientError | None:
    err = _topic_error(cmd, 1) or _auth_error(nsqd, client, cmd)
    if err is not None or auth_expired(nsqd, client):  # the body: after the refresh
        return err
    return body_error(cmd, nsqd.options.max_body_size)


def run_mpub(nsqd: NSQD, client: ClientV2, cmd: Command) -> Outcome:
    topic_name = cmd.params[0].decode("latin-1")
    # with expired authorizations the check stopped before the body: done after the refresh
    return when_authorized(nsqd, client, cmd.name, topic_name, "",
                           lambda: body_error(cmd, nsqd.options.max_body_size)
                           or _publish_many(nsqd, client, cmd, topic_name))


def _publish_many(nsqd: NSQD, client: ClientV2, cmd: Command, topic_name: str) -> Reply:
    opts = nsqd.options
    assert cmd.body is not None
    try:
        bodies = parse_mpub_body(cmd.body, opts.max_msg_size, opts.max_body_size)
    except MPUBError as exc:
        return fatal(exc.code, str(exc))
    try:
        nsqd.publish(topic_name, bodies)
    except (TopicError, BackendError) as exc:
        return command_failed(cmd.name, exc)
    client.published(topic_name, len(bodies))
    return OK


# --------------------------------------------------------------------------- DPUB
def check_dpub(nsqd: NSQD, client: ClientV2, cmd: Command) -> ClientError | None:
    err = _topic_error(cmd, 2)
    if err is not None:
        return err
    timeout_ms = base10(cmd.params[1])
    if timeout_ms is None:
        return not_a_number(cmd.name, "timeout", cmd.params[1])
    max_ms = _max_delay_ms(nsqd)
    if timeout_ms > max_ms:
        return out_of_range(cmd.name, "timeout", timeout_ms, max_ms)
    err = _message_error(nsqd, cmd)
    if err is not None or cmd.body is None:  # auth is checked once the body is here
        return err
    return _auth_error(nsqd, client, cmd)


# --------------------------------------------------------------------------- runs
def publish_run(nsqd: NSQD, client: ClientV2, commands: list[Command],
                start: int) -> tuple[int, ClientError | None]:
    """Publish ``commands[start:]`` that are the same command to the same topic at once.

    Returns how many commands were taken (0 when fewer than two qualify: the caller
    then runs ``commands[start]`` alone), and the error to send instead of their OKs
    when the store refused them (E_PUB_FAILED / E_DPUB_FAILED). With auth enabled
    every command runs alone.
    """
    opts = nsqd.options
    first = commands[start]
    name = first.name
    deferred = name == b"DPUB"
    params = first.params
    if opts.auth_http_addresses or len(params) < (2 if deferred else 1):
        return 0, None
    topic_param = params[0]
    topic_name = topic_param.decode("latin-1")
    if topic_name not in nsqd.topics and not is_valid_topic_name(topic_name):
        return 0, None
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
        return 0, None
    try:
        if deferred:
            nsqd.publish_deferred_many(topic_name, bodies, delays)
        else:
            nsqd.publish(topic_name, bodies)
    except (TopicError, BackendError) as exc:
        return count, command_failed(name, exc)
    client.published(topic_name, count)
    client.send(_OK_FRAME * count)
    return count, None
