"""CMP message types of RFC 9810 (CMPv3, superseding RFC 4210), module ``PKIXCMP-2023``.

Why our own module: ``pyasn1_modules.rfc4210`` is the 2005 schema.  It limits pvno to
1..2, has the ``nested`` body commented out, lacks ``CertStatus.hashAlg``, the
EnvelopedData alternative of ``EncryptedKey`` in ``CertifiedKeyPair``, the KEM types and
the RFC 9480 InfoTypes.  Because ``PKIHeader``, ``PKIBody`` and ``PKIMessage`` are the roots
that every such change passes through, the message layer is defined here once; leaf
types come from ``pyasn1_modules.rfc5280`` and our :mod:`cmpclient.asn1.crmf`.

Certificates, CRLs and PKCS#10 requests inside messages stay opaque DER (``univ.Any``):
pyasn1 does not decode them on every message, and ``cryptography`` parses them on demand.

The CMP module uses EXPLICIT TAGS.  ASN.1 text is in the docstrings.
"""

from __future__ import annotations

from pyasn1.type import char, constraint, namedtype, namedval, tag, univ, useful

from cmpclient.asn1 import _importspeed
from cmpclient.asn1.cmp_names import BODY_NAMES, CERT_REP_BODIES, FAIL_INFO_NAMES, PKI_STATUS_NAMES  # also cmp.<name>

_importspeed.begin()
from pyasn1_modules import rfc5280  # noqa: E402  (built with short reprs, see _importspeed)

from cmpclient.asn1.crmf import (  # noqa: E402
    CertId,
    CertReqMessages,
    CertTemplate,
    Controls,
    EncryptedKey,
    OpaqueDER,
    PKIPublicationInfo,
    explicit,
)

MAX = float("inf")


class CMPCertificate(OpaqueDER):
    """CMPCertificate ::= CHOICE { x509v3PKCert Certificate, ... }

    Kept as the certificate's full DER; parse with ``cryptography.x509.load_der_x509_certificate``.
    """


class CertificateList(OpaqueDER):
    """CertificateList (a CRL, RFC 5280), kept as full DER."""


class CertificationRequest(OpaqueDER):
    """PKCS#10 CertificationRequest (RFC 2986), kept as full DER for ``p10cr``."""


class KeyIdentifier(univ.OctetString):
    """KeyIdentifier ::= OCTET STRING"""


class PKIFreeText(univ.SequenceOf):
    """PKIFreeText ::= SEQUENCE SIZE (1..MAX) OF UTF8String"""

    componentType = char.UTF8String()
    sizeSpec = constraint.ValueSizeConstraint(1, MAX)


class PKIStatus(univ.Integer):
    """PKIStatus ::= INTEGER { accepted(0), grantedWithMods(1), rejection(2), waiting(3),
    revocationWarning(4), revocationNotification(5), keyUpdateWarning(6) }"""

    namedValues = namedval.NamedValues(*[(name, i) for i, name in enumerate(PKI_STATUS_NAMES)])


class PKIFailureInfo(univ.BitString):
    """PKIFailureInfo ::= BIT STRING { badAlg(0), ..., duplicateCertReq(26) }  (RFC 9810 §5.2.3)"""

    namedValues = namedval.NamedValues(*[(name, i) for i, name in enumerate(FAIL_INFO_NAMES)])


class PKIStatusInfo(univ.Sequence):
    """PKIStatusInfo ::= SEQUENCE { status PKIStatus, statusString PKIFreeText OPTIONAL,
    failInfo PKIFailureInfo OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("status", PKIStatus()),
        namedtype.OptionalNamedType("statusString", PKIFreeText()),
        namedtype.OptionalNamedType("failInfo", PKIFailureInfo()),
    )


class InfoTypeAndValue(univ.Sequence):
    """InfoTypeAndValue ::= SEQUENCE { infoType OBJECT IDENTIFIER, infoValue ANY DEFINED BY infoType OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("infoType", univ.ObjectIdentifier()),
        namedtype.OptionalNamedType("infoValue", univ.Any()),
    )


class GenMsgContent(univ.SequenceOf):
    """GenMsgContent ::= SEQUENCE OF InfoTypeAndValue"""

    componentType = InfoTypeAndValue()


class GenRepContent(univ.SequenceOf):
    """GenRepContent ::= SEQUENCE OF InfoTypeAndValue"""

    componentType = InfoTypeAndValue()


class PKIHeader(univ.Sequence):
    """RFC 9810 §5.1.1::

        PKIHeader ::= SEQUENCE {
            pvno           INTEGER { cmp1999(1), cmp2000(2), cmp2021(3) },
            sender         GeneralName,
            recipient      GeneralName,
            messageTime    [0] GeneralizedTime         OPTIONAL,
            protectionAlg  [1] AlgorithmIdentifier     OPTIONAL,
            senderKID      [2] KeyIdentifier           OPTIONAL,
            recipKID       [3] KeyIdentifier           OPTIONAL,
            transactionID  [4] OCTET STRING            OPTIONAL,
            senderNonce    [5] OCTET STRING            OPTIONAL,
            recipNonce     [6] OCTET STRING            OPTIONAL,
            freeText       [7] PKIFreeText             OPTIONAL,
            generalInfo    [8] SEQUENCE SIZE (1..MAX) OF InfoTypeAndValue OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType(
            "pvno", univ.Integer(namedValues=namedval.NamedValues(("cmp1999", 1), ("cmp2000", 2), ("cmp2021", 3)))
        ),
        namedtype.NamedType("sender", rfc5280.GeneralName()),
        namedtype.NamedType("recipient", rfc5280.GeneralName()),
        namedtype.OptionalNamedType("messageTime", useful.GeneralizedTime().subtype(**explicit(0))),
        namedtype.OptionalNamedType("protectionAlg", rfc5280.AlgorithmIdentifier().subtype(**explicit(1))),
        namedtype.OptionalNamedType("senderKID", KeyIdentifier().subtype(**explicit(2))),
        namedtype.OptionalNamedType("recipKID", KeyIdentifier().subtype(**explicit(3))),
        namedtype.OptionalNamedType("transactionID", univ.OctetString().subtype(**explicit(4))),
        namedtype.OptionalNamedType("senderNonce", univ.OctetString().subtype(**explicit(5))),
        namedtype.OptionalNamedType("recipNonce", univ.OctetString().subtype(**explicit(6))),
        namedtype.OptionalNamedType("freeText", PKIFreeText().subtype(**explicit(7))),
        namedtype.OptionalNamedType(
            "generalInfo",
            univ.SequenceOf(componentType=InfoTypeAndValue()).subtype(
                sizeSpec=constraint.ValueSizeConstraint(1, MAX), **explicit(8)
            ),
        ),
    )


class CertOrEncCert(univ.Choice):
    """CertOrEncCert ::= CHOICE { certificate [0] CMPCertificate, encryptedCert [1] EncryptedKey }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("certificate", CMPCertificate().subtype(**explicit(0))),
        namedtype.NamedType("encryptedCert", EncryptedKey().subtype(**explicit(1))),
    )


class CertifiedKeyPair(univ.Sequence):
    """CertifiedKeyPair ::= SEQUENCE {
        certOrEncCert    CertOrEncCert,
        privateKey       [0] EncryptedKey       OPTIONAL,
        publicationInfo  [1] PKIPublicationInfo OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("certOrEncCert", CertOrEncCert()),
        namedtype.OptionalNamedType("privateKey", EncryptedKey().subtype(**explicit(0))),
        namedtype.OptionalNamedType("publicationInfo", PKIPublicationInfo().subtype(**explicit(1))),
    )


class CertResponse(univ.Sequence):
    """CertResponse ::= SEQUENCE {
        certReqId         INTEGER,
        status            PKIStatusInfo,
        certifiedKeyPair  CertifiedKeyPair OPTIONAL,
        rspInfo           OCTET STRING     OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("certReqId", univ.Integer()),
        namedtype.NamedType("status", PKIStatusInfo()),
        namedtype.OptionalNamedType("certifiedKeyPair", CertifiedKeyPair()),
        namedtype.OptionalNamedType("rspInfo", univ.OctetString()),
    )


class CertRepMessage(univ.Sequence):
    """CertRepMessage ::= SEQUENCE {
        caPubs    [1] SEQUENCE SIZE (1..MAX) OF CMPCertificate OPTIONAL,
        response      SEQUENCE OF CertResponse }"""

    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType(
            "caPubs",
            univ.SequenceOf(componentType=CMPCertificate()).subtype(
                sizeSpec=constraint.ValueSizeConstraint(1, MAX), **explicit(1)
            ),
        ),
        namedtype.NamedType("response", univ.SequenceOf(componentType=CertResponse())),
    )


class Challenge(univ.Sequence):
    """Challenge ::= SEQUENCE { owf AlgorithmIdentifier OPTIONAL, witness OCTET STRING,
    challenge OCTET STRING, encryptedRand [0] EnvelopedData OPTIONAL (kept opaque) }"""

    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("owf", rfc5280.AlgorithmIdentifier()),
        namedtype.NamedType("witness", univ.OctetString()),
        namedtype.NamedType("challenge", univ.OctetString()),
        namedtype.OptionalNamedType("encryptedRand", OpaqueDER().subtype(**explicit(0))),
    )


class POPODecKeyChallContent(univ.SequenceOf):
    """POPODecKeyChallContent ::= SEQUENCE OF Challenge"""

    componentType = Challenge()


class POPODecKeyRespContent(univ.SequenceOf):
    """POPODecKeyRespContent ::= SEQUENCE OF INTEGER"""

    componentType = univ.Integer()


class RevDetails(univ.Sequence):
    """RevDetails ::= SEQUENCE { certDetails CertTemplate, crlEntryDetails Extensions OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("certDetails", CertTemplate()),
        namedtype.OptionalNamedType("crlEntryDetails", rfc5280.Extensions()),
    )


class RevReqContent(univ.SequenceOf):
    """RevReqContent ::= SEQUENCE OF RevDetails"""

    componentType = RevDetails()


class RevRepContent(univ.Sequence):
    """RevRepContent ::= SEQUENCE {
        status    SEQUENCE SIZE (1..MAX) OF PKIStatusInfo,
        revCerts  [0] SEQUENCE SIZE (1..MAX) OF CertId OPTIONAL,
        crls      [1] SEQUENCE SIZE (1..MAX) OF CertificateList OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType(
            "status",
            univ.SequenceOf(componentType=PKIStatusInfo()).subtype(sizeSpec=constraint.ValueSizeConstraint(1, MAX)),
        ),
        namedtype.OptionalNamedType(
            "revCerts",
            univ.SequenceOf(componentType=CertId()).subtype(
                sizeSpec=constraint.ValueSizeConstraint(1, MAX), **explicit(0)
            ),
        ),
        namedtype.OptionalNamedType(
            "crls",
            univ.SequenceOf(componentType=CertificateList()).subtype(
                sizeSpec=constraint.ValueSizeConstraint(1, MAX), **explicit(1)
            ),
        ),
    )


class KeyRecRepContent(univ.Sequence):
    """KeyRecRepContent ::= SEQUENCE { status PKIStatusInfo, newSigCert [0] CMPCertificate OPTIONAL,
    caCerts [1] SEQUENCE OF CMPCertificate OPTIONAL, keyPairHist [2] SEQUENCE OF CertifiedKeyPair OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("status", PKIStatusInfo()),
        namedtype.OptionalNamedType("newSigCert", CMPCertificate().subtype(**explicit(0))),
        namedtype.OptionalNamedType(
            "caCerts", univ.SequenceOf(componentType=CMPCertificate()).subtype(**explicit(1))
        ),
        namedtype.OptionalNamedType(
            "keyPairHist", univ.SequenceOf(componentType=CertifiedKeyPair()).subtype(**explicit(2))
        ),
    )


class CAKeyUpdAnnContent(univ.Sequence):
    """CAKeyUpdAnnContent ::= SEQUENCE { oldWithNew, newWithOld, newWithNew CMPCertificate }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("oldWithNew", CMPCertificate()),
        namedtype.NamedType("newWithOld", CMPCertificate()),
        namedtype.NamedType("newWithNew", CMPCertificate()),
    )


class RevAnnContent(univ.Sequence):
    """RevAnnContent ::= SEQUENCE { status PKIStatus, certId CertId, willBeRevokedAt GeneralizedTime,
    badSinceDate GeneralizedTime, crlDetails Extensions OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("status", PKIStatus()),
        namedtype.NamedType("certId", CertId()),
        namedtype.NamedType("willBeRevokedAt", useful.GeneralizedTime()),
        namedtype.NamedType("badSinceDate", useful.GeneralizedTime()),
        namedtype.OptionalNamedType("crlDetails", rfc5280.Extensions()),
    )


class CertStatus(univ.Sequence):
    """RFC 9810 §5.3.18::

        CertStatus ::= SEQUENCE {
            certHash    OCTET STRING,
            certReqId   INTEGER,
            statusInfo  PKIStatusInfo OPTIONAL,
            hashAlg [0] AlgorithmIdentifier OPTIONAL }   -- CMPv3 only"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("certHash", univ.OctetString()),
        namedtype.NamedType("certReqId", univ.Integer()),
        namedtype.OptionalNamedType("statusInfo", PKIStatusInfo()),
        namedtype.OptionalNamedType("hashAlg", rfc5280.AlgorithmIdentifier().subtype(**explicit(0))),
    )


class CertConfirmContent(univ.SequenceOf):
    """CertConfirmContent ::= SEQUENCE OF CertStatus"""

    componentType = CertStatus()


class ErrorMsgContent(univ.Sequence):
    """ErrorMsgContent ::= SEQUENCE { pKIStatusInfo PKIStatusInfo, errorCode INTEGER OPTIONAL,
    errorDetails PKIFreeText OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("pKIStatusInfo", PKIStatusInfo()),
        namedtype.OptionalNamedType("errorCode", univ.Integer()),
        namedtype.OptionalNamedType("errorDetails", PKIFreeText()),
    )


class PollReqContent(univ.SequenceOf):
    """PollReqContent ::= SEQUENCE OF SEQUENCE { certReqId INTEGER }"""

    componentType = univ.Sequence(componentType=namedtype.NamedTypes(namedtype.NamedType("certReqId", univ.Integer())))


class PollRepContent(univ.SequenceOf):
    """PollRepContent ::= SEQUENCE OF SEQUENCE { certReqId INTEGER, checkAfter INTEGER,
    reason PKIFreeText OPTIONAL }"""

    componentType = univ.Sequence(
        componentType=namedtype.NamedTypes(
            namedtype.NamedType("certReqId", univ.Integer()),
            namedtype.NamedType("checkAfter", univ.Integer()),
            namedtype.OptionalNamedType("reason", PKIFreeText()),
        )
    )


class NestedMessageContent(univ.SequenceOf):
    """NestedMessageContent ::= PKIMessages  -- SEQUENCE SIZE (1..MAX) OF PKIMessage

    The inner messages are kept as opaque DER.  pyasn1 cannot express the recursion
    PKIMessage -> PKIBody -> PKIMessages cheaply, and keeping the exact received bytes is
    what verifying each inner message's own protection needs anyway: decode an element
    with :func:`cmpclient.message.pkimessage.decode_message` when it is wanted.  This also bounds
    the work an attacker can cause with deep nesting to one level per decode call.
    """

    componentType = univ.Any()
    sizeSpec = constraint.ValueSizeConstraint(1, MAX)


# The type of each PKIBody alternative; the tag order is BODY_NAMES's (cmp_names).
_BODY_SPECS: dict[str, object] = {
    "ir": CertReqMessages(),
    "ip": CertRepMessage(),
    "cr": CertReqMessages(),
    "cp": CertRepMessage(),
    "p10cr": CertificationRequest(),
    "popdecc": POPODecKeyChallContent(),
    "popdecr": POPODecKeyRespContent(),
    "kur": CertReqMessages(),
    "kup": CertRepMessage(),
    "krr": CertReqMessages(),
    "krp": KeyRecRepContent(),
    "rr": RevReqContent(),
    "rp": RevRepContent(),
    "ccr": CertReqMessages(),
    "ccp": CertRepMessage(),
    "ckuann": CAKeyUpdAnnContent(),
    "cann": CMPCertificate(),
    "rann": RevAnnContent(),
    "crlann": univ.SequenceOf(componentType=CertificateList()),
    "pkiconf": univ.Null(),
    "nested": NestedMessageContent(),
    "genm": GenMsgContent(),
    "genp": GenRepContent(),
    "error": ErrorMsgContent(),
    "certConf": CertConfirmContent(),
    "pollReq": PollReqContent(),
    "pollRep": PollRepContent(),
}
if set(_BODY_SPECS) != set(BODY_NAMES):  # a body added to one table and not the other
    raise ImportError(f"PKIBody: cmp_names.BODY_NAMES and cmp._BODY_SPECS differ: {set(_BODY_SPECS) ^ set(BODY_NAMES)}")
_BODY_TYPES: list[tuple[str, object]] = [(name, _BODY_SPECS[name]) for name in BODY_NAMES]




class PKIBody(univ.Choice):
    """RFC 9810 §5.1.2::

        PKIBody ::= CHOICE {
            ir [0] CertReqMessages, ip [1] CertRepMessage, cr [2] CertReqMessages,
            cp [3] CertRepMessage, p10cr [4] CertificationRequest,
            popdecc [5] POPODecKeyChallContent, popdecr [6] POPODecKeyRespContent,
            kur [7] CertReqMessages, kup [8] CertRepMessage, krr [9] CertReqMessages,
            krp [10] KeyRecRepContent, rr [11] RevReqContent, rp [12] RevRepContent,
            ccr [13] CertReqMessages, ccp [14] CertRepMessage, ckuann [15] CAKeyUpdAnnContent,
            cann [16] CertAnnContent, rann [17] RevAnnContent, crlann [18] CRLAnnContent,
            pkiconf [19] PKIConfirmContent, nested [20] NestedMessageContent,
            genm [21] GenMsgContent, genp [22] GenRepContent, error [23] ErrorMsgContent,
            certConf [24] CertConfirmContent, pollReq [25] PollReqContent,
            pollRep [26] PollRepContent }"""

    componentType = namedtype.NamedTypes(
        *[namedtype.NamedType(name, typ.subtype(**explicit(i))) for i, (name, typ) in enumerate(_BODY_TYPES)]  # type: ignore[attr-defined]
    )


PKIProtection = univ.BitString


class PKIMessage(univ.Sequence):
    """PKIMessage ::= SEQUENCE {
        header      PKIHeader,
        body        PKIBody,
        protection  [0] PKIProtection OPTIONAL,
        extraCerts  [1] SEQUENCE SIZE (1..MAX) OF CMPCertificate OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("header", PKIHeader()),
        namedtype.NamedType("body", PKIBody()),
        namedtype.OptionalNamedType("protection", univ.BitString().subtype(**explicit(0))),
        namedtype.OptionalNamedType(
            "extraCerts",
            univ.SequenceOf(componentType=CMPCertificate()).subtype(
                sizeSpec=constraint.ValueSizeConstraint(1, MAX), **explicit(1)
            ),
        ),
    )


class PKIMessages(univ.SequenceOf):
    """PKIMessages ::= SEQUENCE SIZE (1..MAX) OF PKIMessage"""

    componentType = PKIMessage()
    sizeSpec = constraint.ValueSizeConstraint(1, MAX)


class ProtectedPart(univ.Sequence):
    """ProtectedPart ::= SEQUENCE { header PKIHeader, body PKIBody }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("header", PKIHeader()),
        namedtype.NamedType("body", PKIBody()),
    )


# --- Protection parameters -------------------------------------------------------------


class PBMParameter(univ.Sequence):
    """RFC 4211 §4.4 / RFC 9810 §5.1.3.1::

        PBMParameter ::= SEQUENCE {
            salt            OCTET STRING,
            owf             AlgorithmIdentifier,
            iterationCount  INTEGER,
            mac             AlgorithmIdentifier }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("salt", univ.OctetString()),
        namedtype.NamedType("owf", rfc5280.AlgorithmIdentifier()),
        namedtype.NamedType("iterationCount", univ.Integer()),
        namedtype.NamedType("mac", rfc5280.AlgorithmIdentifier()),
    )


class DHBMParameter(univ.Sequence):
    """DHBMParameter ::= SEQUENCE { owf AlgorithmIdentifier, mac AlgorithmIdentifier }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("owf", rfc5280.AlgorithmIdentifier()),
        namedtype.NamedType("mac", rfc5280.AlgorithmIdentifier()),
    )


class KemBMParameter(univ.Sequence):
    """RFC 9810 §5.1.3.4::

        KemBMParameter ::= SEQUENCE {
            kdf         AlgorithmIdentifier,
            kemContext  [0] OCTET STRING OPTIONAL,
            len         INTEGER (1..MAX),
            mac         AlgorithmIdentifier }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("kdf", rfc5280.AlgorithmIdentifier()),
        namedtype.OptionalNamedType("kemContext", univ.OctetString().subtype(**explicit(0))),
        namedtype.NamedType("len", univ.Integer().subtype(subtypeSpec=constraint.ValueRangeConstraint(1, MAX))),
        namedtype.NamedType("mac", rfc5280.AlgorithmIdentifier()),
    )


class KemCiphertextInfo(univ.Sequence):
    """KemCiphertextInfo ::= SEQUENCE { kem AlgorithmIdentifier, ct OCTET STRING }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("kem", rfc5280.AlgorithmIdentifier()),
        namedtype.NamedType("ct", univ.OctetString()),
    )


class KemOtherInfo(univ.Sequence):
    """KemOtherInfo ::= SEQUENCE { staticString PKIFreeText, transactionID OCTET STRING,
    kemContext [0] OCTET STRING OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("staticString", PKIFreeText()),
        namedtype.NamedType("transactionID", univ.OctetString()),
        namedtype.OptionalNamedType("kemContext", univ.OctetString().subtype(**explicit(0))),
    )


# --- RFC 9480 / RFC 9810 InfoType values ----------------------------------------------


class CACertsValue(univ.SequenceOf):
    """id-it-caCerts: CaCertsValue ::= SEQUENCE SIZE (1..MAX) OF CMPCertificate"""

    componentType = CMPCertificate()
    sizeSpec = constraint.ValueSizeConstraint(1, MAX)


class RootCaKeyUpdateContent(univ.Sequence):
    """RootCaKeyUpdateContent ::= SEQUENCE {
        newWithNew  CMPCertificate,
        newWithOld  [0] CMPCertificate OPTIONAL,
        oldWithNew  [1] CMPCertificate OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("newWithNew", CMPCertificate()),
        namedtype.OptionalNamedType("newWithOld", CMPCertificate().subtype(**explicit(0))),
        namedtype.OptionalNamedType("oldWithNew", CMPCertificate().subtype(**explicit(1))),
    )


class CertReqTemplateContent(univ.Sequence):
    """CertReqTemplateContent ::= SEQUENCE { certTemplate CertTemplate, keySpec Controls OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("certTemplate", CertTemplate()),
        namedtype.OptionalNamedType("keySpec", Controls()),
    )


class CertProfileValue(univ.SequenceOf):
    """CertProfileValue ::= SEQUENCE SIZE (1..MAX) OF UTF8String"""

    componentType = char.UTF8String()
    sizeSpec = constraint.ValueSizeConstraint(1, MAX)


class CRLSource(univ.Choice):
    """CRLSource ::= CHOICE { dpn [0] DistributionPointName, issuer [1] GeneralNames }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("dpn", rfc5280.DistributionPointName().subtype(**explicit(0))),
        namedtype.NamedType("issuer", rfc5280.GeneralNames().subtype(**explicit(1))),
    )


class CRLStatus(univ.Sequence):
    """CRLStatus ::= SEQUENCE { source CRLSource, thisUpdate Time OPTIONAL }"""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("source", CRLSource()),
        namedtype.OptionalNamedType("thisUpdate", rfc5280.Time()),
    )


class CRLStatusListValue(univ.SequenceOf):
    """CRLStatusListValue ::= SEQUENCE SIZE (1..MAX) OF CRLStatus"""

    componentType = CRLStatus()
    sizeSpec = constraint.ValueSizeConstraint(1, MAX)


class CRLsValue(univ.SequenceOf):
    """CRLsValue ::= SEQUENCE SIZE (1..MAX) OF CertificateList"""

    componentType = CertificateList()
    sizeSpec = constraint.ValueSizeConstraint(1, MAX)


# The tag class used by explicit context tags, exported for builders.
CONTEXT = tag.tagClassContext

_importspeed.end()
