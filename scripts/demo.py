"""Start a CMP server on 127.0.0.1 and enroll a certificate against it.

Until the bundled test CA lands this uses the openssl mock server (``openssl cmp -port``)
with the committed test PKI; the enrollment itself is done by the cmpclient library.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "interop"))

from openssl_peer import PKI, OpenSSLMockServer  # noqa: E402

from cmpclient.client import ClientConfig, enroll  # noqa: E402
from cmpclient.keys import load_private_key, write_certificates  # noqa: E402
from cmpclient.message.request import CertRequestBuilder  # noqa: E402
from cmpclient.protection import MACProtection, popo_signer  # noqa: E402
from cmpclient.transport import open_transport  # noqa: E402


def main() -> int:
    pki = PKI(ROOT / "fixtures" / "pki")
    secret = os.urandom(12).hex()
    env = {"DEMO_SECRET": secret}
    with OpenSSLMockServer(srv_ref="demo", srv_secret="env:DEMO_SECRET", rsp_cert=pki.rsp_cert("ec"),
                           rsp_capubs=pki.trusted, rsp_extracerts=pki.chain, env=env) as mock:
        print(f"CMP server (openssl mock) listening at {mock.url}")
        key = load_private_key(pki.rsp_key("ec"))
        request = CertRequestBuilder().subject("CN=cmp-rsp-ec,O=cmpclient test").public_key(key)
        request = request.popo_signature(popo_signer(key)).build()
        with open_transport(mock.url) as transport:
            config = ClientConfig(transport=transport,
                                  protection=MACProtection(secret.encode(), sender_kid=b"demo"))
            result = enroll(config, "ir", request)
    out = Path(tempfile.mkdtemp(prefix="cmpclient-demo-")) / "cert.pem"
    write_certificates(out, [result.certificate])
    cert = result.certificate
    print(f"enrolled: subject={cert.subject.rfc4514_string()} serial={cert.serial_number:x}")
    print(f"          issuer={cert.issuer.rfc4514_string()} valid until {cert.not_valid_after_utc:%Y-%m-%d}")
    print(f"          confirmed={result.confirmed} certificate written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
