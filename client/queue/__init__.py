"""A go-zero style queue framework on Trio: sources, handlers, batching and fan-out.

The core (:class:`Queue`, the executors, the pusher combinators, :class:`ServiceGroup`) is
transport-neutral. The NSQ plug-in fits the protocols of :mod:`client.queue.interfaces`:
:class:`NSQQueue` (an NSQ channel consumed kq-style: :class:`NSQSource` fetchers,
:class:`NSQHandler` processors), :class:`NSQPusher` (chunked MPUB) and :class:`DelayQueue`
(DPUB). :class:`ServiceGroup` runs services together and stops them on SIGINT/SIGTERM
(:data:`DEFAULT_STOP_SIGNALS`).
"""

from ._util import Backoff as Backoff
from .delay import DEFAULT_MAX_DELAY as DEFAULT_MAX_DELAY
from .delay import DeferredPublisher as DeferredPublisher
from .delay import DelayQueue as DelayQueue
from .executors import BulkExecutor as BulkExecutor
from .executors import ChunkExecutor as ChunkExecutor
from .executors import Execute as Execute
from .executors import ExecutorStatistics as ExecutorStatistics
from .executors import PeriodicalExecutor as PeriodicalExecutor
from .interfaces import NOTHING as NOTHING
from .interfaces import ConsumerFactory as ConsumerFactory
from .interfaces import Listener as Listener
from .interfaces import Nothing as Nothing
from .interfaces import ProduceListener as ProduceListener
from .interfaces import ProducerFactory as ProducerFactory
from .interfaces import Pusher as Pusher
from .interfaces import QueueConsumer as QueueConsumer
from .interfaces import QueueProducer as QueueProducer
from .interfaces import Service as Service
from .nsq_pusher import DEFAULT_PUSH_CHUNK_SIZE as DEFAULT_PUSH_CHUNK_SIZE
from .nsq_pusher import DEFAULT_PUSH_FLUSH_INTERVAL as DEFAULT_PUSH_FLUSH_INTERVAL
from .nsq_pusher import MultiPublisher as MultiPublisher
from .nsq_pusher import NSQPusher as NSQPusher
from .nsq_pusher import PushErrorHook as PushErrorHook
from .nsq_pusher import PusherStatistics as PusherStatistics
from .nsq_queue import DEFAULT_DRAIN_TIMEOUT as DEFAULT_DRAIN_TIMEOUT
from .nsq_queue import DEFAULT_QUEUE_CAPACITY as DEFAULT_QUEUE_CAPACITY
from .nsq_queue import NSQQueue as NSQQueue
from .nsq_queue import NSQQueueStatistics as NSQQueueStatistics
from .nsq_source import MessageHandler as MessageHandler
from .nsq_source import NSQHandler as NSQHandler
from .nsq_source import NSQSource as NSQSource
from .pushers import BalancedPusher as BalancedPusher
from .pushers import MultiPusher as MultiPusher
from .pushers import MultiPushError as MultiPushError
from .pushers import NoAvailablePusherError as NoAvailablePusherError
from .queue import DEFAULT_CAPACITY as DEFAULT_CAPACITY
from .queue import DEFAULT_CONSUMERS as DEFAULT_CONSUMERS
from .queue import DEFAULT_PRODUCERS as DEFAULT_PRODUCERS
from .queue import Queue as Queue
from .queue import QueueStatistics as QueueStatistics
from .service_group import DEFAULT_STOP_SIGNALS as DEFAULT_STOP_SIGNALS
from .service_group import ServiceGroup as ServiceGroup
from .service_group import stop_on_signals as stop_on_signals

__all__ = [
    "Backoff",
    "BalancedPusher",
    "BulkExecutor",
    "ChunkExecutor",
    "ConsumerFactory",
    "DEFAULT_CAPACITY",
    "DEFAULT_CONSUMERS",
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_PRODUCERS",
    "DEFAULT_PUSH_CHUNK_SIZE",
    "DEFAULT_PUSH_FLUSH_INTERVAL",
    "DEFAULT_QUEUE_CAPACITY",
    "DEFAULT_STOP_SIGNALS",
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
    "ProducerFactory",
    "PushErrorHook",
    "Pusher",
    "PusherStatistics",
    "Queue",
    "QueueConsumer",
    "QueueProducer",
    "QueueStatistics",
    "Service",
    "ServiceGroup",
    "stop_on_signals",
]
