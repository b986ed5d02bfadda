"""The name tables of CMP (RFC 9810) that code reads without the schema: PKIStatus and
PKIFailureInfo names, the PKIBody alternatives in tag order.

Plain tuples, no pyasn1, so that the DER fast paths (:mod:`cmpclient.message.peek`,
:mod:`cmpclient.message.fastparse`, :mod:`cmpclient.message.status`) can name things
without loading it.  :mod:`cmpclient.asn1.cmp` builds its named values and ``PKIBody`` from
these same tables (and re-exports them): one source of truth.
"""

from __future__ import annotations

#: PKIStatus ::= INTEGER { accepted(0), ..., keyUpdateWarning(6) }, by number.
PKI_STATUS_NAMES = (
    "accepted",
    "grantedWithMods",
    "rejection",
    "waiting",
    "revocationWarning",
    "revocationNotification",
    "keyUpdateWarning",
)

#: PKIFailureInfo ::= BIT STRING { badAlg(0), ..., duplicateCertReq(26) } (RFC 9810 §5.2.3), by bit.
FAIL_INFO_NAMES = (
    "badAlg",
    "badMessageCheck",
    "badRequest",
    "badTime",
    "badCertId",
    "badDataFormat",
    "wrongAuthority",
    "incorrectData",
    "missingTimeStamp",
    "badPOP",
    "certRevoked",
    "certConfirmed",
    "wrongIntegrity",
    "badRecipientNonce",
    "timeNotAvailable",
    "unacceptedPolicy",
    "unacceptedExtension",
    "addInfoNotAvailable",
    "badSenderNonce",
    "badCertTemplate",
    "signerNotTrusted",
    "transactionIdInUse",
    "unsupportedVersion",
    "notAuthorized",
    "systemUnavail",
    "systemFailure",
    "duplicateCertReq",
)

#: The PKIBody alternatives by tag number ([0] ir ... [26] pollRep, RFC 9810 §5.1.2).
BODY_NAMES: tuple[str, ...] = (
    "ir", "ip", "cr", "cp", "p10cr", "popdecc", "popdecr", "kur", "kup", "krr", "krp", "rr", "rp",
    "ccr", "ccp", "ckuann", "cann", "rann", "crlann", "pkiconf", "nested", "genm", "genp", "error",
    "certConf", "pollReq", "pollRep",
)

#: The bodies that carry a CertRepMessage (certificate answers).
CERT_REP_BODIES = frozenset({"ip", "cp", "kup", "ccp"})
