"""Admin action notifications (NSQ's ``nsqadmin/notify.go``).

With ``--notification-http-endpoint`` set, every admin action (pause, empty, delete,
tombstone, create...) is POSTed there as a JSON ``AdminAction``. Sending never delays
the action: events go through a bounded queue to one sender task; when the queue is
full (the endpoint is slow or down) the event is dropped and logged.
"""

from __future__ import annotations

import base64
import binascii
import logging
import socket
import time
from typing import Any

import httpx
import trio

from internal.gojson import go_json
from internal.http import Request

__all__ = ["Notifier", "admin_action"]

logger = logging.getLogger(__name__)

#: events waiting to be sent before new ones are dropped
QUEUE_SIZE = 256


def _basic_auth_user(req: Request) -> str:
    scheme, _, value = req.headers.get("authorization", "").partition(" ")
    if scheme != "Basic" or not value:
        return ""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""
    user, sep, _ = decoded.partition(":")
    return user if sep else ""


def admin_action(action: str, topic: str, channel: str, node: str, req: Request) -> dict[str, Any]:
    """Build Go's ``AdminAction`` JSON object for a request (``omitempty`` fields left
    out when empty)."""
    scheme = "https" if req.headers.get("x-scheme") == "https" else "http"
    url = f"{scheme}://{req.headers.get('host', '')}{req.path}"
    if req.query_string:
        url += "?" + req.query_string
    doc: dict[str, Any] = {"action": action, "topic": topic}
    if channel:
        doc["channel"] = channel
    if node:
        doc["node"] = node
    doc["timestamp"] = int(time.time())
    user = _basic_auth_user(req)
    if user:
        doc["user"] = user
    doc["remote_ip"] = req.remote_addr
    doc["user_agent"] = req.headers.get("user-agent", "")
    doc["url"] = url
    doc["via"] = socket.gethostname()
    return doc


class Notifier:
    """Queue and POST admin actions to one endpoint.

    Args:
        client: HTTP client used for the POSTs (its timeouts apply).
        endpoint: Fully qualified URL; empty disables notifications.
    """

    def __init__(self, client: httpx.AsyncClient, endpoint: str) -> None:
        self.client = client
        self.endpoint = endpoint
        self._send, self._recv = trio.open_memory_channel[dict[str, Any]](QUEUE_SIZE)
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def notify(self, action: str, topic: str, channel: str, node: str, req: Request) -> None:
        """Queue a notification for ``action`` (never blocks)."""
        if not self.endpoint:
            return
        try:
            self._send.send_nowait(admin_action(action, topic, channel, node, req))
        except trio.WouldBlock:
            self.dropped += 1
            logger.error("notification queue full, dropping %s of %s", action, topic)

    async def run(self) -> None:
        """Send queued notifications one at a time until cancelled."""
        async for event in self._recv:
            logger.info("POSTing notification to %s", self.endpoint)
            try:
                resp = await self.client.post(self.endpoint, content=go_json(event),
                                              headers={"Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                self.failed += 1
                logger.error("failed to POST notification - %s", exc)
                continue
            if resp.status_code >= 300:
                self.failed += 1
                logger.error("failed to POST notification - got response %d", resp.status_code)
            else:
                self.sent += 1
