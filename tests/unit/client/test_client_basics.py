"""Errors, config, message helpers and the public API surface."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import subprocess
import sys

import msgpack
import pytest
import trio

from client import errors
from client.config import USER_AGENT, ClientConfig
from client.message import Message, encode_json, encode_msgpack

# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "code,cls,fatal,retriable",
    [
        ("E_INVALID", errors.InvalidError, True, False),
        ("E_BAD_BODY", errors.BadBodyError, True, False),
        ("E_BAD_TOPIC", errors.BadTopicError, True, False),
        ("E_BAD_CHANNEL", errors.BadChannelError, True, False),
        ("E_BAD_MESSAGE", errors.BadMessageError, True, False),
        ("E_PUB_FAILED", errors.PublishFailedError, True, True),
        ("E_MPUB_FAILED", errors.PublishFailedError, True, True),
        ("E_DPUB_FAILED", errors.PublishFailedError, True, True),
        ("E_FIN_FAILED", errors.FinishFailedError, False, False),
        ("E_REQ_FAILED", errors.RequeueFailedError, False, False),
        ("E_TOUCH_FAILED", errors.TouchFailedError, False, False),
        ("E_SUB_FAILED", errors.SubscribeFailedError, True, True),
        ("E_IDENTIFY_FAILED", errors.IdentifyFailedError, True, False),
        ("E_BAD_PROTOCOL", errors.BadProtocolError, True, False),
        ("E_AUTH_ERROR", errors.AuthError, True, False),
        ("E_AUTH_DISABLED", errors.AuthDisabledError, True, False),
        ("E_AUTH_FAILED", errors.AuthFailedError, True, False),
        ("E_AUTH_FIRST", errors.AuthFirstError, True, False),
        ("E_UNAUTHORIZED", errors.UnauthorizedError, True, False),
    ],
)
def test_code_table(code: str, cls: type[errors.ServerError], fatal: bool, retriable: bool) -> None:
    assert errors.for_code(code) is cls
    exc = errors.ServerError.from_frame(f"{code} something went wrong".encode())
    assert type(exc) is cls
    assert (exc.code, exc.desc, str(exc)) == (code, "something went wrong", f"{code} something went wrong")
    assert (exc.fatal, exc.retriable) == (fatal, retriable)


def test_unknown_code_is_plain_server_error() -> None:
    exc = errors.ServerError.from_frame(b"E_NEW_THING")
    assert type(exc) is errors.ServerError and exc.code == "E_NEW_THING" and exc.desc == ""


def test_hierarchy() -> None:
    assert issubclass(errors.NotConnectedError, ConnectionError)
    assert issubclass(errors.NotConnectedError, errors.NSQConnectionError)
    assert issubclass(errors.PublishTimeoutError, TimeoutError)
    assert issubclass(errors.PublishTimeoutError, errors.PublishError)
    assert issubclass(errors.AuthFailedError, errors.AuthError)
    for name in errors.__all__:
        obj = getattr(errors, name)
        if inspect.isclass(obj):
            assert issubclass(obj, errors.NSQError) and issubclass(obj, Exception)
            assert not issubclass(obj, trio.Cancelled)
            assert name in errors.__doc__  # documented in the tree


def test_errors_copy_cleanly() -> None:
    exc = errors.BadTopicError("E_BAD_TOPIC", "nope", status_code=400)
    clone = copy.copy(exc)
    assert (clone.code, clone.desc, clone.status_code, str(clone)) == ("E_BAD_TOPIC", "nope", 400, str(exc))


# ---------------------------------------------------------------------- config


def test_config_defaults_mirror_go_nsq() -> None:
    c = ClientConfig()
    assert (c.dial_timeout, c.read_timeout, c.write_timeout, c.heartbeat_interval) == (1.0, 60.0, 1.0, 30.0)
    assert (c.max_in_flight, c.max_attempts) == (1, 5)
    assert (c.default_requeue_delay, c.max_requeue_delay) == (90.0, 900.0)
    assert (c.max_backoff_duration, c.backoff_multiplier) == (120.0, 1.0)
    assert (c.lookupd_poll_interval, c.lookupd_poll_jitter) == (60.0, 0.3)
    assert (c.low_rdy_idle_timeout, c.low_rdy_timeout, c.rdy_redistribute_interval) == (10.0, 30.0, 5.0)
    assert (c.output_buffer_size, c.output_buffer_timeout) == (16384, 0.25)
    assert c.user_agent == USER_AGENT and USER_AGENT.startswith("trio-nsq/")
    assert c.client_id and c.hostname.startswith(c.client_id)


@pytest.mark.parametrize(
    "field,value",
    [("dial_timeout", 0), ("max_in_flight", -1), ("lookupd_poll_jitter", 1.5), ("sample_rate", 100),
     ("heartbeat_interval", 0), ("backoff_strategy", "linear"), ("max_attempts", 70000), ("msg_timeout", 0)],
)
def test_config_validation(field: str, value: object) -> None:
    with pytest.raises(ValueError):
        ClientConfig(**{field: value})  # type: ignore[arg-type]


def test_config_is_frozen_and_replaceable() -> None:
    c = ClientConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.max_in_flight = 5  # type: ignore[misc]
    assert c.replace(max_in_flight=5).max_in_flight == 5
    with pytest.raises(ValueError):
        c.replace(max_in_flight=-5)


def test_backoff_duration_exponential() -> None:
    c = ClientConfig(backoff_multiplier=0.5)
    assert [c.backoff_duration(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


# ---------------------------------------------------------------------- message


class Recorder:
    """A Responder; ``full`` says whether its write buffer is over the high-water mark."""

    def __init__(self, full: bool = False) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.full = full

    def finish(self, message: Message) -> bool:
        self.calls.append(("fin",))
        return self.full

    def requeue(self, message: Message, delay: float | None, backoff: bool) -> bool:
        self.calls.append(("req", delay, backoff))
        return self.full

    def touch(self, message: Message) -> bool:
        self.calls.append(("touch",))
        return self.full

    async def wait_writable(self) -> None:
        self.calls.append(("wait",))


async def test_message_answers_once() -> None:
    rec = Recorder(full=True)
    msg = Message(b"0" * 16, b"{}", 1, 1, responder=rec)
    assert not msg.has_responded
    await msg.touch()
    await msg.finish()
    assert msg.has_responded
    await msg.finish()
    await msg.requeue()
    await msg.touch()
    assert rec.calls == [("touch",), ("wait",), ("fin",), ("wait",)]


async def test_message_requeue_arguments() -> None:
    rec = Recorder()
    msg = Message(b"0" * 16, b"", 1, 3, responder=rec)
    await msg.requeue(delay=2.5, backoff=False)
    assert rec.calls == [("req", 2.5, False)]  # room in the buffer: no wait


async def test_cancelled_finish_leaves_message_unanswered() -> None:
    rec = Recorder()
    msg = Message(b"0" * 16, b"", 1, 1, responder=rec)
    with trio.CancelScope() as scope:
        scope.cancel()
        await msg.finish()
    assert not msg.has_responded and rec.calls == []


async def test_message_without_responder() -> None:
    msg = Message(b"0" * 16, b"", 1, 1)
    with pytest.raises(RuntimeError):
        await msg.finish()


def test_body_helpers() -> None:
    value = {"a": [1, 2, {"b": None}], "s": "é"}
    assert json.loads(encode_json(value)) == value
    assert b" " not in encode_json(value)
    assert msgpack.unpackb(encode_msgpack(value)) == value
    assert Message(b"0" * 16, encode_json(value), 0, 1).json() == value
    assert Message(b"0" * 16, encode_msgpack(value), 0, 1).msgpack() == value
    assert "attempts=1" in repr(Message(b"0" * 16, b"x", 0, 1))


# ---------------------------------------------------------------------- exports


def test_importing_client_does_not_import_the_queue_framework() -> None:
    code = "import sys, client; print('client.queue' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
