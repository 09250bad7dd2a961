"""nsqd's error types: what goes on the wire (code + description) and what stays in logs."""

from __future__ import annotations

import json

__all__ = ["ChannelError", "ClientError", "FatalClientError", "TopicError"]


class ClientError(Exception):
    """An error answered with an error frame ``<code> <desc>``; the connection stays open."""

    def __init__(self, code: str, desc: str, parent: BaseException | None = None) -> None:
        super().__init__(f"{code} {desc}")
        self.code = code
        self.desc = desc
        self.parent = parent

    def wire(self) -> bytes:
        """The error frame's data."""
        return f"{self.code} {self.desc}".encode()


class FatalClientError(ClientError):
    """An error after which nsqd closes the connection."""


class ChannelError(Exception):
    """A channel operation refused (NSQ's ``ID not in flight``, ``exiting``...)."""


class TopicError(Exception):
    """A topic operation refused (``channel does not exist``, ``exiting``...)."""


# --------------------------------------------------------------------------- texts
# Every error frame protocol V2 sends is built here, with nsqd 1.3's code and words.
# ``name`` is the command's name as the client sent it (``b"PUB"``).

#: the whole error frame for a connection that does not open with ``"  V2"``
BAD_PROTOCOL = b"E_BAD_PROTOCOL"


def _text(name: bytes) -> str:
    return name.decode("latin-1")


def go_quote(s: str) -> str:
    """Go's %q for the ASCII names we quote."""
    return json.dumps(s)


def fatal(code: str, desc: str, parent: BaseException | None = None) -> FatalClientError:
    """An error that closes the connection after it is sent."""
    return FatalClientError(code, desc, parent)


def invalid_command(name: bytes) -> FatalClientError:
    return fatal("E_INVALID", f"invalid command {_text(name)}")


def invalid_state(name: bytes) -> FatalClientError:
    return fatal("E_INVALID", f"cannot {_text(name)} in current state")


def tls_required(name: bytes) -> FatalClientError:
    return fatal("E_INVALID", f"cannot {_text(name)} in current state (TLS required)")


def internal_error(name: bytes, exc: BaseException) -> FatalClientError:
    """A command's handler failed unexpectedly (a bug): the client is told no more."""
    return fatal("E_INVALID", f"{_text(name)} failed", exc)


def insufficient_params(name: bytes, noun: str = "parameters") -> FatalClientError:
    """SUB/PUB/MPUB/DPUB say "parameters", FIN/REQ/TOUCH "params" (as NSQ)."""
    return fatal("E_INVALID", f"{_text(name)} insufficient number of {noun}")


def invalid_param_count(name: bytes) -> FatalClientError:
    return fatal("E_INVALID", f"{_text(name)} invalid number of parameters")


def invalid_msg_id() -> FatalClientError:
    return fatal("E_INVALID", "invalid message ID")


def not_a_number(name: bytes, what: str, param: bytes) -> FatalClientError:
    return fatal("E_INVALID", f"{_text(name)} could not parse {what} {_text(param)}")


def out_of_range(name: bytes, what: str, value: int, high: int) -> FatalClientError:
    return fatal("E_INVALID", f"{_text(name)} {what} {value} out of range 0-{high}")


def heartbeats_disabled() -> FatalClientError:
    return fatal("E_INVALID", "cannot SUB with heartbeats disabled")


def already_authed() -> FatalClientError:
    return fatal("E_INVALID", "AUTH already set")


def bad_topic(name: bytes, topic: str) -> FatalClientError:
    return fatal("E_BAD_TOPIC", f"{_text(name)} topic name {go_quote(topic)} is not valid")


def bad_channel(name: bytes, channel: str) -> FatalClientError:
    return fatal("E_BAD_CHANNEL", f"{_text(name)} channel name {go_quote(channel)} is not valid")


def body_too_big(name: bytes, size: int, limit: int) -> FatalClientError:
    return fatal("E_BAD_BODY", f"{_text(name)} body too big {size} > {limit}")


def invalid_body_size(name: bytes, size: int) -> FatalClientError:
    return fatal("E_BAD_BODY", f"{_text(name)} invalid body size {size}")


def body_not_read(name: bytes) -> FatalClientError:
    return fatal("E_BAD_BODY", f"{_text(name)} failed to read body")


def bad_json(name: bytes, exc: BaseException) -> FatalClientError:
    return fatal("E_BAD_BODY", f"{_text(name)} failed to decode JSON body", exc)


def bad_identify(reason: str) -> FatalClientError:
    """An IDENTIFY field out of range (``heartbeat interval (5) is invalid``)."""
    return fatal("E_BAD_BODY", f"IDENTIFY {reason}")


def both_compressions() -> FatalClientError:
    return fatal("E_IDENTIFY_FAILED", "cannot enable both deflate and snappy compression")


def invalid_message_size(name: bytes, size: int) -> FatalClientError:
    return fatal("E_BAD_MESSAGE", f"{_text(name)} invalid message body size {size}")


def message_too_big(name: bytes, size: int, limit: int) -> FatalClientError:
    return fatal("E_BAD_MESSAGE", f"{_text(name)} message too big {size} > {limit}")


def command_failed(name: bytes, exc: BaseException) -> FatalClientError:
    """The store refused a PUB/MPUB/DPUB/SUB: ``E_PUB_FAILED PUB failed <why>``."""
    text = _text(name)
    return fatal(f"E_{text}_FAILED", f"{text} failed {exc}", exc)


def message_failed(name: bytes, msg_id: bytes, exc: BaseException) -> ClientError:
    """FIN/REQ/TOUCH of a message not in flight (not fatal)."""
    text = _text(name)
    return ClientError(f"E_{text}_FAILED", f"{text} {_text(msg_id)} failed {exc}", exc)


def auth_disabled() -> FatalClientError:
    return fatal("E_AUTH_DISABLED", "AUTH disabled")


def auth_first(name: bytes) -> FatalClientError:
    return fatal("E_AUTH_FIRST", f"AUTH required before {_text(name)}")


def auth_failed(exc: BaseException) -> FatalClientError:
    """The auth server could not be asked (the cause is logged, never sent)."""
    return fatal("E_AUTH_FAILED", "AUTH failed", exc)


def no_authorizations() -> FatalClientError:
    return fatal("E_UNAUTHORIZED", "AUTH no authorizations found")


def unauthorized(name: bytes, topic: str, channel: str) -> FatalClientError:
    """A command on a topic/channel the secret does not grant."""
    return fatal("E_UNAUTHORIZED",
                 f"AUTH failed for {_text(name)} on {go_quote(topic)} {go_quote(channel)}")
