"""Protocol V2's session commands: IDENTIFY (feature negotiation) and AUTH.

IDENTIFY's checks, texts and response follow nsqd 1.3's ``protocol_v2.go`` and
``client_v2.go``; AUTH asks the auth server (see :mod:`nsqd.auth`) through the command
loop, which awaits it in order.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from client.compression import SNAPPY_AVAILABLE
from client.protocol import OK
from internal.gojson import go_json
from internal.version import NSQ_VERSION

from .auth import AuthError, AuthState, query_any_authd
from .client_v2 import ClientV2, State
from .errors import FatalClientError
from .identify import IdentifyData
from .protocol_util import AwaitIO, StartUpgrade, fatal, sized_body, unauthorized
from .transport import UpgradePlan

if TYPE_CHECKING:
    from .nsqd import NSQD

__all__ = ["SessionCommands"]

logger = logging.getLogger(__name__)


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (Go's decoder refuses them too)."""
    raise ValueError(f"invalid JSON constant {name}")


def _given(value: int, low: float, high: float, what: str) -> bool:
    """Whether IDENTIFY set ``value`` (0 keeps the default).

    Raises:
        ValueError: NSQ's ``<what> (<value>) is invalid`` outside ``[low, high]``.
    """
    if value == 0:
        return False
    if low <= value <= high:
        return True
    raise ValueError(f"{what} ({value}) is invalid")


class SessionCommands:
    """The IDENTIFY and AUTH handlers of :class:`nsqd.protocol_v2.ProtocolV2`."""

    nsqd: NSQD

    def identify(self, client: ClientV2, cmd: Any) -> bytes | None:
        opts = self.nsqd.options
        if client.state != State.INIT:
            raise fatal("E_INVALID", "cannot IDENTIFY in current state")
        body = sized_body(cmd, "IDENTIFY", opts.max_body_size)
        try:
            data = json.loads(body, parse_constant=_no_constant)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            ident = IdentifyData(data)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # RecursionError: JSON nested deeper than the parser goes;
            # OverflowError: a number beyond float range given for an integer field
            raise FatalClientError("E_BAD_BODY", "IDENTIFY failed to decode JSON body", exc)
        logger.debug("PROTOCOL(V2): [%s] %r", client, data)
        try:
            self._apply_identify(client, ident)
        except ValueError as exc:
            raise FatalClientError("E_BAD_BODY", f"IDENTIFY {exc}")
        if not ident.feature_negotiation:
            return OK
        tls_v1 = self.nsqd.tls_context is not None and ident.tls_v1
        deflate = opts.deflate and ident.deflate
        deflate_level = 6
        if deflate and ident.deflate_level > 0:
            deflate_level = ident.deflate_level
        deflate_level = min(deflate_level, opts.max_deflate_level)
        snappy = opts.snappy and ident.snappy and SNAPPY_AVAILABLE
        if deflate and snappy:
            raise fatal("E_IDENTIFY_FAILED", "cannot enable both deflate and snappy compression")
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
            raise StartUpgrade(UpgradePlan(encoded, tls_v1, snappy, deflate_level if deflate else 0))
        return encoded

    def _apply_identify(self, client: ClientV2, ident: IdentifyData) -> None:
        opts = self.nsqd.options
        client.client_id = ident.client_id
        client.hostname = ident.hostname
        client.user_agent = ident.user_agent
        hb = ident.heartbeat_interval
        if hb == -1:
            client.heartbeat_interval = 0
        elif _given(hb, 1000, opts.max_heartbeat_interval * 1000, "heartbeat interval"):
            client.heartbeat_interval = hb / 1000
        client.heartbeat_changed()
        timeout = ident.output_buffer_timeout
        if timeout == -1:
            client.output_buffer_timeout = 0
        elif _given(timeout, opts.min_output_buffer_timeout * 1000,
                    opts.max_output_buffer_timeout * 1000, "output buffer timeout"):
            client.output_buffer_timeout = timeout / 1000
        size = ident.output_buffer_size
        if size == -1:
            client.output_buffer_size = 1
            client.output_buffer_timeout = 0
        elif _given(size, 64, opts.max_output_buffer_size, "output buffer size"):
            client.output_buffer_size = size
        if size or timeout:  # asked for: NSQ's buffering (else every batch goes at once)
            client.buffer_output(client.output_buffer_size, client.output_buffer_timeout)
        if not 0 <= ident.sample_rate <= 99:
            raise ValueError(f"sample rate ({ident.sample_rate}) is invalid")
        client.sample_rate = ident.sample_rate
        mt = ident.msg_timeout
        if _given(mt, 1000, opts.max_msg_timeout * 1000, "msg timeout"):
            client.msg_timeout = mt / 1000

    def auth(self, client: ClientV2, cmd: Any) -> bytes | None:
        opts = self.nsqd.options
        if client.state != State.INIT:
            raise fatal("E_INVALID", "cannot AUTH in current state")
        if cmd.params:
            raise fatal("E_INVALID", "AUTH invalid number of parameters")
        body = sized_body(cmd, "AUTH", opts.max_body_size)
        if client.auth_state is not None and client.auth_state.authorizations:
            raise fatal("E_INVALID", "AUTH already set")
        if not opts.auth_http_addresses:
            raise fatal("E_AUTH_DISABLED", "AUTH disabled")
        secret = body.decode("utf-8", "replace")

        async def authenticate() -> bytes:
            client.auth_secret = secret
            state = await self._query_auth(client)
            if not state.authorizations:
                raise fatal("E_UNAUTHORIZED", "AUTH no authorizations found")
            return go_json({"identity": state.identity, "identity_url": state.identity_url,
                             "permission_count": len(state.authorizations)})

        raise AwaitIO(authenticate, retry=False)

    async def _query_auth(self, client: ClientV2) -> AuthState:
        """Ask the auth server about ``client`` and keep the reply on it.

        Raises:
            FatalClientError: E_AUTH_FAILED (the cause is logged, never sent).
        """
        opts = self.nsqd.options
        info = client.tls_info
        try:
            state = await query_any_authd(
                opts.auth_http_addresses,
                remote_ip=client.remote_address.rsplit(":", 1)[0].strip("[]"),
                tls=client.tls, common_name=info.common_name if info is not None else "",
                secret=client.auth_secret, ssl_context=self.nsqd.client_tls_context,
                connect_timeout=opts.http_client_connect_timeout,
                request_timeout=opts.http_client_request_timeout,
                method=opts.auth_http_request_method)
        except AuthError as exc:
            # errors contacting the auth server are not leaked to untrusted clients
            logger.warning("PROTOCOL(V2): [%s] AUTH failed %s", client, exc)
            raise FatalClientError("E_AUTH_FAILED", "AUTH failed", exc) from None
        client.auth_state = state
        client.authed = bool(state.authorizations)
        client.auth_identity = state.identity
        client.auth_identity_url = state.identity_url
        return state

    def _check_auth(self, client: ClientV2, name: str, topic: str, channel: str) -> None:
        """NSQ's CheckAuth (only called when auth is enabled)."""
        state = client.auth_state
        if state is None or not state.authorizations:
            raise fatal("E_AUTH_FIRST", f"AUTH required before {name}")
        if state.is_expired():
            async def refresh() -> None:
                fresh = await self._query_auth(client)
                if not fresh.is_allowed(topic, channel):
                    raise unauthorized(name, topic, channel)

            raise AwaitIO(refresh, retry=True)
        if not state.is_allowed(topic, channel):
            raise unauthorized(name, topic, channel)
