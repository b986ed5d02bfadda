"""CMS KEMRecipientInfo (RFC 9629), written here so the library needs no extra schema package.

RFC 9629 section 3::

    KEMRecipientInfo ::= SEQUENCE {
      version CMSVersion,  -- always set to 0
      rid RecipientIdentifier,
      kem KEMAlgorithmIdentifier,
      kemct OCTET STRING,
      kdf KeyDerivationAlgorithmIdentifier,
      kekLength INTEGER (1..65535),
      ukm [0] EXPLICIT UserKeyingMaterial OPTIONAL,
      wrap KeyEncryptionAlgorithmIdentifier,
      encryptedKey EncryptedKey }

    CMSORIforKEMOtherInfo ::= SEQUENCE {
      wrap KeyEncryptionAlgorithmIdentifier,
      kekLength INTEGER (1..65535),
      ukm [0] EXPLICIT UserKeyingMaterial OPTIONAL }

A KEMRecipientInfo travels as ``OtherRecipientInfo`` (``ori [4]``) with ``oriType``
``id-ori-kem`` (1.2.840.113549.1.9.16.13.3).  The KEK is ``KDF(ss, kekLength,
DER(CMSORIforKEMOtherInfo))``; for ML-KEM RFC 9936 uses HKDF-SHA256 (RFC 8619
``id-alg-hkdf-with-sha256``, parameters absent, no salt) and AES key wrap.
"""

from __future__ import annotations

from pyasn1.type import constraint, namedtype, univ
from pyasn1_modules import rfc5280, rfc5652

from cmpclient.asn1.crmf import explicit

__all__ = ["KEMRecipientInfo", "CMSORIforKEMOtherInfo"]


def _kek_length() -> univ.Integer:
    return univ.Integer().subtype(subtypeSpec=constraint.ValueRangeConstraint(1, 65535))


class KEMRecipientInfo(univ.Sequence):
    """RFC 9629 KEMRecipientInfo (the value of an id-ori-kem OtherRecipientInfo)."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("version", rfc5652.CMSVersion()),
        namedtype.NamedType("rid", rfc5652.RecipientIdentifier()),
        namedtype.NamedType("kem", rfc5280.AlgorithmIdentifier()),
        namedtype.NamedType("kemct", univ.OctetString()),
        namedtype.NamedType("kdf", rfc5280.AlgorithmIdentifier()),
        namedtype.NamedType("kekLength", _kek_length()),
        namedtype.OptionalNamedType("ukm", univ.OctetString().subtype(**explicit(0))),
        namedtype.NamedType("wrap", rfc5280.AlgorithmIdentifier()),
        namedtype.NamedType("encryptedKey", univ.OctetString()),
    )


class CMSORIforKEMOtherInfo(univ.Sequence):
    """RFC 9629 CMSORIforKEMOtherInfo: the KDF ``info`` input."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("wrap", rfc5280.AlgorithmIdentifier()),
        namedtype.NamedType("kekLength", _kek_length()),
        namedtype.OptionalNamedType("ukm", univ.OctetString().subtype(**explicit(0))),
    )
