"""A cold ``cmpclient crmf`` (PBM ir, new EC key, implicit confirm or certConf) loads no pyasn1 module.

Start-up is a speed target (P1): the request is written as DER and the usual answer read by
:mod:`cmpclient.message.fastparse`, so pyasn1, ``pyasn1_modules.rfc5280`` and our schema
modules are imported only where something needs them (:mod:`cmpclient.asn1.lazy`).  Each
check runs in a child process: the test CA in this process has pyasn1 loaded already.  The
fallbacks -- answers the fast reader declines, the strict decoder's errors -- must load
pyasn1 on first use in such a fresh process and work as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

REPO = Path(__file__).resolve().parents[2]

#: Runs the CLI in the child, then prints the pyasn1 modules it has loaded as the last line.
CHILD_CLI = """
import json, sys
from cmpclient.cli.main import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "pyasn1": sorted(m for m in sys.modules if m.split(".")[0] in ("pyasn1", "pyasn1_modules"))}))
"""


def _child(code: str, *args: object, env: dict[str, str] | None = None) -> tuple[dict, subprocess.CompletedProcess]:
    child_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    # the tree these tests belong to, whatever the installed package points at
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=child_env, timeout=120, cwd=REPO)
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc


def _uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _spki(key_or_cert: object) -> bytes:
    pub = key_or_cert.public_key()  # type: ignore[attr-defined]
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("confirm", ["--implicit-confirm", None])
def test_cold_crmf_pbm_loads_no_pyasn1(testca_server, tmp_path, confirm):
    """Implicit confirmation, or certConf (its certHash's digest read from the certificate's
    signatureAlgorithm by the DER reader) and pkiconf."""
    name = _uid("lazy")
    cert_out, key_out = tmp_path / "cert.pem", tmp_path / "key.pem"
    result, proc = _child(
        CHILD_CLI, "crmf", "--url", testca_server.url("ra"), "--authparam", "env:LAZY_SECRET", "--keyid", "lazy",
        "--dn", f"CN={name},UID={name}", "--reqnewkeyspec", "secp256r1", *([confirm] if confirm else []),
        "--certout", cert_out, "--keyout", key_out, "-q", env={"LAZY_SECRET": "password"},
    )
    assert result["rc"] == 0, proc.stdout + proc.stderr
    assert result["pyasn1"] == [], "a cold crmf imported pyasn1; run it under -X importtime to see who"
    cert = x509.load_pem_x509_certificate(cert_out.read_bytes())
    key = serialization.load_pem_private_key(key_out.read_bytes(), None)
    assert _spki(cert) == _spki(key)
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == name
    rec = testca_server.ca.store.find_certificate("ManagementCA", cert.serial_number)
    assert rec is not None and rec.confirmed


def test_cold_crmf_whose_answer_needs_the_full_decoder_loads_pyasn1_and_works(testca_server, tmp_path):
    """A server-generated key comes back as EnvelopedData (pvno 3): fastparse declines it,
    and the full decoder, loaded mid-transaction, reads it; the key is decrypted and saved."""
    name = _uid("lazysg")
    result, proc = _child(
        CHILD_CLI, "crmf", "--url", testca_server.url("servergen"), "--secret", "env:SG_SECRET",
        "--trusted", testca_server.root_cert, "--untrusted", testca_server.ca_chain,
        "--dn", f"CN={name},O=Test", "--server-keygen", "--protocol-encr-key", "RSA", "--reqnewkeyspec", "secp256r1",
        "--pvno", "3", "--certout", tmp_path / "cert.pem", "--keyout", tmp_path / "key.pem", "-q",
        env={"SG_SECRET": "password"},
    )
    assert result["rc"] == 0, proc.stdout + proc.stderr
    assert "pyasn1_modules.rfc5280" in result["pyasn1"]
    cert = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    key = serialization.load_pem_private_key((tmp_path / "key.pem").read_bytes(), None)
    assert _spki(cert) == _spki(key)


CHILD_FALLBACKS = """
import json, sys
from pathlib import Path
import cmpclient.client, cmpclient.message.parse, cmpclient.protection  # what a crmf imports
from cmpclient.asn1 import codec
from cmpclient.errors import DecodeError
from cmpclient.message.parse import parse_message

def loaded():
    return sorted(m for m in sys.modules if m.split(".")[0] in ("pyasn1", "pyasn1_modules"))

out = {"after_import": loaded()}
vectors = Path("tests/vectors/openssl")
ir = (vectors / "ir_pbm_certconf/req1.der").read_bytes()
# the fast reader has no 'ir': the full decoder (strict DER) reads it
parsed = parse_message(ir)
out["ir"] = [parsed.body_type, parsed.decoded is not None]
# not DER: the SEQUENCE's length in more octets than it needs
_, start, end = codec.read_tlv(ir, 0)
content = ir[start:end]
ber = b"\\x30\\x84" + len(content).to_bytes(4, "big") + content
for data in (ber, ir + b"\\x00", b"\\x30\\x80" + content + b"\\x00\\x00"):
    try:
        parse_message(data)
        out.setdefault("errors", []).append(None)
    except DecodeError as exc:
        out.setdefault("errors", []).append(str(exc))
try:
    codec.oid_der("0.40")
except Exception as exc:
    out["oid_error"] = [type(exc).__name__, str(exc)]
out["after_fallbacks"] = loaded()
print(json.dumps(out))
"""


def test_fallbacks_load_pyasn1_on_first_use_and_keep_their_words():
    """In a fresh process that has imported the enrolment path (and so no pyasn1): the full
    decoder reads what the fast reader declines, refuses non-DER with the usual errors, and
    an OID the writer leaves to pyasn1 gets pyasn1's error."""
    out, proc = _child(CHILD_FALLBACKS)
    assert out["after_import"] == [], proc.stderr
    assert out["ir"] == ["ir", True]
    ber, trailing, indefinite = out["errors"]
    assert ber is not None and "not DER" in ber
    assert trailing is not None and "trailing byte" in trailing
    assert indefinite is not None and "not DER" in indefinite
    kind, text = out["oid_error"]  # what codec.encode(univ.ObjectIdentifier("0.40")) always said
    assert kind == "DecodeError" and text.startswith("cannot DER-encode ObjectIdentifier: Error encoding"), text
    assert "pyasn1_modules.rfc5280" in out["after_fallbacks"] and "pyasn1.codec.der.decoder" in out["after_fallbacks"]
