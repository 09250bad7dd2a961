"""A go-zero style queue framework on Trio: sources, handlers, batching and fan-out.

The core (:class:`Queue`, the executors, the pusher combinators, :class:`ServiceGroup`) is
transport-neutral. The NSQ plug-in fits the protocols of :mod:`client.queue.interfaces`:
:class:`NSQQueue` (an NSQ channel consumed kq-style: :class:`NSQSource` fetchers,
:class:`NSQHandler` processors), :class:`NSQPusher` (chunked MPUB) and :class:`DelayQueue`
(DPUB).
"""

from ._util import Backoff as Backoff
from .delay import DeferredPublisher as DeferredPublisher
from .delay import DelayQueue as DelayQueue
from .executors import BulkExecutor as BulkExecutor
from .executors import ChunkExecutor as ChunkExecutor
from .executors import Execute as Execute
from .executors import ExecutorStatistics as ExecutorStatistics
from .executors import PeriodicalExecutor as PeriodicalExecutor
from .interfaces import NOTHING as NOTHING
from .interfaces import Consumer as Consumer
from .interfaces import ConsumerFactory as ConsumerFactory
from .interfaces import Listener as Listener
from .interfaces import Nothing as Nothing
from .interfaces import ProduceListener as ProduceListener
from .interfaces import Producer as Producer
from .interfaces import ProducerFactory as ProducerFactory
from .interfaces import Pusher as Pusher
from .interfaces import Service as Service
from .nsq_pusher import MultiPublisher as MultiPublisher
from .nsq_pusher import NSQPusher as NSQPusher
from .nsq_pusher import PushErrorHook as PushErrorHook
from .nsq_pusher import PusherStatistics as PusherStatistics
from .nsq_queue import NSQQueue as NSQQueue
from .nsq_queue import NSQQueueStatistics as NSQQueueStatistics
from .nsq_source import MessageHandler as MessageHandler
from .nsq_source import NSQHandler as NSQHandler
from .nsq_source import NSQSource as NSQSource
from .pushers import BalancedPusher as BalancedPusher
from .pushers import MultiPusher as MultiPusher
from .pushers import MultiPushError as MultiPushError
from .pushers import NoAvailablePusherError as NoAvailablePusherError
from .queue import Queue as Queue
from .queue import QueueStatistics as QueueStatistics
from .service_group import ServiceGroup as ServiceGroup
from .service_group import stop_on_signals as stop_on_signals

__all__ = [
    "Backoff",
    "BalancedPusher",
    "BulkExecutor",
    "ChunkExecutor",
    "Consumer",
    "ConsumerFactory",
    "DeferredPublisher",
    "DelayQueue",
    "Execute",
    "ExecutorStatistics",
    "Listener",
    "MessageHandler",
    "MultiPublisher",
    "MultiPushError",
    "MultiPusher",
    "NOTHING",
    "NSQHandler",
    "NSQPusher",
    "NSQQueue",
    "NSQQueueStatistics",
    "NSQSource",
    "NoAvailablePusherError",
    "Nothing",
    "PeriodicalExecutor",
    "ProduceListener",
    "Producer",
    "ProducerFactory",
    "PushErrorHook",
    "Pusher",
    "PusherStatistics",
    "Queue",
    "QueueStatistics",
    "Service",
    "ServiceGroup",
    "stop_on_signals",
]
