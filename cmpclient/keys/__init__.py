"""Key generation, loading/writing, protocolEncrKey and returned (encrypted) private keys.

Names are imported lazily (PEP 562) so ``import cmpclient.keys`` stays cheap: the pyasn1
schema modules and ``cryptography`` load only when a function is first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    # generate
    "KeySpec": "generate",
    "VALID_KEY_SPECS": "generate",
    "parse_key_spec": "generate",
    "generate_key": "generate",
    "key_spec_of": "generate",
    "kem_algorithm_oid": "generate",
    # load
    "load_private_key": "load",
    "load_certificates": "load",
    "load_crl": "load",
    "load_pkcs12": "load",
    "write_private_key": "load",
    "write_certificates": "load",
    "write_pkcs12": "load",
    "atomic_write": "load",
    # encrypted
    "KeyTransRecipient": "encrypted",
    "KeyAgreeRecipient": "encrypted",
    "PasswordRecipient": "encrypted",
    "KEMRecipient": "encrypted",
    "encrypt_encrypted_value": "encrypted",
    "decrypt_encrypted_value": "encrypted",
    "envelope": "encrypted",
    "decrypt_enveloped_data": "encrypted",
    "enveloped_content_type": "encrypted",
    "sign_content": "encrypted",
    "verify_signed_data": "encrypted",
    "wrap_private_key_for_delivery": "encrypted",
    "wrap_private_key_in_encrypted_value": "encrypted",
    "decrypt_returned_private_key": "encrypted",
    "subject_key_identifier": "encrypted",
    # protocol_encr_key
    "make_protocol_encr_key": "protocol_encr_key",
    "ID_REGCTRL_PROTOCOL_ENCR_KEY": "protocol_encr_key",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
