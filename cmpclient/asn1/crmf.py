"""CRMF (RFC 4211) types, as amended by RFC 9810, on top of ``pyasn1_modules.rfc5280``.

Why not ``pyasn1_modules.rfc4211``: that module is built on the obsolete ``rfc3280`` and
``rfc3852`` modules (a second copy of the X.509 and CMS schemas, ~120 ms of extra import
time), and it types ``EncryptedKey.envelopedData`` as a fully parsed EnvelopedData.  Here
every leaf type comes from ``rfc5280`` and CMS structures that only the key-decryption code
needs (EnvelopedData) stay opaque: :class:`OpaqueEnvelopedData` holds the DER *content*
octets of the implicitly tagged SEQUENCE and :mod:`cmpclient.keys` parses them on demand.

The ASN.1 text is in each class docstring (module ``PKIXCRMF-2009``, IMPLICIT TAGS).
"""

from __future__ import annotations

from pyasn1.type import char, constraint, namedtype, namedval, tag, tagmap, univ

from cmpclient.asn1 import _importspeed

_importspeed.begin()
from pyasn1_modules import rfc5280  # noqa: E402  (built with short reprs, see _importspeed)

MAX = float("inf")


def _ctx(num: int, constructed: bool = False) -> tag.Tag:
    return tag.Tag(tag.tagClassContext, tag.tagFormatConstructed if constructed else tag.tagFormatSimple, num)


def implicit(num: int, constructed: bool = False) -> dict:
    """Keyword arguments for ``.subtype()`` giving an IMPLICIT context tag."""
    return {"implicitTag": _ctx(num, constructed)}


def explicit(num: int) -> dict:
    """Keyword arguments for ``.subtype()`` giving an EXPLICIT context tag."""
    return {"explicitTag": _ctx(num, True)}


class OpaqueDER(univ.Any):
    """An ``ANY`` that, once tagged, claims only its own tag.

    pyasn1 lets a plain ``Any`` stand as the *default* alternative of every CHOICE or
    SEQUENCE it sits in, even when it carries a context tag; two such fields in one
    structure make the schema ambiguous ("Duplicate default ASN.1 type").  Opaque
    certificates, CSRs and CMS values are always distinguished by their tags in CMP, so
    a tagged ``OpaqueDER`` maps only its tag.
    """

    @property
    def tagMap(self) -> tagmap.TagMap:
        if self.tagSet:
            return tagmap.TagMap({self.tagSet: self})
        return super().tagMap


class OpaqueEnvelopedData(OpaqueDER):
    """``[n] IMPLICIT EnvelopedData`` kept as raw content octets.

    Decoding yields the octets inside the context tag (the SEQUENCE's contents, without
    the SEQUENCE header); :func:`cmpclient.asn1.codec.enveloped_data_der` restores the
    full ``EnvelopedData`` DER and :func:`cmpclient.asn1.codec.opaque_content` does the
    reverse when building.
    """


class AttributeTypeAndValue(univ.Sequence):
    """AttributeTypeAndValue ::= SEQUENCE { type OBJECT IDENTIFIER, value ANY DEFINED BY type }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("type", univ.ObjectIdentifier()),
        namedtype.NamedType("value", univ.Any()),
    )


class Controls(univ.SequenceOf):
    """Controls ::= SEQUENCE SIZE(1..MAX) OF AttributeTypeAndValue"""

    componentType = AttributeTypeAndValue()
    sizeSpec = constraint.ValueSizeConstraint(1, MAX)


class OptionalValidity(univ.Sequence):
    """OptionalValidity ::= SEQUENCE { notBefore [0] Time OPTIONAL, notAfter [1] Time OPTIONAL }

    ``Time`` is a CHOICE, so its context tags are explicit.
    """

    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("notBefore", rfc5280.Time().subtype(**explicit(0))),
        namedtype.OptionalNamedType("notAfter", rfc5280.Time().subtype(**explicit(1))),
    )


class CertTemplate(univ.Sequence):
    """RFC 4211 §5::

        CertTemplate ::= SEQUENCE {
            version      [0] Version               OPTIONAL,
            serialNumber [1] INTEGER               OPTIONAL,
            signingAlg   [2] AlgorithmIdentifier   OPTIONAL,
            issuer       [3] Name                  OPTIONAL,
            validity     [4] OptionalValidity      OPTIONAL,
            subject      [5] Name                  OPTIONAL,
            publicKey    [6] SubjectPublicKeyInfo  OPTIONAL,
            issuerUID    [7] UniqueIdentifier      OPTIONAL,
            subjectUID   [8] UniqueIdentifier      OPTIONAL,
            extensions   [9] Extensions            OPTIONAL }

    ``Name`` is a CHOICE: its tag is explicit even in an IMPLICIT TAGS module.
    """

    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("version", rfc5280.Version().subtype(**implicit(0))),
        namedtype.OptionalNamedType("serialNumber", univ.Integer().subtype(**implicit(1))),
        namedtype.OptionalNamedType("signingAlg", rfc5280.AlgorithmIdentifier().subtype(**implicit(2, True))),
        namedtype.OptionalNamedType("issuer", rfc5280.Name().subtype(**explicit(3))),
        namedtype.OptionalNamedType("validity", OptionalValidity().subtype(**implicit(4, True))),
        namedtype.OptionalNamedType("subject", rfc5280.Name().subtype(**explicit(5))),
        namedtype.OptionalNamedType("publicKey", rfc5280.SubjectPublicKeyInfo().subtype(**implicit(6, True))),
        namedtype.OptionalNamedType("issuerUID", rfc5280.UniqueIdentifier().subtype(**implicit(7))),
        namedtype.OptionalNamedType("subjectUID", rfc5280.UniqueIdentifier().subtype(**implicit(8))),
        namedtype.OptionalNamedType("extensions", rfc5280.Extensions().subtype(**implicit(9, True))),
    )


class CertRequest(univ.Sequence):
    """CertRequest ::= SEQUENCE { certReqId INTEGER, certTemplate CertTemplate, controls Controls OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("certReqId", univ.Integer()),
        namedtype.NamedType("certTemplate", CertTemplate()),
        namedtype.OptionalNamedType("controls", Controls()),
    )


class PKMACValue(univ.Sequence):
    """PKMACValue ::= SEQUENCE { algId AlgorithmIdentifier, value BIT STRING }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("algId", rfc5280.AlgorithmIdentifier()),
        namedtype.NamedType("value", univ.BitString()),
    )


class AuthInfo(univ.Choice):
    """authInfo CHOICE { sender [0] GeneralName, publicKeyMAC PKMACValue }

    ``GeneralName`` is a CHOICE, so ``sender``'s tag is explicit.
    """

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("sender", rfc5280.GeneralName().subtype(**explicit(0))),
        namedtype.NamedType("publicKeyMAC", PKMACValue()),
    )


class POPOSigningKeyInput(univ.Sequence):
    """POPOSigningKeyInput ::= SEQUENCE { authInfo CHOICE {...}, publicKey SubjectPublicKeyInfo }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("authInfo", AuthInfo()),
        namedtype.NamedType("publicKey", rfc5280.SubjectPublicKeyInfo()),
    )


class POPOSigningKey(univ.Sequence):
    """POPOSigningKey ::= SEQUENCE {
        poposkInput [0] POPOSigningKeyInput OPTIONAL,
        algorithmIdentifier AlgorithmIdentifier,
        signature BIT STRING }"""

    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("poposkInput", POPOSigningKeyInput().subtype(**implicit(0, True))),
        namedtype.NamedType("algorithmIdentifier", rfc5280.AlgorithmIdentifier()),
        namedtype.NamedType("signature", univ.BitString()),
    )


class SubsequentMessage(univ.Integer):
    """SubsequentMessage ::= INTEGER { encrCert (0), challengeResp (1) }"""

    namedValues = namedval.NamedValues(("encrCert", 0), ("challengeResp", 1))


class POPOPrivKey(univ.Choice):
    """POPOPrivKey ::= CHOICE {
        thisMessage       [0] BIT STRING,   -- deprecated by RFC 9810
        subsequentMessage [1] SubsequentMessage,
        dhMAC             [2] BIT STRING,   -- deprecated
        agreeMAC          [3] PKMACValue,
        encryptedKey      [4] EnvelopedData }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("thisMessage", univ.BitString().subtype(**implicit(0))),
        namedtype.NamedType("subsequentMessage", SubsequentMessage().subtype(**implicit(1))),
        namedtype.NamedType("dhMAC", univ.BitString().subtype(**implicit(2))),
        namedtype.NamedType("agreeMAC", PKMACValue().subtype(**implicit(3, True))),
        namedtype.NamedType("encryptedKey", OpaqueEnvelopedData().subtype(**implicit(4, True))),
    )


class ProofOfPossession(univ.Choice):
    """ProofOfPossession ::= CHOICE {
        raVerified      [0] NULL,
        signature       [1] POPOSigningKey,
        keyEncipherment [2] POPOPrivKey,
        keyAgreement    [3] POPOPrivKey }

    ``POPOPrivKey`` is a CHOICE, so the tags of the last two are explicit.
    """

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("raVerified", univ.Null().subtype(**implicit(0))),
        namedtype.NamedType("signature", POPOSigningKey().subtype(**implicit(1, True))),
        namedtype.NamedType("keyEncipherment", POPOPrivKey().subtype(**explicit(2))),
        namedtype.NamedType("keyAgreement", POPOPrivKey().subtype(**explicit(3))),
    )


class CertReqMsg(univ.Sequence):
    """CertReqMsg ::= SEQUENCE {
        certReq   CertRequest,
        popo      ProofOfPossession OPTIONAL,
        regInfo   SEQUENCE SIZE(1..MAX) OF AttributeTypeAndValue OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("certReq", CertRequest()),
        namedtype.OptionalNamedType("popo", ProofOfPossession()),
        namedtype.OptionalNamedType(
            "regInfo",
            univ.SequenceOf(componentType=AttributeTypeAndValue()).subtype(
                sizeSpec=constraint.ValueSizeConstraint(1, MAX)
            ),
        ),
    )


class CertReqMessages(univ.SequenceOf):
    """CertReqMessages ::= SEQUENCE SIZE (1..MAX) OF CertReqMsg"""

    componentType = CertReqMsg()
    sizeSpec = constraint.ValueSizeConstraint(1, MAX)


class EncryptedValue(univ.Sequence):
    """RFC 4211 §2.2 (deprecated by RFC 9810 in favour of EnvelopedData)::

        EncryptedValue ::= SEQUENCE {
            intendedAlg [0] AlgorithmIdentifier OPTIONAL,
            symmAlg     [1] AlgorithmIdentifier OPTIONAL,
            encSymmKey  [2] BIT STRING          OPTIONAL,
            keyAlg      [3] AlgorithmIdentifier OPTIONAL,
            valueHint   [4] OCTET STRING        OPTIONAL,
            encValue        BIT STRING }"""

    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("intendedAlg", rfc5280.AlgorithmIdentifier().subtype(**implicit(0, True))),
        namedtype.OptionalNamedType("symmAlg", rfc5280.AlgorithmIdentifier().subtype(**implicit(1, True))),
        namedtype.OptionalNamedType("encSymmKey", univ.BitString().subtype(**implicit(2))),
        namedtype.OptionalNamedType("keyAlg", rfc5280.AlgorithmIdentifier().subtype(**implicit(3, True))),
        namedtype.OptionalNamedType("valueHint", univ.OctetString().subtype(**implicit(4))),
        namedtype.NamedType("encValue", univ.BitString()),
    )


class EncryptedKey(univ.Choice):
    """RFC 9810 §5.2.2::

        EncryptedKey ::= CHOICE {
            encryptedValue EncryptedValue,   -- deprecated
            envelopedData  [0] EnvelopedData }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("encryptedValue", EncryptedValue()),
        namedtype.NamedType("envelopedData", OpaqueEnvelopedData().subtype(**implicit(0, True))),
    )


class CertId(univ.Sequence):
    """CertId ::= SEQUENCE { issuer GeneralName, serialNumber INTEGER }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("issuer", rfc5280.GeneralName()),
        namedtype.NamedType("serialNumber", univ.Integer()),
    )


class RegToken(char.UTF8String):
    """RegToken ::= UTF8String  (id-regCtrl-regToken)"""


class Authenticator(char.UTF8String):
    """Authenticator ::= UTF8String  (id-regCtrl-authenticator)"""


class SinglePubInfo(univ.Sequence):
    """SinglePubInfo ::= SEQUENCE { pubMethod INTEGER {...}, pubLocation GeneralName OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType(
            "pubMethod",
            univ.Integer(namedValues=namedval.NamedValues(("dontCare", 0), ("x500", 1), ("web", 2), ("ldap", 3))),
        ),
        namedtype.OptionalNamedType("pubLocation", rfc5280.GeneralName()),
    )


class PKIPublicationInfo(univ.Sequence):
    """PKIPublicationInfo ::= SEQUENCE { action INTEGER {dontPublish(0), pleasePublish(1)},
    pubInfos SEQUENCE SIZE (1..MAX) OF SinglePubInfo OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType(
            "action", univ.Integer(namedValues=namedval.NamedValues(("dontPublish", 0), ("pleasePublish", 1)))
        ),
        namedtype.OptionalNamedType(
            "pubInfos",
            univ.SequenceOf(componentType=SinglePubInfo()).subtype(sizeSpec=constraint.ValueSizeConstraint(1, MAX)),
        ),
    )


class EncKeyWithID(univ.Sequence):
    """RFC 4211 §4.4::

        EncKeyWithID ::= SEQUENCE {
            privateKey  PrivateKeyInfo,
            identifier  CHOICE { string UTF8String, generalName GeneralName } OPTIONAL }

    ``PrivateKeyInfo`` is kept opaque; cryptography parses it.
    """

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("privateKey", univ.Any()),
        namedtype.OptionalNamedType(
            "identifier",
            univ.Choice(
                componentType=namedtype.NamedTypes(
                    namedtype.NamedType("string", char.UTF8String()),
                    namedtype.NamedType("generalName", rfc5280.GeneralName()),
                )
            ),
        ),
    )


_importspeed.end()
