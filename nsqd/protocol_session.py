"""Protocol V2's session commands: IDENTIFY (feature negotiation) and AUTH, and the
auth checks other commands make.

IDENTIFY's checks, texts and response follow nsqd 1.3's ``protocol_v2.go`` and
``client_v2.go``; AUTH asks the auth server (see :mod:`nsqd.auth`) through the command
loop, which awaits it in order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from client.compression import SNAPPY_AVAILABLE
from client.protocol import OK, Command
from internal.gojson import go_json
from internal.version import NSQ_VERSION

from .auth import AuthError, AuthState, query_any_authd
from .client_v2 import ClientV2
from .errors import (
    ClientError,
    already_authed,
    auth_disabled,
    auth_failed,
    auth_first,
    bad_identify,
    bad_json,
    both_compressions,
    invalid_param_count,
    no_authorizations,
    unauthorized,
)
from .identify import IdentifyData
from .protocol_util import AwaitIO, Outcome, Reply, StartUpgrade, body_error
from .transport import UpgradePlan

if TYPE_CHECKING:
    from .nsqd import NSQD

__all__ = ["auth_expired", "authorization_error", "check_auth_command", "check_identify",
           "run_auth_command", "run_identify", "when_authorized"]

logger = logging.getLogger(__name__)


def _no_constant(name: str) -> NoReturn:
    """NaN and Infinity are not JSON (Go's decoder refuses them too)."""
    raise ValueError(f"invalid JSON constant {name}")


# --------------------------------------------------------------------------- IDENTIFY
def check_identify(nsqd: NSQD, client: ClientV2, cmd: Command) -> ClientError | None:
    return body_error(cmd, nsqd.options.max_body_size)


def run_identify(nsqd: NSQD, client: ClientV2, cmd: Command) -> Outcome:
    opts = nsqd.options
    assert cmd.body is not None
    try:
        data = json.loads(cmd.body, parse_constant=_no_constant)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        ident = IdentifyData(data)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # RecursionError: JSON nested deeper than the parser goes;
        # OverflowError: a number beyond float range given for an integer field
        return bad_json(cmd.name, exc)
    logger.debug("PROTOCOL(V2): [%s] %r", client, data)
    reason = _identify_refusal(nsqd, ident)
    if reason is not None:
        return bad_identify(reason)
    _apply_identify(nsqd, client, ident)
    if not ident.feature_negotiation:
        return OK
    tls_v1 = nsqd.tls_context is not None and ident.tls_v1
    deflate = opts.deflate and ident.deflate
    deflate_level = 6
    if deflate and ident.deflate_level > 0:
        deflate_level = ident.deflate_level
    deflate_level = min(deflate_level, opts.max_deflate_level)
    snappy = opts.snappy and ident.snappy and SNAPPY_AVAILABLE
    if deflate and snappy:
        return both_compressions()
    response = {
        "max_rdy_count": opts.max_rdy_count,
        "version": NSQ_VERSION,
        "max_msg_timeout": int(opts.max_msg_timeout * 1000),
        "msg_timeout": int(client.msg_timeout * 1000),
        "tls_v1": tls_v1,
        "deflate": deflate,
        "deflate_level": deflate_level,
        "max_deflate_level": opts.max_deflate_level,
        "snappy": snappy,
        "sample_rate": client.sample_rate,
        "auth_required": bool(opts.auth_http_addresses),
        "output_buffer_size": client.output_buffer_size,
        "output_buffer_timeout": int(client.output_buffer_timeout * 1000),
    }
    encoded = go_json(response)
    if tls_v1 or snappy or deflate:
        return StartUpgrade(UpgradePlan(encoded, tls_v1, snappy, deflate_level if deflate else 0))
    return encoded


def _identify_refusal(nsqd: NSQD, ident: IdentifyData) -> str | None:
    """The first field out of range, in NSQ's order (``heartbeat interval (5) is invalid``).

    0 keeps the default everywhere; -1 turns heartbeats or output buffering off.
    """
    opts = nsqd.options
    fields = (
        (ident.heartbeat_interval, 1000, opts.max_heartbeat_interval * 1000, True,
         "heartbeat interval"),
        (ident.output_buffer_timeout, opts.min_output_buffer_timeout * 1000,
         opts.max_output_buffer_timeout * 1000, True, "output buffer timeout"),
        (ident.output_buffer_size, 64, opts.max_output_buffer_size, True, "output buffer size"),
        (ident.sample_rate, 0, 99, False, "sample rate"),
        (ident.msg_timeout, 1000, opts.max_msg_timeout * 1000, False, "msg timeout"),
    )
    for value, low, high, off_allowed, what in fields:
        if value != 0 and not (off_allowed and value == -1) and not low <= value <= high:
            return f"{what} ({value}) is invalid"
    return None


def _apply_identify(nsqd: NSQD, client: ClientV2, ident: IdentifyData) -> None:
    """Set what IDENTIFY asked for (every field checked by :func:`_identify_refusal`)."""
    client.client_id = ident.client_id
    client.hostname = ident.hostname
    client.user_agent = ident.user_agent
    hb = ident.heartbeat_interval
    if hb:
        client.heartbeat_interval = 0 if hb == -1 else hb / 1000
    client.heartbeat_changed()
    timeout = ident.output_buffer_timeout
    if timeout:
        client.output_buffer_timeout = 0 if timeout == -1 else timeout / 1000
    size = ident.output_buffer_size
    if size == -1:
        client.output_buffer_size = 1
        client.output_buffer_timeout = 0
    elif size:
        client.output_buffer_size = size
    if size or timeout:  # asked for: NSQ's buffering (else every batch goes at once)
        client.buffer_output(client.output_buffer_size, client.output_buffer_timeout)
    client.sample_rate = ident.sample_rate
    if ident.msg_timeout:
        client.msg_timeout = ident.msg_timeout / 1000


# --------------------------------------------------------------------------- AUTH
def check_auth_command(nsqd: NSQD, client: ClientV2, cmd: Command) -> ClientError | None:
    if cmd.params:
        return invalid_param_count(cmd.name)
    err = body_error(cmd, nsqd.options.max_body_size)
    if err is not None or cmd.body is None:  # the rest is checked once the body is here
        return err
    if client.auth_state is not None and client.auth_state.authorizations:
        return already_authed()
    if not nsqd.options.auth_http_addresses:
        return auth_disabled()
    return None


def run_auth_command(nsqd: NSQD, client: ClientV2, cmd: Command) -> Outcome:
    assert cmd.body is not None
    secret = cmd.body.decode("utf-8", "replace")

    async def authenticate() -> Reply:
        client.auth_secret = secret
        state = await _query_auth(nsqd, client)
        if isinstance(state, ClientError):
            return state
        if not state.authorizations:
            return no_authorizations()
        return go_json({"identity": state.identity, "identity_url": state.identity_url,
                        "permission_count": len(state.authorizations)})

    return AwaitIO(authenticate)


async def _query_auth(nsqd: NSQD, client: ClientV2) -> AuthState | ClientError:
    """Ask the auth server about ``client`` and keep the reply on it (or E_AUTH_FAILED)."""
    opts = nsqd.options
    info = client.tls_info
    try:
        state = await query_any_authd(
            opts.auth_http_addresses,
            remote_ip=client.remote_address.rsplit(":", 1)[0].strip("[]"),
            tls=client.tls, common_name=info.common_name if info is not None else "",
            secret=client.auth_secret, ssl_context=nsqd.client_tls_context,
            connect_timeout=opts.http_client_connect_timeout,
            request_timeout=opts.http_client_request_timeout,
            method=opts.auth_http_request_method)
    except AuthError as exc:
        # errors contacting the auth server are not leaked to untrusted clients
        logger.warning("PROTOCOL(V2): [%s] AUTH failed %s", client, exc)
        return auth_failed(exc)
    client.auth_state = state
    client.authed = bool(state.authorizations)
    client.auth_identity = state.identity
    client.auth_identity_url = state.identity_url
    return state


# --------------------------------------------------------------------------- others' auth
def authorization_error(nsqd: NSQD, client: ClientV2, name: bytes, topic: str,
               channel: str) -> ClientError | None:
    """NSQ's CheckAuth as far as it needs no I/O: with auth enabled, the client must
    have authorizations granting ``topic``/``channel``. Expired ones pass here: the
    command's run refreshes them first (:func:`when_authorized`)."""
    if not nsqd.options.auth_http_addresses:
        return None
    state = client.auth_state
    if state is None or not state.authorizations:
        return auth_first(name)
    if state.is_expired() or state.is_allowed(topic, channel):
        return None
    return unauthorized(name, topic, channel)


def auth_expired(nsqd: NSQD, client: ClientV2) -> bool:
    """Whether the command must ask the auth server again before it runs."""
    state = client.auth_state
    return bool(nsqd.options.auth_http_addresses) and state is not None and state.is_expired()


def when_authorized(nsqd: NSQD, client: ClientV2, name: bytes, topic: str, channel: str,
                    then: Callable[[], Reply]) -> Outcome:
    """``then()`` does the command: now, or once the auth server was asked again about
    expired authorizations (and still grants ``topic``/``channel``)."""
    if not auth_expired(nsqd, client):
        return then()

    async def refresh() -> Reply:
        fresh = await _query_auth(nsqd, client)
        if isinstance(fresh, ClientError):
            return fresh
        if not fresh.is_allowed(topic, channel):
            return unauthorized(name, topic, channel)
        return then()

    return AwaitIO(refresh)
