"""certConf (lenient and strict), genm, polling, nested messages and fault injection."""

from __future__ import annotations

import datetime as dt
import hashlib
import os

from cryptography import x509
from testca_testlib import CA_DN, cert_req, der, error_of, ir, issued_cert, mac, message, send, sig

from cmpclient.asn1 import cmp, codec, oids
from cmpclient.keys import generate_key
from cmpclient.message import body as B
from cmpclient.message.names import parse_dn
from cmpclient.protection import certificate_hash, verify_protection


def _conf(testca, alias, rsp, cert, protection, *, status=None, hash_value=None, recip_nonce=None, cert_req_id=0):
    h = hash_value if hash_value is not None else certificate_hash(der(cert))[0]
    body = B.cert_conf_body([B.cert_status(cert_req_id, h, status=status)])
    return send(testca, alias, message(body, protection, tid=rsp.header.transaction_id,
                                       recip_nonce=recip_nonce if recip_nonce is not None else rsp.header.sender_nonce))


def _record(testca, cert):
    return testca.store.find_by_fingerprint(hashlib.sha256(der(cert)).hexdigest())


# --- certConf --------------------------------------------------------------------------------------


def test_lenient_cert_conf_gets_pkiconf(testca) -> None:
    rsp = ir(testca, "ra", "CN=conf1,UID=conf1", protection=mac())
    cert = issued_cert(rsp)
    conf = _conf(testca, "ra", rsp, cert, mac(), hash_value=b"\x00" * 32)  # EJBCA ignores the content
    assert conf.body_type == "pkiconf" and conf.protected
    verify_protection(conf.der, conf.message, secret=b"password")


def test_lenient_cert_conf_without_transaction(testca) -> None:
    body = B.cert_conf_body([B.cert_status(0, b"\x00" * 32)])
    conf = send(testca, "ra", message(body, mac()))
    assert conf.body_type == "pkiconf"


def test_lwcmp_full_flow_and_strict_checks(testca) -> None:
    key = generate_key("secp256r1")
    first_der = message(B.cert_req_body("ir", [cert_req("CN=lw1", key)]), mac(kid=b"lw"))
    rsp = send(testca, "lwcmp", first_der)
    assert rsp.body_type == "ip", rsp.content
    cert = issued_cert(rsp)
    verify_protection(rsp.der, rsp.message, secret=b"password")
    issuing, root = testca.ca("ManagementCA").cert, testca.ca("RootCA").cert
    assert rsp.content.ca_pubs == (der(issuing), der(root))
    assert rsp.extra_certs[:2] == (der(issuing), der(root))
    assert not _record(testca, cert).confirmed

    # The same message again: its transactionID is in use.
    assert error_of(send(testca, "lwcmp", first_der))[:2] == ("error", ("transactionIdInUse",))

    # A signature with the unconfirmed certificate is not accepted yet.
    early = ir(testca, "lwcmp", "CN=lw1", generate_key("secp256r1"), protection=sig(key, cert), kind="cr")
    assert error_of(early)[:2] == ("error", ("badRequest",))

    # certConf: wrong recipNonce, wrong hash, then right.
    assert error_of(_conf(testca, "lwcmp", rsp, cert, mac(kid=b"lw"), recip_nonce=os.urandom(16)))[:2] == ("error", ("badRecipientNonce",))
    assert error_of(_conf(testca, "lwcmp", rsp, cert, mac(kid=b"lw"), hash_value=b"\x01" * 32))[:2] == ("error", ("badCertId",))
    ok = _conf(testca, "lwcmp", rsp, cert, mac(kid=b"lw"))
    assert ok.body_type == "pkiconf"
    assert _record(testca, cert).confirmed
    assert error_of(_conf(testca, "lwcmp", rsp, cert, mac(kid=b"lw"), recip_nonce=ok.header.sender_nonce))[:2] == ("error", ("badRequest",))

    # Now the certificate signs a cr for its own subject; MAC is for ir only.
    cr = ir(testca, "lwcmp", "CN=lw1", generate_key("secp256r1"), protection=sig(key, cert), kind="cr",
            hdr=dict(implicit_confirm=True))
    assert cr.body_type == "cp" and cr.header.implicit_confirm
    issued_cert(cr)
    assert error_of(ir(testca, "lwcmp", "CN=lw1", protection=mac(kid=b"lw"), kind="cr"))[:2] == ("error", ("badRequest",))
    other = ir(testca, "lwcmp", "CN=someone-else", protection=sig(key, cert), kind="cr")
    assert error_of(other)[:2] == ("cp", ("notAuthorized",))
    # genm signed by the certificate is accepted.
    genm = send(testca, "lwcmp", message(B.genm_body([(oids.IT_CA_CERTS, None)]), sig(key, cert)))
    assert genm.body_type == "genp"


def test_lwcmp_certconf_rejection_revokes(testca) -> None:
    rsp = ir(testca, "lwcmp", "CN=lw2", protection=mac(kid=b"lw"))
    cert = issued_cert(rsp)
    conf = _conf(testca, "lwcmp", rsp, cert, mac(kid=b"lw"), status="rejection")
    assert conf.body_type == "pkiconf"
    assert _record(testca, cert).revoked


def test_lwcmp_replayed_nonce_and_bad_time(testca) -> None:
    nonce = os.urandom(16)
    first = ir(testca, "lwcmp", "CN=lw3", protection=mac(kid=b"lw"), hdr=dict(nonce=nonce))
    assert first.body_type == "ip"
    replay = ir(testca, "lwcmp", "CN=lw3", protection=mac(kid=b"lw"), hdr=dict(nonce=nonce))
    assert error_of(replay)[:2] == ("error", ("badSenderNonce",))
    late = ir(testca, "lwcmp", "CN=lw3", protection=mac(kid=b"lw"),
              hdr=dict(message_time=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)))
    assert error_of(late)[:2] == ("error", ("badTime",))
    untimed = ir(testca, "lwcmp", "CN=lw3", protection=mac(kid=b"lw"), hdr=dict(message_time=False))
    assert error_of(untimed)[:2] == ("error", ("badTime",))


# --- genm ------------------------------------------------------------------------------------------------


def _crl_status_list() -> bytes:
    def tlv(tag: int, content: bytes) -> bytes:
        return codec.der_header(tag, len(content)) + content

    gn = tlv(0xA4, parse_dn(CA_DN).public_bytes())
    return tlv(0x30, tlv(0x30, tlv(0xA1, tlv(0x30, gn))))


def test_genm_every_info_type(testca) -> None:
    items = [(oids.IT_CA_CERTS, None), (oids.IT_ROOT_CA_KEY_UPDATE, None), (oids.IT_CERT_REQ_TEMPLATE, None),
             (oids.IT_CRL_STATUS_LIST, _crl_status_list()), (oids.IT_CURRENT_CRL, None)]
    rsp = send(testca, "ra", message(B.genm_body(items), mac()))
    assert rsp.body_type == "genp"
    verify_protection(rsp.der, rsp.message, secret=b"password")
    got = dict(rsp.content)
    ca_certs = codec.decode(got[oids.IT_CA_CERTS], cmp.CACertsValue())
    assert [bytes(c) for c in ca_certs] == [der(testca.ca("ManagementCA").cert), der(testca.ca("RootCA").cert)]
    assert oids.IT_ROOT_CA_KEY_UPDATE in got and got[oids.IT_ROOT_CA_KEY_UPDATE] is None
    template = codec.decode(got[oids.IT_CERT_REQ_TEMPLATE], cmp.CertReqTemplateContent())
    assert template["certTemplate"]["extensions"].isValue and template["keySpec"].isValue
    assert str(template["keySpec"][0]["type"]) == oids.REGCTRL_RSA_KEY_LEN
    crls = codec.decode(got[oids.IT_CRLS], cmp.CRLsValue())
    crl = x509.load_der_x509_crl(bytes(crls[0]))
    assert crl.issuer == testca.ca("ManagementCA").subject
    assert crl.is_signature_valid(testca.ca("ManagementCA").cert.public_key())
    current = x509.load_der_x509_crl(got[oids.IT_CURRENT_CRL])
    assert current.issuer == testca.ca("ManagementCA").subject


def test_genm_unauthenticated_is_refused(testca) -> None:
    rsp = send(testca, "ra", message(B.genm_body([(oids.IT_CA_CERTS, None)])))
    assert error_of(rsp)[:2] == ("error", ("badRequest",))


# --- polling ----------------------------------------------------------------------------------------------


def test_polling_fault(testca) -> None:
    key = generate_key("secp256r1")
    rsp = ir(testca, "poll", "CN=polled", key, protection=mac())
    assert rsp.body_type == "ip" and rsp.content.responses[0].status.status == "waiting"
    assert rsp.content.responses[0].certificate is None
    tid, last = rsp.header.transaction_id, rsp
    poll = lambda prev: send(testca, "poll", message(B.poll_req_body([0]), mac(), tid=tid, recip_nonce=prev.header.sender_nonce))  # noqa: E731
    first = poll(last)
    assert first.body_type == "pollRep" and first.content[0].check_after == 3 and first.content[0].cert_req_id == 0
    final = poll(first)
    assert final.body_type == "ip"
    cert = issued_cert(final)
    assert cert.public_key() == key.public_key() and final.content.ca_pubs
    conf = _conf(testca, "poll", final, cert, mac())
    assert conf.body_type == "pkiconf"
    stray = poll(conf)
    assert error_of(stray)[:2] == ("error", ("badRequest",))


# --- nested ----------------------------------------------------------------------------------------------------


def _inner(subject: str) -> bytes:
    key = generate_key("secp256r1")
    return message(B.cert_req_body("ir", [cert_req(subject, key)]), sender=subject, tid=os.urandom(16), nonce=os.urandom(16))


def _nested(inner: list[bytes], key, cert) -> bytes:
    return message(B.nested_body(inner), sig(key, cert), sender=cert.subject)


def test_nested_one_inner(testca, ra_admin) -> None:
    key, cert = ra_admin
    inner = _inner("CN=nested1")
    rsp = send(testca, "nested", _nested([inner], key, cert))
    assert rsp.body_type == "ip"
    from cmpclient.message.parse import parse_message

    sent = parse_message(inner)
    assert rsp.header.transaction_id == sent.header.transaction_id
    assert rsp.header.recip_nonce == sent.header.sender_nonce
    assert issued_cert(rsp).subject == parse_dn("CN=nested1")
    verify_protection(rsp.der, rsp.message, trusted=[testca.ca("RootCA").cert])


def test_nested_three_inner(testca, ra_admin) -> None:
    from cmpclient.message.parse import parse_message

    key, cert = ra_admin
    inner = [_inner(f"CN=batch{i}") for i in range(3)]
    rsp = send(testca, "nested", _nested(inner, key, cert))
    assert rsp.body_type == "nested" and rsp.protected
    answers = [parse_message(d) for d in rsp.content]
    assert [a.body_type for a in answers] == ["ip", "ip", "ip"]
    assert [a.header.transaction_id for a in answers] == [parse_message(d).header.transaction_id for d in inner]
    assert [issued_cert(a).subject for a in answers] == [parse_dn(f"CN=batch{i}") for i in range(3)]


def test_nested_untrusted_signer(testca, client_material) -> None:
    key, cert = client_material
    rsp = send(testca, "nested", _nested([_inner("CN=nestedbad")], key, cert))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi, rsp.protected) == ("error", ("badRequest",), False) and "trusted RA" in texts[0]


def test_nested_too_deep(testca, ra_admin) -> None:
    key, cert = ra_admin
    der_msg = _inner("CN=deep")
    for _ in range(16):
        der_msg = _nested([der_msg], key, cert)
    rsp = send(testca, "nested", der_msg)
    kind, fi, texts = error_of(rsp)
    assert (kind, fi) == ("error", ("badRequest",)) and "deeper than 15" in texts[0]
    shallow = _inner("CN=deep-ok")
    for _ in range(3):
        shallow = _nested([shallow], key, cert)
    assert send(testca, "nested", shallow).body_type == "ip"


def test_nested_not_accepted_on_other_aliases(testca, ra_admin) -> None:
    key, cert = ra_admin
    rsp = send(testca, "ra", _nested([_inner("CN=nested-ra")], key, cert))
    assert error_of(rsp)[:2] == ("error", ("badRequest",))


# --- faults -------------------------------------------------------------------------------------------------------


def test_forced_rejection_and_error(testca) -> None:
    rej = ir(testca, "reject", "CN=forced", protection=mac())
    assert error_of(rej)[:2] == ("ip", ("badCertTemplate",)) and rej.protected
    err = ir(testca, "forceerr", "CN=forced", protection=mac())
    assert error_of(err)[:2] == ("error", ("systemUnavail",)) and not err.protected


def test_unprotected_responses(testca) -> None:
    rsp = ir(testca, "unprot", "CN=unprot", protection=mac())
    assert rsp.body_type == "ip" and not rsp.protected
    issued_cert(rsp)


def test_genm_client_mode_hmac_and_signature(testca, client_material) -> None:
    rsp = send(testca, "client", message(B.genm_body([(oids.IT_CA_CERTS, None)]), mac(secret=b"foo123", kid=b"client1")))
    assert rsp.body_type == "genp"
    key, cert = client_material
    rsp = send(testca, "clientcert", message(B.genm_body([(oids.IT_CA_CERTS, None)]), sig(key, cert)))
    assert rsp.body_type == "genp"


def test_tcp_alias_behaves_like_ra(testca) -> None:
    assert testca.tcp_alias == "tcp" and testca.alias_exists("tcp")
    rsp = ir(testca, "tcp", "CN=tcpdev,UID=tcpdev", protection=mac())
    verify_protection(rsp.der, rsp.message, secret=b"password")
    issued_cert(rsp)
    assert testca.store.get_end_entity("cmptcpdev") is not None


def test_testca_never_imports_client_or_cli() -> None:
    import ast
    from pathlib import Path

    import cmpclient.testca as pkg

    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(("cmpclient.client", "cmpclient.cli")), f"{path.name} imports {name}"
