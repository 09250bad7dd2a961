"""The NSQ wire codec, sans-I/O: no sockets, no trio. Shared by the client and the daemons."""

from . import commands as commands
from .constants import CLOSE_WAIT as CLOSE_WAIT
from .constants import HEARTBEAT as HEARTBEAT
from .constants import MAGIC_V1 as MAGIC_V1
from .constants import MAGIC_V2 as MAGIC_V2
from .constants import MESSAGE_HEADER_SIZE as MESSAGE_HEADER_SIZE
from .constants import MSG_ID_LENGTH as MSG_ID_LENGTH
from .constants import OK as OK
from .constants import FrameType as FrameType
from .errors import LocalProtocolError as LocalProtocolError
from .errors import ProtocolError as ProtocolError
from .errors import RemoteProtocolError as RemoteProtocolError
from .frames import Frame as Frame
from .frames import FrameReader as FrameReader
from .frames import ResponseReader as ResponseReader
from .frames import encode_error as encode_error
from .frames import encode_frame as encode_frame
from .frames import encode_response as encode_response
from .frames import encode_v1_response as encode_v1_response
from .message import MESSAGE_FRAME_HEAD as MESSAGE_FRAME_HEAD
from .message import MESSAGE_FRAME_OVERHEAD as MESSAGE_FRAME_OVERHEAD
from .message import RawMessage as RawMessage
from .message import decode_message as decode_message
from .message import encode_message as encode_message
from .message import encode_message_frame as encode_message_frame
from .names import EPHEMERAL_SUFFIX as EPHEMERAL_SUFFIX
from .names import is_ephemeral as is_ephemeral
from .names import is_valid_channel_name as is_valid_channel_name
from .names import is_valid_topic_name as is_valid_topic_name
from .reader import FIN_RUN as FIN_RUN
from .reader import V1_BODY_COMMANDS as V1_BODY_COMMANDS
from .reader import V2_BODY_COMMANDS as V2_BODY_COMMANDS
from .reader import Command as Command
from .reader import CommandReader as CommandReader
from .reader import MPUBError as MPUBError
from .reader import parse_mpub_body as parse_mpub_body

__all__ = [
    "CLOSE_WAIT",
    "Command",
    "CommandReader",
    "EPHEMERAL_SUFFIX",
    "Frame",
    "FIN_RUN",
    "FrameReader",
    "FrameType",
    "HEARTBEAT",
    "LocalProtocolError",
    "MAGIC_V1",
    "MAGIC_V2",
    "MESSAGE_HEADER_SIZE",
    "MPUBError",
    "MSG_ID_LENGTH",
    "OK",
    "ProtocolError",
    "RawMessage",
    "RemoteProtocolError",
    "ResponseReader",
    "V1_BODY_COMMANDS",
    "V2_BODY_COMMANDS",
    "commands",
    "decode_message",
    "encode_error",
    "encode_frame",
    "encode_message",
    "encode_message_frame",
    "MESSAGE_FRAME_HEAD",
    "MESSAGE_FRAME_OVERHEAD",
    "encode_response",
    "encode_v1_response",
    "is_ephemeral",
    "is_valid_channel_name",
    "is_valid_topic_name",
    "parse_mpub_body",
]
