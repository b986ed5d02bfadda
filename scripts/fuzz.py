#!/usr/bin/env python3
"""Fuzz the client's response handling and the test CA's ``handle()`` (issue #6).

    python scripts/fuzz.py --count 500000 --seed 1 --processes 2 --out /tmp/fuzz   # x 2 targets = 1 000 000 inputs

Inputs come from five generators, chosen per input from a seeded RNG (input ``i`` of
seed ``S`` is reproducible on its own: ``--only-index i``):

* ``mutate``  -- a real message (openssl's recorded vectors in tests/vectors/ and
  messages our own builders and test CA produce, made fresh at start-up) with 1-4
  byte-level mutations: bit flips, byte sets, inserts, deletes, truncation, DER length
  edits (short, long, huge, indefinite, non-minimal), tag swaps, splices with another
  message, TLV duplication and nesting bombs inside the message;
* ``random``  -- random DER trees with CMP-ish tags, often in the PKIMessage skeleton;
* ``struct``  -- structurally valid PKIMessages from our builders with random field
  values (body type, pvno, IDs, nonces, names, generalInfo, protection with the right
  or a wrong secret, PBM iteration counts around the 10 000 bound);
* ``bomb``    -- deep nesting (up to 100 000 levels), huge declared lengths, many elements;
* ``deep``    -- (client only) a full client operation (enroll with certConf, revoke,
  genm) against a fake server whose answers are *correctly protected* (right
  transactionID, recipNonce and MAC) but whose body was mutated: reaches every check
  after protection.

Targets and what counts as a bug:

* ``ca``: ``TestCA.handle(alias, der)`` over several aliases must return ``(200, der)``
  with ``der`` a parseable PKIMessage; it must never raise.  A ``systemFailure`` error
  is counted as a bug too (an input the CA did not classify).
* ``client``: ``parse_message`` + ``Transaction.send_der`` (all response checks) with
  a fake transport answering the fuzzed bytes, and the ``deep`` operations above: any
  exception that is not a :class:`cmpclient.errors.CMPClientError` is a bug.

Every call is timed; one over ``--hang-after`` seconds (default 2) is a hang, and a call
still running after 20 s is interrupted with SIGALRM and reported as a hang.

The report (JSON, also printed) has counts per generator, per target outcome (CMP
answer body/failInfo, client error class/exit code), bugs with the first reproducers
(saved under ``--out``), the slowest calls and the rate.
"""

from __future__ import annotations

import argparse
import collections
import datetime as _dt
import json
import multiprocessing as mp
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SECRET = b"password"  # the default test CA's RA/alias secret
VECTOR_SECRET = b"vector-secret-1234"
CA_ALIASES = ["ra", "client", "ra-sig", "keyid", "nested", "servergen", "3gpp", "tcp", "lwcmp", "indirect"]
GENERATORS = [("mutate", 64), ("random", 12), ("struct", 16), ("bomb", 4), ("deep", 4)]
CALL_ALARM = 20


class Hang(Exception):
    pass


# ============================================================================ corpus


def build_corpus(data_dir: Path) -> dict[str, Any]:
    """Messages to mutate: openssl's vectors plus a fresh run of our client against our CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from cmpclient.client import ClientConfig, enroll
    from cmpclient.client.operations import general_message, revoke
    from cmpclient.keys import generate_key
    from cmpclient.message.parse import parse_message
    from cmpclient.message.request import CertRequestBuilder
    from cmpclient.protection import MACProtection, SignatureProtection, popo_signer
    from cmpclient.testca import TestCA

    ca = TestCA.open(None, data_dir)
    requests: list[tuple[str, bytes]] = []
    responses: list[dict[str, Any]] = []

    class Local:
        def __init__(self, alias: str) -> None:
            self.alias = alias

        def send(self, der: bytes) -> bytes:
            requests.append((self.alias, der))
            status, out = ca.handle(self.alias, der)
            responses.append({"alias": self.alias, "der": out, "source": "testca"})
            return out

    def cfg(alias: str, **kw: Any) -> Any:
        kw.setdefault("protection", MACProtection(SECRET, sender_kid=b"fuzz"))
        return ClientConfig(transport=Local(alias), recipient="CN=ManagementCA,O=cmpclient test,C=SE",
                            trusted=[ca.ca("RootCA").cert], untrusted=[ca.ca("ManagementCA").cert], **kw)

    key = generate_key("secp256r1")
    deep_req = CertRequestBuilder().subject("CN=fuzz-deep,UID=fuzz-deep,O=cmpclient test").public_key(key)
    deep_req = deep_req.popo_signature(popo_signer(key)).build()
    res = enroll(cfg("ra"), "ir", deep_req)
    deep_templates = {"ir": [r["der"] for r in responses[-2:]]}  # ip, pkiconf
    enroll(cfg("ra", implicit_confirm=True), "cr", deep_req)
    from cryptography.x509.oid import NameOID

    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz-p10"),
                                    x509.NameAttribute(NameOID.USER_ID, "fuzz-p10")]))
           .sign(key, hashes.SHA256()))
    try:
        enroll(cfg("ra"), "p10cr", csr.public_bytes(serialization.Encoding.DER))
    except Exception as exc:  # noqa: BLE001 - the corpus keeps whatever came back
        print(f"corpus: p10cr: {exc}", file=sys.stderr)
    n = len(responses)
    revoke(cfg("ra"), res.certificate.issuer, res.certificate.serial_number, reason="keyCompromise")
    deep_templates["rr"] = [responses[n]["der"]]
    n = len(responses)
    general_message(cfg("ra"))
    deep_templates["genm"] = [responses[n]["der"]]
    # signature-protected requests (RA admin) and the CA's signed answers
    ra_cert = x509.load_pem_x509_certificate((data_dir / "ra" / "raadmin.pem").read_bytes())
    ra_key = serialization.load_pem_private_key((data_dir / "ra" / "raadmin.key.pem").read_bytes(), None)
    sig = SignatureProtection(ra_key, ra_cert)  # type: ignore[arg-type]
    k2 = generate_key("secp256r1")
    r2 = CertRequestBuilder().subject("CN=fuzz-sig,O=cmpclient test").public_key(k2).popo_signature(popo_signer(k2)).build()
    for alias in ("ra-sig", "lwcmp"):
        try:
            enroll(cfg(alias, protection=sig if alias == "ra-sig" else MACProtection(SECRET, sender_kid=b"fuzz")), "ir", r2)
        except Exception as exc:  # noqa: BLE001
            print(f"corpus: {alias}: {exc}", file=sys.stderr)
    # nested: an RA wraps an ir
    try:
        from cmpclient.message.body import nested_body
        from cmpclient.message.header import HeaderBuilder
        from cmpclient.message.pkimessage import assemble, encode_message
        from cmpclient.protection import protect_message

        inner = requests[0][1]
        h = HeaderBuilder().sender(ra_cert.subject).recipient("CN=ManagementCA,O=cmpclient test,C=SE").build()
        outer = encode_message(protect_message(assemble(h, nested_body([inner])), sig))
        Local("nested").send(outer)
    except Exception as exc:  # noqa: BLE001
        print(f"corpus: nested: {exc}", file=sys.stderr)
    for junk in (b"", b"junk", b"\x30\x00", b"\x30\x03\x02\x01\x02"):
        Local("ra").send(junk)
    # openssl's vectors
    trusted_pem = REPO / "fixtures" / "pki" / "trusted.pem"
    vec = REPO / "tests" / "vectors" / "openssl"
    if vec.is_dir():
        for d in sorted(vec.iterdir()):
            for f in sorted(d.glob("req*.der")):
                requests.append(("ra", f.read_bytes()))
            for f in sorted(d.glob("rsp*.der")):
                responses.append({"alias": None, "der": f.read_bytes(), "source": "openssl"})
    # response contexts for the client target
    for r in responses:
        try:
            p = parse_message(r["der"])
            r["tid"] = p.header.transaction_id
            r["nonce"] = p.header.recip_nonce
            r["body"] = p.body_type
        except Exception:  # noqa: BLE001
            r["tid"] = r["nonce"] = None
            r["body"] = "junk"
    ca_certs = [c.cert.public_bytes(serialization.Encoding.DER) for c in ca.cas.values()]
    ca.close()
    return {
        "requests": requests,
        "responses": [r for r in responses if r["der"]],
        "deep_request": deep_req_der(deep_req),
        "deep_key_spki": key.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo),
        "deep_templates": deep_templates,
        "ca_certs": ca_certs,
        "trusted_pem": trusted_pem.read_bytes() if trusted_pem.is_file() else b"",
        "ra_cert": ra_cert.public_bytes(serialization.Encoding.DER),
        "ra_key": ra_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()),
    }


def deep_req_der(req: Any) -> bytes:
    from cmpclient.asn1 import codec

    return codec.encode(req)


# ============================================================================ DER helpers

_TAGS = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0C, 0x13, 0x16, 0x17, 0x18, 0x30, 0x31,
         *range(0x80, 0x89), *range(0xA0, 0xBB)]


def der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + der_len(len(content)) + content


def tlv_offsets(data: bytes, limit: int = 400) -> list[tuple[int, int, int]]:
    """(start, header_len, content_len) of the TLVs found by walking constructed values."""
    out: list[tuple[int, int, int]] = []
    stack = [(0, len(data))]
    while stack and len(out) < limit:
        pos, end = stack.pop()
        while pos < end and len(out) < limit:
            if pos + 2 > len(data):
                break
            tag = data[pos]
            if tag & 0x1F == 0x1F:
                break
            first = data[pos + 1]
            if first < 0x80:
                hl, ln = 2, first
            else:
                nb = first & 0x7F
                if nb == 0 or nb > 4 or pos + 2 + nb > len(data):
                    break
                hl, ln = 2 + nb, int.from_bytes(data[pos + 2:pos + 2 + nb], "big")
            if pos + hl + ln > end:
                break
            out.append((pos, hl, ln))
            if tag & 0x20:
                stack.append((pos + hl, pos + hl + ln))
            pos += hl + ln
    return out


# ============================================================================ generators


def mutate(rng: random.Random, data: bytes, corpus_ders: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        op = rng.randrange(12)
        if not b:
            b = bytearray(rng.randbytes(rng.randrange(1, 16)))
            continue
        if op == 0:  # bit flip
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # byte set
            i = rng.randrange(len(b))
            b[i] = rng.choice((0, 0xFF, 0x7F, 0x80, 0x81, 0x30, rng.randrange(256)))
        elif op == 2:  # insert
            i = rng.randrange(len(b) + 1)
            b[i:i] = rng.randbytes(rng.randrange(1, 9))
        elif op == 3:  # delete range
            i = rng.randrange(len(b))
            del b[i:i + rng.randrange(1, 33)]
        elif op == 4:  # truncate
            del b[rng.randrange(len(b)):]
        elif op in (5, 6):  # length-field edit
            offs = tlv_offsets(bytes(b))
            if offs:
                pos, hl, ln = rng.choice(offs)
                choice = rng.randrange(7)
                if choice == 0:
                    new = der_len(max(0, ln + rng.choice((-2, -1, 1, 2))))
                elif choice == 1:
                    new = b"\x84\xff\xff\xff\xff"
                elif choice == 2:
                    new = b"\x80"  # indefinite (BER)
                elif choice == 3:
                    new = b"\x82" + ln.to_bytes(2, "big") if ln < 65536 else der_len(ln)  # non-minimal
                elif choice == 4:
                    new = b"\x89" + rng.randbytes(9)  # too many length bytes
                elif choice == 5:
                    new = der_len(0)
                else:
                    new = der_len(rng.randrange(1 << rng.randrange(1, 24)))
                b[pos + 1:pos + hl] = new
        elif op == 7:  # tag swap
            offs = tlv_offsets(bytes(b))
            if offs:
                pos, _, _ = rng.choice(offs)
                b[pos] = rng.choice(_TAGS) if rng.random() < 0.8 else rng.randrange(256)
        elif op == 8:  # splice with another message (or itself)
            other = rng.choice(corpus_ders) if corpus_ders else bytes(b)
            if other:
                i, j = rng.randrange(len(b)), rng.randrange(len(other))
                b[i:] = other[j:j + rng.randrange(1, 400)] + b[i + rng.randrange(0, 400):]
        elif op == 9:  # duplicate or drop a TLV
            offs = tlv_offsets(bytes(b))
            if offs:
                pos, hl, ln = rng.choice(offs)
                piece = bytes(b[pos:pos + hl + ln])
                if rng.random() < 0.5:
                    b[pos:pos] = piece * rng.randrange(1, 4)
                else:
                    del b[pos:pos + hl + ln]
        elif op == 10:  # replace a TLV's content by a nesting bomb or random TLV
            offs = tlv_offsets(bytes(b))
            if offs:
                pos, hl, ln = rng.choice(offs)
                depth = rng.choice((5, 50, 200, 1000))
                inner = b"\x05\x00"
                for _ in range(depth):
                    inner = tlv(rng.choice((0x30, 0x31, 0xA0, 0xA1)), inner)
                b[pos:pos + hl + ln] = inner if rng.random() < 0.5 else tlv(b[pos], inner)
        else:  # random content replacement
            offs = tlv_offsets(bytes(b))
            if offs:
                pos, hl, ln = rng.choice(offs)
                b[pos + hl:pos + hl + ln] = rng.randbytes(ln)
    return bytes(b[:120_000])


def random_tree(rng: random.Random, depth: int = 0) -> bytes:
    kind = rng.random()
    if depth > 6 or kind < 0.45:
        tag = rng.choice((0x02, 0x04, 0x03, 0x06, 0x0C, 0x18, 0x05, 0x01, 0x80, 0x81, 0x82, 0x84))
        if tag == 0x02:
            content = rng.choice((b"\x00", b"\x02", b"\x03", b"\xff", b"\x00\x80", rng.randbytes(rng.randrange(1, 20))))
        elif tag == 0x06:
            content = rng.choice((b"\x2a\x86\x48\x86\xf6\x7d\x07\x42\x0d", b"\x2b\x06\x01\x05\x05\x07\x04\x0d",
                                  b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b", rng.randbytes(rng.randrange(0, 12))))
        elif tag == 0x18:
            content = rng.choice((b"20260101000000Z", b"99991231235959Z", b"2026", rng.randbytes(15)))
        elif tag == 0x05:
            content = b""
        elif tag == 0x01:
            content = rng.choice((b"\x00", b"\xff", b"\x01"))
        else:
            content = rng.randbytes(rng.randrange(0, 40))
        return tlv(tag, content)
    tag = rng.choice((0x30, 0x30, 0x31, *range(0xA0, 0xBB)))
    return tlv(tag, b"".join(random_tree(rng, depth + 1) for _ in range(rng.randrange(0, 5))))


def random_message(rng: random.Random) -> bytes:
    if rng.random() < 0.3:
        return random_tree(rng)
    pvno = tlv(0x02, bytes([rng.choice((1, 2, 3, 0, 4, 255))]))
    name = rng.choice((tlv(0xA4, tlv(0x30, b"")), tlv(0xA4, random_tree(rng)), random_tree(rng)))
    header_fields = [pvno, name, rng.choice((name, tlv(0xA4, tlv(0x30, b""))))]
    for t in range(0xA0, 0xA9):
        if rng.random() < 0.3:
            header_fields.append(tlv(t, rng.choice((tlv(0x04, rng.randbytes(rng.choice((0, 1, 16, 300)))),
                                                    random_tree(rng)))))
    header = tlv(0x30, b"".join(header_fields))
    body_tag = rng.choice(list(range(0xA0, 0xBB)) + [0x30, 0x04])
    body = tlv(body_tag, b"".join(random_tree(rng, 1) for _ in range(rng.randrange(0, 3))))
    extra = b""
    if rng.random() < 0.3:
        extra += tlv(0xA0, tlv(0x03, b"\x00" + rng.randbytes(rng.randrange(0, 64))))
    if rng.random() < 0.2:
        extra += tlv(0xA1, tlv(0x30, random_tree(rng)))
    return tlv(0x30, header + body + extra)


def bomb(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:  # deep nesting, well-formed lengths
        depth = rng.choice((100, 1000, 10_000, 40_000))
        inner = b"\x05\x00"
        for _ in range(depth):
            inner = tlv(rng.choice((0x30, 0xA0, 0xA2)), inner)
        return inner
    if kind == 1:  # nesting bomb inside a PKIMessage skeleton
        inner = b"\x05\x00"
        for _ in range(rng.choice((200, 2000, 20_000))):
            inner = tlv(0x30, inner)
        hdr = tlv(0x30, tlv(0x02, b"\x02") + tlv(0xA4, tlv(0x30, b"")) + tlv(0xA4, tlv(0x30, b"")))
        return tlv(0x30, hdr + tlv(0xB5, inner))
    if kind == 2:  # huge declared length
        return b"\x30\x84\x7f\xff\xff\xff" + rng.randbytes(rng.randrange(0, 64))
    if kind == 3:  # indefinite-length nesting (100 000 levels of 30 80)
        return b"\x30\x80" * rng.choice((1000, 100_000))
    if kind == 4:  # many small elements
        n = rng.choice((1000, 10_000, 30_000))
        return tlv(0x30, tlv(0x30, b"\x02\x01\x00" * n))
    # big but within 100 000 bytes: a genm with many OCTET STRINGs
    return tlv(0x30, tlv(0x30, tlv(0x02, b"\x02") + tlv(0xA4, tlv(0x30, b"")) * 2)
               + tlv(0xB5, tlv(0x30, tlv(0x04, rng.randbytes(90_000)))))


class StructGen:
    """Structurally valid PKIMessages from our builders with random field values."""

    def __init__(self, corpus: dict[str, Any]) -> None:
        from cmpclient.asn1 import codec, crmf

        self.req_der = corpus["deep_request"]
        self.req = codec.decode(self.req_der, crmf.CertReqMsg())
        self.ra_cert_der = corpus["ra_cert"]

    def __call__(self, rng: random.Random) -> bytes:
        from cmpclient.errors import CMPClientError

        try:
            return self._message(rng)
        except CMPClientError:  # a header builder refusing a value: fine, use a random one
            return random_message(rng)

    def _message(self, rng: random.Random) -> bytes:
        from cmpclient.message import body as B
        from cmpclient.message.header import HeaderBuilder
        from cmpclient.message.pkimessage import assemble, encode_message
        from cmpclient.protection import MACProtection, protect_message
        from cmpclient.protection.mac import PBMParams

        hb = HeaderBuilder().pvno(rng.choice((2, 2, 3, 1)))
        hb = hb.sender(rng.choice(("CN=fuzz,UID=fuzz" + str(rng.randrange(99)), "", "CN=RA Admin,O=cmpclient test,C=SE")))
        hb = hb.recipient(rng.choice(("CN=ManagementCA,O=cmpclient test,C=SE", "", "CN=Nobody")))
        if rng.random() < 0.8:
            hb = hb.transaction_id(rng.randbytes(rng.choice((16, 16, 1, 64))))
        if rng.random() < 0.8:
            hb = hb.sender_nonce(rng.randbytes(rng.choice((16, 16, 8, 32))))
        if rng.random() < 0.3:
            hb = hb.recip_nonce(rng.randbytes(16))
        if rng.random() < 0.5:
            hb = hb.message_time(_dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=rng.choice((0, -7200, 7200, 10**8))))
        if rng.random() < 0.2:
            hb = hb.implicit_confirm()
        if rng.random() < 0.2:
            hb = hb.free_text("x" * rng.choice((1, 100, 5000)))
        if rng.random() < 0.3:
            hb = hb.sender_kid(rng.choice((b"fuzz", b"", b"ra-test", rng.randbytes(20))))
        kind = rng.choice(("ir", "cr", "kur", "p10cr", "rr", "certConf", "genm", "pollReq", "error", "pkiconf",
                           "nested", "ip", "genp", "pollRep"))
        from cmpclient.errors import CMPClientError

        try:
            body = self._body(rng, kind)
        except CMPClientError:  # our builders refuse early: fine, send a plain genm instead
            body = B.genm_body()
        msg = assemble(hb.build(), body, extra_certs=[self.ra_cert_der] if rng.random() < 0.2 else [])
        p = rng.random()
        if p < 0.5:
            iters = rng.choice((1, 1, 1, 500, 500, 500, 10_000, 10_001, 100_000))
            if iters > 10_001 and rng.random() < 0.9:
                iters = 10_001  # keep the bound check cheap: the CA refuses before iterating
            secret = rng.choice((SECRET, SECRET, b"wrong", b"foo123"))
            params = PBMParams.new(iterations=iters) if iters != 500 else None
            try:
                msg = protect_message(msg, MACProtection(secret, params=params, sender_kid=b"fuzz"))
            except CMPClientError:  # a builder refusing (bounds) is fine: send unprotected
                pass
        return encode_message(msg)

    def _body(self, rng: random.Random, kind: str) -> Any:
        from cmpclient.asn1 import codec, crmf
        from cmpclient.message import body as B
        from cmpclient.message.header import HeaderBuilder
        from cmpclient.message.pkimessage import assemble, encode_message

        if kind in ("ir", "cr", "kur"):
            reqs = []
            for n in range(rng.choice((1, 1, 2, 50))):
                r = codec.decode(self.req_der, crmf.CertReqMsg()) if n else self.req
                if n:
                    r["certReq"]["certReqId"] = n if rng.random() < 0.9 else 0
                reqs.append(r)
            try:
                body = B.cert_req_body(kind, reqs)
            except Exception:  # noqa: BLE001 - the builder refuses duplicates: fine
                body = B.cert_req_body(kind, [self.req])
        elif kind == "p10cr":
            body = B.p10cr_body(rng.randbytes(rng.randrange(1, 200)))
        elif kind == "rr":
            body = B.rr_body([B.rev_details(rng.choice(("CN=ManagementCA,O=cmpclient test,C=SE", "CN=X")),
                                            rng.choice((0, 1, 2**159, rng.randrange(2**63))))])
        elif kind == "certConf":
            body = B.cert_conf_body([B.cert_status(rng.choice((0, -1, 5)), rng.randbytes(rng.choice((0, 32))))]
                                    if rng.random() < 0.8 else [])
        elif kind == "genm":
            oid = rng.choice(("1.3.6.1.5.5.7.4.17", "1.3.6.1.5.5.7.4.18", "1.3.6.1.5.5.7.4.19", "1.2.3.4",
                              "1.3.6.1.5.5.7.4.23"))
            body = B.genm_body([(oid, rng.choice((None, b"\x05\x00", b"\x04\x00")))] * rng.choice((0, 1, 3)))
        elif kind == "pollReq":
            body = B.poll_req_body([rng.choice((0, -1, 7, 2**40))])
        elif kind == "error":
            body = B.error_body("rejection", fail_info=[rng.choice(("badRequest", "badAlg"))], texts=["x"])
        elif kind == "pkiconf":
            body = B.pkiconf_body()
        elif kind == "nested":
            inner = encode_message(assemble(HeaderBuilder().sender("CN=i").recipient("CN=j").build(),
                                            B.genm_body()))
            body = B.nested_body([inner] * rng.choice((0, 1, 3)))
        elif kind == "genp":
            body = B.genp_body()
        elif kind == "pollRep":
            body = B.poll_rep_body([(0, rng.choice((0, -1, 10**9)), [])])
        else:
            body = B.cert_rep_body("ip", [])
        return body


# ============================================================================ targets


def _outcome_of_answer(der: bytes) -> str:
    from cmpclient.message.parse import ErrorContent, CertRepContent, RevRepContent, parse_message

    p = parse_message(der)
    c = p.content
    if isinstance(c, ErrorContent):
        return f"error:{','.join(c.status.fail_info) or '-'}"
    if isinstance(c, CertRepContent):
        sts = [r.status for r in c.responses]
        return f"{p.body_type}:" + ",".join(s.status + ("/" + "+".join(s.fail_info) if s.fail_info else "") for s in sts)
    if isinstance(c, RevRepContent):
        return "rp:" + ",".join(s.status + ("/" + "+".join(s.fail_info) if s.fail_info else "") for s in c.statuses)
    return p.body_type


class Worker:
    def __init__(self, corpus: dict[str, Any], data_dir: Path, hang_after: float) -> None:
        from cryptography import x509

        from cmpclient.testca import TestCA

        self.corpus = corpus
        self.ca = TestCA.open(None, data_dir)
        self.hang_after = hang_after
        self.req_ders = [d for _, d in corpus["requests"]]
        self.rsp = corpus["responses"]
        self.all_ders = self.req_ders + [r["der"] for r in self.rsp]
        self.struct = StructGen(corpus)
        self.trusted = [x509.load_der_x509_certificate(d) for d in corpus["ca_certs"]]
        vec_trust = x509.load_pem_x509_certificates(corpus["trusted_pem"]) if corpus["trusted_pem"] else []
        self.vec_trust = vec_trust
        signal.signal(signal.SIGALRM, self._alarm)

    @staticmethod
    def _alarm(signum: int, frame: Any) -> None:
        raise Hang("call still running after the alarm")

    # --- inputs -------------------------------------------------------------------------
    def make_input(self, rng: random.Random, target: str) -> tuple[str, bytes, Any]:
        gen = rng.choices([g for g, _ in GENERATORS], [w for _, w in GENERATORS])[0]
        if gen == "deep" and target == "ca":
            gen = "mutate"
        if gen == "mutate":
            if target == "ca":
                src = rng.choice(self.req_ders)
                return gen, mutate(rng, src, self.all_ders), None
            r = rng.choice(self.rsp)
            return gen, mutate(rng, r["der"], self.all_ders), r
        if gen == "random":
            return gen, random_message(rng), rng.choice(self.rsp)
        if gen == "struct":
            return gen, self.struct(rng), rng.choice(self.rsp)
        if gen == "bomb":
            return gen, bomb(rng), rng.choice(self.rsp)
        return gen, b"", None  # deep: generated inside the client target

    # --- targets ------------------------------------------------------------------------
    def run_ca(self, rng: random.Random, der: bytes) -> str:
        alias = rng.choice(CA_ALIASES)
        status, out = self.ca.handle(alias, der)
        if status != 200:
            return f"BUG:http-{status}"
        try:
            outcome = _outcome_of_answer(out)
        except Exception as exc:  # noqa: BLE001
            return f"BUG:unparseable-answer:{type(exc).__name__}"
        if "systemFailure" in outcome:
            return "BUG:" + outcome
        return outcome

    def _client_config(self, ctx: dict[str, Any] | None, transport: Any, rng: random.Random) -> Any:
        from cmpclient.client import ClientConfig
        from cmpclient.client.transaction import Leniency

        openssl = ctx is not None and ctx.get("source") == "openssl"
        lenient = Leniency(unprotected_errors=True, missing_recip_nonce=True) if rng.random() < 0.5 else Leniency()
        return ClientConfig(transport=transport, secret=VECTOR_SECRET if openssl else SECRET,
                            trusted=self.vec_trust if openssl else self.trusted, lenient=lenient)

    def run_client(self, rng: random.Random, der: bytes, ctx: dict[str, Any] | None) -> str:
        from cmpclient.client.transaction import Transaction
        from cmpclient.errors import CMPClientError

        class Fixed:
            def send(self, _req: bytes) -> bytes:
                return der

        cfg = self._client_config(ctx, Fixed(), rng)
        tid = (ctx or {}).get("tid") or b"\x00" * 16
        nonce = (ctx or {}).get("nonce")
        expect = {"ip": ["ip"], "cp": ["cp"], "kup": ["kup"], "rp": ["rp"], "genp": ["genp"], "pkiconf": ["pkiconf"],
                  "pollRep": ["pollRep", "ip", "cp"]}.get((ctx or {}).get("body", ""), ["ip", "cp"])
        tx = Transaction(cfg, transaction_id=tid)
        try:
            rsp = tx.send_der(b"\x30\x00", nonce, expect)
            self._use_response(rsp)
        except CMPClientError as exc:
            return f"{type(exc).__name__}:{int(exc.exit_code)}"
        return "accepted:" + rsp.body_type

    @staticmethod
    def _use_response(rsp: Any) -> None:
        """What the operations do with an accepted answer: read certificates and statuses."""
        from cryptography import x509

        from cmpclient.errors import DecodeError
        from cmpclient.message.parse import CertRepContent

        c = rsp.content
        if isinstance(c, CertRepContent):
            for r in c.responses:
                if r.certificate:
                    try:
                        x509.load_der_x509_certificate(r.certificate)
                    except ValueError as exc:
                        raise DecodeError(f"bad certificate: {exc}") from exc

    def run_deep(self, rng: random.Random) -> str:
        """A whole client operation against a fake server whose correctly protected answers
        carry a mutated body."""
        from cmpclient.asn1 import cmp, codec, crmf
        from cmpclient.client import ClientConfig, enroll
        from cmpclient.client.operations import general_message, revoke
        from cmpclient.errors import CMPClientError
        from cmpclient.message.parse import parse_message
        from cmpclient.protection import MACProtection, protect_message

        op = rng.choice(("ir", "ir", "ir", "rr", "genm"))
        templates = self.corpus["deep_templates"][op]
        all_ders = self.all_ders
        mutate_p = rng.choice((0.0, 0.5, 1.0))

        class Server:
            def __init__(self) -> None:
                self.n = 0

            def send(self, req_der: bytes) -> bytes:
                req = parse_message(req_der)
                tpl = templates[min(self.n, len(templates) - 1)]
                self.n += 1
                msg = codec.decode(tpl, cmp.PKIMessage(), strict=False)
                if rng.random() < mutate_p:
                    body_der = codec.encode(msg["body"])
                    for _ in range(8):
                        cand = mutate(rng, body_der, all_ders)
                        try:
                            body = codec.decode(cand, cmp.PKIBody(), strict=False)
                        except CMPClientError:
                            continue
                        fresh = cmp.PKIMessage()
                        fresh["header"] = msg["header"]
                        fresh["body"] = body
                        msg = fresh
                        break
                h = msg["header"]
                h["transactionID"] = h["transactionID"].clone(req.header.transaction_id)
                h["recipNonce"] = h["recipNonce"].clone(req.header.sender_nonce)
                h["senderNonce"] = h["senderNonce"].clone(os.urandom(16))
                out = protect_message(msg, MACProtection(SECRET, sender_kid=b"fuzz"))
                return codec.encode(out)

        cfg = ClientConfig(transport=Server(), protection=MACProtection(SECRET, sender_kid=b"fuzz"),
                           recipient="CN=ManagementCA,O=cmpclient test,C=SE")
        try:
            if op == "ir":
                req = codec.decode(self.corpus["deep_request"], crmf.CertReqMsg())
                res = enroll(cfg, "ir", req)
                return "accepted:deep-ir" + (":confirmed" if res is not None else "")
            if op == "rr":
                revoke(cfg, "CN=ManagementCA,O=cmpclient test,C=SE", 12345)
                return "accepted:deep-rr"
            general_message(cfg)
            return "accepted:deep-genm"
        except CMPClientError as exc:
            return f"deep:{type(exc).__name__}:{int(exc.exit_code)}"

    # --- one input ----------------------------------------------------------------------
    def one(self, seed: int, index: int, target: str) -> tuple[str, str, float, bytes, str | None]:
        rng = random.Random(seed * 1_000_003 + index * 7 + (1 if target == "client" else 0))
        gen, der, ctx = self.make_input(rng, target)
        t0 = time.perf_counter()
        tb = None
        signal.alarm(CALL_ALARM)
        try:
            if target == "ca":
                outcome = self.run_ca(rng, der)
            elif gen == "deep":
                outcome = self.run_deep(rng)
            else:
                outcome = self.run_client(rng, der, ctx)
        except Hang:
            outcome = "BUG:hang-alarm"
        except RecursionError:
            outcome = "BUG:uncaught:RecursionError"
            tb = traceback.format_exc()[-3000:]
        except Exception as exc:  # noqa: BLE001 - that is what we are looking for
            outcome = f"BUG:uncaught:{type(exc).__name__}"
            tb = traceback.format_exc()[-3000:]
        finally:
            signal.alarm(0)
        dt = time.perf_counter() - t0
        if dt > self.hang_after and not outcome.startswith("BUG"):
            outcome = "BUG:slow>" + str(self.hang_after) + "s:" + outcome
        return gen, outcome, dt, der, tb


# ============================================================================ driver

_W: Worker | None = None


def _init(corpus_path: str, data_dir: str, hang_after: float) -> None:
    global _W
    import pickle

    with open(corpus_path, "rb") as fh:
        corpus = pickle.load(fh)
    logging_quiet()
    _W = Worker(corpus, Path(data_dir), hang_after)


def logging_quiet() -> None:
    import logging

    logging.disable(logging.CRITICAL)


def _chunk(args: tuple[int, int, int, str, str]) -> dict[str, Any]:
    seed, start, stop, target, out_dir = args
    assert _W is not None
    gens: collections.Counter = collections.Counter()
    outcomes: collections.Counter = collections.Counter()
    bugs: dict[str, dict[str, Any]] = {}
    slow: list[tuple[float, int, str, str]] = []
    t_total = 0.0
    for i in range(start, stop):
        targets = ("ca", "client") if target == "both" else (target,)
        for tg in targets:
            gen, outcome, dt, der, tb = _W.one(seed, i, tg)
            t_total += dt
            gens[f"{tg}:{gen}"] += 1
            key = outcome if outcome.startswith("BUG") else outcome[:80]
            outcomes[f"{tg}:{key}"] += 1
            if len(slow) < 5 or dt > slow[-1][0]:
                slow.append((dt, i, tg, outcome[:60]))
                slow.sort(reverse=True)
                del slow[5:]
            if outcome.startswith("BUG"):
                bug_key = f"{tg}:{outcome}"
                entry = bugs.setdefault(bug_key, {"count": 0, "first_index": i, "traceback": tb})
                entry["count"] += 1
                if entry["count"] <= 3:
                    p = Path(out_dir) / f"bug-{tg}-seed{seed}-i{i}.der"
                    p.write_bytes(der)
    return {"gens": gens, "outcomes": outcomes, "bugs": bugs, "slow": slow, "n": stop - start, "cpu": t_total}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=10_000, help="inputs per target (default 10000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--target", choices=("ca", "client", "both"), default="both")
    ap.add_argument("--out", type=Path, default=None, help="directory for the report, reproducers, CA data")
    ap.add_argument("--hang-after", type=float, default=2.0)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--only-index", type=int, default=None, help="replay one input index")
    ap.add_argument("--progress", type=float, default=60.0, help="seconds between progress lines")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="cmpfuzz-"))
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "ca-data"
    logging_quiet()
    import pickle

    t0 = time.time()
    corpus = build_corpus(data_dir)
    corpus_path = out / "corpus.pickle"
    corpus_path.write_bytes(pickle.dumps(corpus))
    print(f"corpus: {len(corpus['requests'])} requests, {len(corpus['responses'])} responses "
          f"({time.time() - t0:.1f} s); data in {out}", flush=True)
    if args.only_index is not None:
        _init(str(corpus_path), str(data_dir), args.hang_after)
        import logging

        logging.disable(logging.NOTSET)
        logging.basicConfig(level=logging.ERROR)
        for tg in (("ca", "client") if args.target == "both" else (args.target,)):
            gen, outcome, dt, der, tb = _W.one(args.seed, args.only_index, tg)  # type: ignore[union-attr]
            print(f"{tg}: {gen} {len(der)} bytes -> {outcome} ({dt:.3f} s)\n{tb or ''}")
        return 0
    chunks = [(args.seed, s, min(s + args.chunk, args.count), args.target, str(out))
              for s in range(0, args.count, args.chunk)]
    total = {"gens": collections.Counter(), "outcomes": collections.Counter(), "bugs": {}, "slow": [], "n": 0, "cpu": 0.0}
    t_start = time.time()
    last = t_start
    ctx = mp.get_context("fork")
    with ctx.Pool(args.processes, initializer=_init, initargs=(str(corpus_path), str(data_dir), args.hang_after)) as pool:
        for res in pool.imap_unordered(_chunk, chunks):
            total["gens"].update(res["gens"])
            total["outcomes"].update(res["outcomes"])
            for k, v in res["bugs"].items():
                e = total["bugs"].setdefault(k, {"count": 0, "first_index": v["first_index"], "traceback": v["traceback"]})
                e["count"] += v["count"]
                e["first_index"] = min(e["first_index"], v["first_index"])
            total["slow"] = sorted(total["slow"] + res["slow"], reverse=True)[:10]
            total["n"] += res["n"]
            total["cpu"] += res["cpu"]
            now = time.time()
            if now - last >= args.progress:
                last = now
                nbugs = sum(v["count"] for v in total["bugs"].values())
                print(f"progress: {total['n']}/{args.count} indices, {sum(total['gens'].values())} inputs, "
                      f"{sum(total['gens'].values()) / (now - t_start):.0f} inputs/s, bugs {nbugs}", flush=True)
                _write_report(out, args, total, now - t_start)
    report = _write_report(out, args, total, time.time() - t_start)
    print(json.dumps({k: v for k, v in report.items() if k not in ("outcomes",)}, indent=1))
    print("top outcomes:")
    for k, v in sorted(report["outcomes"].items(), key=lambda kv: -kv[1])[:40]:
        print(f"  {v:9d}  {k}")
    return 1 if report["bug_count"] else 0


def _write_report(out: Path, args: Any, total: dict[str, Any], elapsed: float) -> dict[str, Any]:
    inputs = sum(total["gens"].values())
    report = {
        "seed": args.seed,
        "indices": total["n"],
        "inputs": inputs,
        "inputs_per_target": {t: sum(v for k, v in total["gens"].items() if k.startswith(t + ":")) for t in ("ca", "client")},
        "elapsed_s": round(elapsed, 1),
        "rate_per_s": round(inputs / elapsed, 1) if elapsed else None,
        "processes": args.processes,
        "generators": dict(total["gens"]),
        "bug_count": sum(v["count"] for v in total["bugs"].values()),
        "bugs": total["bugs"],
        "hangs": sum(v for k, v in total["outcomes"].items() if "hang" in k or "slow>" in k),
        "slowest": total["slow"],
        "outcomes": dict(total["outcomes"]),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    sys.exit(main())
