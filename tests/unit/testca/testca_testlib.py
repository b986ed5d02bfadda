"""Request builders for the test CA's unit tests.

Requests are made with :mod:`cmpclient.message` and :mod:`cmpclient.protection` only
(never :mod:`cmpclient.client`), then sent straight to :meth:`TestCA.handle`.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes as _hashes
from cryptography.hazmat.primitives import serialization

from cmpclient.keys import generate_key, load_private_key
from cmpclient.message import body as B  # noqa: F401  (re-exported for tests)
from cmpclient.message.header import HeaderBuilder
from cmpclient.message.parse import ParsedMessage, parse_message
from cmpclient.message.pkimessage import assemble, encode_message
from cmpclient.message.request import CertRequestBuilder
from cmpclient.protection import MACProtection, PBMParams, SignatureProtection, popo_signer, protect_message
from cmpclient.testca import DEFAULT_CONFIG_TOML

CA_DN = "CN=ManagementCA,O=cmpclient test,C=SE"

#: Aliases the tests add to the default configuration (fault injection and other modes).
EXTRA_ALIASES = """
[[end_entity]]
username = "dnuser"
password = "secretou"
dn = "CN=dnuser,OU=secretou,O=cmpclient test,C=SE"
ee_profile = "CMP_ENTITY"

[alias.poll]
mode = "ra"
auth_modules = ["HMAC"]
hmac_secret = "password"
ca = "ManagementCA"
cert_profile = "CMP_CERT"
response_protection = "signature"
faults = { poll_count = 2, check_after = 3 }

[alias.reject]
mode = "ra"
auth_modules = ["HMAC"]
hmac_secret = "password"
ca = "ManagementCA"
faults = { force_reject = "badCertTemplate" }

[alias.forceerr]
mode = "ra"
auth_modules = ["HMAC"]
hmac_secret = "password"
ca = "ManagementCA"
faults = { force_error = "systemUnavail" }

[alias.unprot]
mode = "ra"
auth_modules = ["HMAC"]
hmac_secret = "password"
ca = "ManagementCA"
faults = { unprotected_responses = true, delay_ms = 1 }

[alias.dnpart]
mode = "client"
auth_modules = ["DnPartPwd"]
auth_parameters = { DnPartPwd = "OU" }
extract_username_component = "CN"

[alias.clientcert]
mode = "client"
auth_modules = ["EndEntityCertificate", "HMAC"]
extract_username_component = "CN"
allow_automatic_key_update = false
allow_same_key_renewal = false

[alias.random]
mode = "ra"
auth_modules = ["HMAC"]
hmac_secret = "password"
ra_name_generation = { scheme = "RANDOM", prefix = "r-" }
ca = "ManagementCA"
cert_profile = "ENDUSER"

[alias.nokeyprof]
mode = "ra"
auth_modules = ["HMAC"]
hmac_secret = "password"
ca = "ManagementCA"
cert_profile = "ENDUSER"
allow_server_keygen = true
"""

TEST_CONFIG_TOML = DEFAULT_CONFIG_TOML + EXTRA_ALIASES


def header(
    *,
    sender: str | x509.Name = "CN=requester",
    recipient: str | x509.Name = CA_DN,
    pvno: int = 2,
    tid: bytes | None = None,
    nonce: bytes | None = None,
    recip_nonce: bytes | None = None,
    sender_kid: bytes | None = None,
    implicit_confirm: bool = False,
    message_time: Any = None,
) -> Any:
    hb = HeaderBuilder().pvno(pvno).sender(sender).recipient(recipient)
    if tid is not None:
        hb = hb.transaction_id(tid)
    if nonce is not None:
        hb = hb.sender_nonce(nonce)
    if recip_nonce is not None:
        hb = hb.recip_nonce(recip_nonce)
    if sender_kid is not None:
        hb = hb.sender_kid(sender_kid)
    if implicit_confirm:
        hb = hb.implicit_confirm()
    if message_time is not None:
        hb = hb.message_time(message_time)
    return hb.build()


def mac(secret: bytes = b"password", kid: bytes | None = b"ra", iterations: int = 1000) -> MACProtection:
    return MACProtection(secret, PBMParams.new(iterations=iterations), sender_kid=kid)


def sig(key: Any, cert: x509.Certificate, chain: Sequence[x509.Certificate] = ()) -> SignatureProtection:
    return SignatureProtection(key, cert, chain=chain)


def message(body: Any, protection: Any = None, *, extra_certs: Sequence[bytes] = (), **hdr: Any) -> bytes:
    if protection is not None and "sender_kid" not in hdr and isinstance(protection, MACProtection):
        pass
    msg = assemble(header(**hdr), body, extra_certs=extra_certs)
    if protection is not None:
        msg = protect_message(msg, protection)
    return encode_message(msg)


def cert_req(subject: str | None, key: Any = None, *, popo: str = "signature", cert_req_id: int = 0, **kw: Any) -> Any:
    b = CertRequestBuilder().cert_req_id(cert_req_id)
    if subject is not None:
        b = b.subject(subject)
    if key is not None:
        b = b.public_key(key)
    for name, value in kw.items():
        if name == "controls":
            for oid, der in value:
                b = b.control(oid, der)
        else:
            b = getattr(b, name)(*value) if isinstance(value, tuple) else getattr(b, name)(value)
    if popo == "signature":
        b = b.popo_signature(popo_signer(key))
    elif popo == "raVerified":
        b = b.popo_ra_verified()
    elif popo == "none":
        b = b.popo_none()
    elif popo == "keyEncipherment":
        b = b.popo_key_encipherment()
    return b.build()


def send(ca: Any, alias: str, der: bytes) -> ParsedMessage:
    status, out = ca.handle(alias, der)
    assert status == 200
    return parse_message(out)


def ir(ca: Any, alias: str, subject: str, key: Any = None, *, protection: Any = None, kind: str = "ir", popo: str = "signature",
       hdr: dict | None = None, **kw: Any) -> ParsedMessage:
    key = key if key is not None else generate_key("secp256r1")
    body = B.cert_req_body(kind, [cert_req(subject, key, popo=popo, **kw)])
    return send(ca, alias, message(body, protection, **(hdr or {})))


def error_of(rsp: ParsedMessage) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(body type, failInfo, texts) of an error or a single-response rejection."""
    if rsp.body_type == "error":
        return "error", rsp.content.status.fail_info, rsp.content.status.texts
    if rsp.body_type in ("ip", "cp", "kup"):
        st = rsp.content.responses[0].status
        return rsp.body_type, st.fail_info, st.texts
    if rsp.body_type == "rp":
        st = rsp.content.statuses[0]
        return "rp", st.fail_info, st.texts
    raise AssertionError(f"unexpected body {rsp.body_type}")


def issued_cert(rsp: ParsedMessage, cert_req_id: int = 0) -> x509.Certificate:
    r = rsp.content.response(cert_req_id)
    assert r.status.status == "accepted", r.status
    return x509.load_der_x509_certificate(r.certificate)


def load_material(data_dir: Path, directory: str, name: str) -> tuple[Any, x509.Certificate]:
    key = load_private_key(data_dir / directory / f"{name}.key.pem")
    cert = x509.load_pem_x509_certificate((data_dir / directory / f"{name}.pem").read_bytes())
    return key, cert


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def self_signed(subject: str = "CN=stranger", key: Any = None) -> tuple[Any, x509.Certificate]:
    """A key and a self-signed end-entity certificate this CA never saw."""
    key = key or generate_key("secp256r1")
    t = now()
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string(subject))
        .issuer_name(x509.Name.from_rfc4514_string(subject)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(t - _dt.timedelta(hours=1))
        .not_valid_after(t + _dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, _hashes.SHA256())
    )
    return key, cert


def p10cr_message(subject: str, protection: Any = None, *, corrupt: bool = False, key: Any = None, **hdr: Any) -> bytes:
    key = key or generate_key("secp256r1")
    csr = (
        x509.CertificateSigningRequestBuilder().subject_name(x509.Name.from_rfc4514_string(subject))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("p10.example")]), critical=False)
        .sign(key, _hashes.SHA256())
    )
    data = bytearray(csr.public_bytes(serialization.Encoding.DER))
    if corrupt:
        data[-3] ^= 0x55  # inside the signature value
    return message(B.p10cr_body(bytes(data)), protection, **hdr)


def poposk_input_request(sender: str, subject: str = "CN=poposk,UID=poposk") -> Any:
    """A CertReqMsg whose POPO signs a POPOSigningKeyInput naming ``sender``; the subject is
    added to the template afterwards (it is not covered by that signature)."""
    from cmpclient.message.names import name_to_asn1
    from cmpclient.protection import popo_signer

    key = generate_key("secp256r1")
    crm = CertRequestBuilder().public_key(key).popo_signature(popo_signer(key), sender=sender).build()
    template = crm["certReq"]["certTemplate"]
    template["subject"] = name_to_asn1(subject, template.componentType["subject"].asn1Object)
    return crm
