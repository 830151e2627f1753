"""blendsync wire protocol: sans-IO, pure Python + msgpack (it also runs inside Blender).

See docs/protocol.md for the byte-level specification.
"""

from . import invite, limits
from .admin_events import BackupData, ExportBlob, ExportItems
from .client_session import ClientSession, Step
from .connection import CLOSED, NEED_DATA, Connection, Role, State
from .convergence import Overridden, Overrides, PendingEdits
from .errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    ADDON_PATH,
    EVENT_TYPES,
    PROTOCOL_MIN,
    PROTOCOL_VERSION,
    Ack,
    Admin,
    AdminResult,
    Applied,
    Batch,
    BlobDataEvent,
    BlobGet,
    BlobPut,
    BlobQuery,
    BlobStatus,
    BlobStored,
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
    Lock,
    LockGranted,
    LocksChanged,
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
    Unlock,
    Unlocked,
    Welcome,
    presence_field_ok,
)
from .framing import DEFAULT_MAX_FRAME_SIZE, encode_frame, frame_bytes, pack_body
from .history import (
    Checkpoint,
    CheckpointDeleted,
    CheckpointList,
    CheckpointMade,
    DeleteCheckpoint,
    Fork,
    Forked,
    History,
    HistoryResult,
    ListCheckpoints,
    Replay,
    ReplayState,
    Restore,
    Restored,
    Retention,
    SetRetention,
)
from .limits import (
    ADMIN_ACTIONS,
    INT63_MAX,
    MAX_KEY_BYTES,
    MAX_LOCK_KEYS,
    MAX_ROOM_NAME_BYTES,
    PRESENCE_FIELDS,
    check_key,
    check_room_name,
    fit_name,
)
from .nodes import SILENT_HEARTBEATS, Nodes, parse_address
from .versions import mismatch_reason, negotiate
