"""blendsync wire protocol: sans-IO, pure Python + msgpack (it also runs inside Blender).

See docs/protocol.md for the byte-level specification.
"""

from .connection import CLOSED, NEED_DATA, Connection, Role, State
from .errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    EVENT_TYPES,
    MAX_KEY_BYTES,
    MAX_ROOM_NAME_BYTES,
    PRESENCE_FIELDS,
    PROTOCOL_VERSION,
    Ack,
    Applied,
    Batch,
    ClientJoined,
    ClientLeft,
    ClientUpdated,
    CreateRoom,
    Delete,
    DeleteRoom,
    Error,
    Event,
    EventRelayed,
    Hello,
    Joined,
    JoinRoom,
    LeaveRoom,
    Left,
    ListRooms,
    Ping,
    Pong,
    Presence,
    RoomCreated,
    RoomDeleted,
    RoomEvent,
    RoomList,
    RoomsChanged,
    Set,
    SnapshotChunk,
    SnapshotEnd,
    Welcome,
)
from .framing import DEFAULT_MAX_FRAME_SIZE, encode_frame, frame_bytes, pack_body
