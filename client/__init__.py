"""trio-nsq client: publish to and consume from NSQ on Trio.

::

    from client import Consumer, Producer

    async with Producer("127.0.0.1:4150") as producer:
        await producer.publish("events", b"hello")

    async with Consumer("events", "archive", nsqd_tcp_addresses=["127.0.0.1:4150"]) as consumer:
        async for message in consumer:
            await message.finish()

The wire codec is :mod:`client.protocol` (sans-I/O, shared with the daemons).
"""

import importlib
from typing import TYPE_CHECKING, Any

import internal  # noqa: F401  (first: serves the compiled hot modules, see internal/_native.py)

# Names load on first use, so ``import client.protocol`` (the sans-I/O codec the daemons
# share) does not pull in trio, ssl or httpx.
_LAZY = {
    "ClientConfig": "config",
    "Connection": "connection",
    "IdentifyResponse": "handshake",
    "Consumer": "consumer",
    "ConsumerStatistics": "consumer",
    "AuthDisabledError": "errors",
    "AuthError": "errors",
    "AuthFailedError": "errors",
    "AuthFirstError": "errors",
    "BadBodyError": "errors",
    "BadChannelError": "errors",
    "BadMessageError": "errors",
    "BadProtocolError": "errors",
    "BadTopicError": "errors",
    "ConnectionClosedError": "errors",
    "FinishFailedError": "errors",
    "HTTPAPIError": "errors",
    "IdentifyError": "errors",
    "IdentifyFailedError": "errors",
    "InvalidError": "errors",
    "LookupdError": "errors",
    "NotConnectedError": "errors",
    "NSQConnectionError": "errors",
    "NSQError": "errors",
    "PublishError": "errors",
    "PublishFailedError": "errors",
    "PublishTimeoutError": "errors",
    "RequeueFailedError": "errors",
    "ServerError": "errors",
    "SubscribeFailedError": "errors",
    "TouchFailedError": "errors",
    "UnauthorizedError": "errors",
    "HTTPProducer": "http_producer",
    "LookupResult": "lookup",
    "PeerInfo": "lookup",
    "Message": "message",
    "encode_json": "message",
    "encode_msgpack": "message",
    "Producer": "producer",
    "ProducerStatistics": "producer",
}

if TYPE_CHECKING:
    from .config import ClientConfig as ClientConfig
    from .connection import Connection as Connection
    from .consumer import Consumer as Consumer
    from .consumer import ConsumerStatistics as ConsumerStatistics
    from .errors import AuthDisabledError as AuthDisabledError
    from .errors import AuthError as AuthError
    from .errors import AuthFailedError as AuthFailedError
    from .errors import AuthFirstError as AuthFirstError
    from .errors import BadBodyError as BadBodyError
    from .errors import BadChannelError as BadChannelError
    from .errors import BadMessageError as BadMessageError
    from .errors import BadProtocolError as BadProtocolError
    from .errors import BadTopicError as BadTopicError
    from .errors import ConnectionClosedError as ConnectionClosedError
    from .errors import FinishFailedError as FinishFailedError
    from .errors import HTTPAPIError as HTTPAPIError
    from .errors import IdentifyError as IdentifyError
    from .errors import IdentifyFailedError as IdentifyFailedError
    from .errors import InvalidError as InvalidError
    from .errors import LookupdError as LookupdError
    from .errors import NotConnectedError as NotConnectedError
    from .errors import NSQConnectionError as NSQConnectionError
    from .errors import NSQError as NSQError
    from .errors import PublishError as PublishError
    from .errors import PublishFailedError as PublishFailedError
    from .errors import PublishTimeoutError as PublishTimeoutError
    from .errors import RequeueFailedError as RequeueFailedError
    from .errors import ServerError as ServerError
    from .errors import SubscribeFailedError as SubscribeFailedError
    from .errors import TouchFailedError as TouchFailedError
    from .errors import UnauthorizedError as UnauthorizedError
    from .handshake import IdentifyResponse as IdentifyResponse
    from .http_producer import HTTPProducer as HTTPProducer
    from .lookup import LookupResult as LookupResult
    from .lookup import PeerInfo as PeerInfo
    from .message import Message as Message
    from .message import encode_json as encode_json
    from .message import encode_msgpack as encode_msgpack
    from .producer import Producer as Producer
    from .producer import ProducerStatistics as ProducerStatistics


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'client' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AuthDisabledError",
    "AuthError",
    "AuthFailedError",
    "AuthFirstError",
    "BadBodyError",
    "BadChannelError",
    "BadMessageError",
    "BadProtocolError",
    "BadTopicError",
    "ClientConfig",
    "Connection",
    "ConnectionClosedError",
    "Consumer",
    "ConsumerStatistics",
    "FinishFailedError",
    "HTTPAPIError",
    "HTTPProducer",
    "IdentifyError",
    "IdentifyFailedError",
    "IdentifyResponse",
    "InvalidError",
    "LookupResult",
    "LookupdError",
    "Message",
    "NSQConnectionError",
    "NSQError",
    "NotConnectedError",
    "PeerInfo",
    "Producer",
    "ProducerStatistics",
    "PublishError",
    "PublishFailedError",
    "PublishTimeoutError",
    "RequeueFailedError",
    "ServerError",
    "SubscribeFailedError",
    "TouchFailedError",
    "UnauthorizedError",
    "encode_json",
    "encode_msgpack",
]
