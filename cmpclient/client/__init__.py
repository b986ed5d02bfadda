"""CMP transactions and operations.

``ClientConfig`` holds the transport, protection and trust settings; ``Transaction``
runs the messages of one transactionID with all response checks; ``enroll``,
``confirm``, ``revoke`` and ``general_message`` are the operations.
"""

from cmpclient.client.operations import (
    ConfirmState,
    EnrollResult,
    RevokeResult,
    cert_hash,
    confirm,
    enroll,
    general_message,
    revoke,
)
from cmpclient.client.transaction import ClientConfig, Leniency, Transaction

__all__ = [
    "ClientConfig",
    "ConfirmState",
    "EnrollResult",
    "Leniency",
    "RevokeResult",
    "Transaction",
    "cert_hash",
    "confirm",
    "enroll",
    "general_message",
    "revoke",
]
