"""Asterisk Manager Interface: the AMI client and the call tracker built from its events."""

from vaihde.ami.client import (
    AmiActionError,
    AmiAuthError,
    AmiClient,
    AmiConnectError,
    AmiError,
    AmiMessage,
    AmiNotConnected,
    AmiRefused,
    AmiResponse,
    AmiTimeout,
)
from vaihde.ami.tracker import (
    Bridge,
    CallTracker,
    Change,
    ChangeKind,
    ChangeQueue,
    Channel,
    Dial,
    HangupRecord,
    ParkedCall,
    QueueCaller,
)

__all__ = [
    "AmiActionError",
    "AmiAuthError",
    "AmiClient",
    "AmiConnectError",
    "AmiError",
    "AmiMessage",
    "AmiNotConnected",
    "AmiRefused",
    "AmiResponse",
    "AmiTimeout",
    "Bridge",
    "CallTracker",
    "Change",
    "ChangeKind",
    "ChangeQueue",
    "Channel",
    "Dial",
    "HangupRecord",
    "ParkedCall",
    "QueueCaller",
]
