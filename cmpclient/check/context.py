"""The per-scenario toolbox: configs, protections, keys, enrolment and raw sends.

One :class:`CheckContext` lives for one scenario: it opens fresh transports, records
every message sent and received (for ``--capture``), and offers the building blocks the
scenarios are written with (the library's message and protection layers, nothing else).
"""

from __future__ import annotations

import os
from typing import Any, Callable

from cmpclient.check.model import Answer, CheckSetup, Scenario, Signer, Skip


class CheckContext:
    def __init__(self, setup: CheckSetup, scenario: Scenario, *, own_signer: Signer | None = None):
        self.setup = setup
        self.scenario = scenario
        #: Run "as the end entity": :meth:`base_protection` signs with this certificate (one
        #: enrolled under MAC earlier in the run) and :meth:`subject` is its subject.  The runner
        #: sets it for a rerun after the server's policy refused MAC (RFC 9483 §4.1.2, §4.2, §4.3).
        self.own_signer = own_signer
        self.messages: list[tuple[str, bytes]] = []
        self._transports: list[Any] = []
        self._base: list[Any] = []  # the protections base_protection() made
        #: How the scenario's last ClientConfig protects its requests: "mac", "signature"
        #: or "none" (the runner matches a policy refusal's words against it).
        self.last_protection = "none"
        #: Whether that protection came from :meth:`base_protection` (the scenario left the
        #: choice to the setup) rather than being chosen by the scenario (``mac(params)`` of a
        #: PBM scenario, the given signer): only then may the runner retry it with another.
        self.last_protection_base = False
        #: Set by the runner's judge: the server's policy refused a MAC from
        #: base_protection() on a request that opens a transaction (a rerun as the end entity may try).
        self.mac_refused_by_policy = False

    # --- plumbing ------------------------------------------------------------------------
    def last_request_body(self) -> str | None:
        """The body type of the last request this scenario sent (None: none, or unreadable)."""
        from cmpclient.errors import CMPClientError
        from cmpclient.message.peek import peek

        for direction, der in reversed(self.messages):
            if direction == "request":
                try:
                    return peek(der).body_type
                except CMPClientError:
                    return None
        return None

    def record(self, direction: str, der: bytes) -> None:
        self.messages.append((direction, bytes(der)))
        if self.setup.on_message is not None:
            self.setup.on_message(direction, der)

    def transport(self) -> Any:
        """The scenario's transport: one connection for the whole scenario (servers such as
        openssl's mock serve one client connection at a time)."""
        if not self._transports:
            self._transports.append(self.setup.transport_factory())
        return self._transports[0]

    def close(self) -> None:
        transports, self._transports = self._transports, []
        for t in transports:
            close = getattr(t, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing never hides the verdict
                    pass

    def config(self, protection: Any, *, implicit_confirm: bool = False, pvno: int | None = None,
               transport: Any = None, recipient: Any = None) -> Any:
        """A ClientConfig for this scenario.  Unprotected errors are accepted (the check
        wants the server's reason, and EJBCA sends errors unprotected); positive responses
        are verified as usual."""
        from cmpclient.client import ClientConfig, Leniency

        s = self.setup
        kind = type(protection).__name__
        self.last_protection = "mac" if kind == "MACProtection" else "signature" if kind == "SignatureProtection" \
            else "none" if protection is None else kind
        self.last_protection_base = any(protection is p for p in self._base)
        return ClientConfig(
            transport=transport if transport is not None else self.transport(),
            protection=protection,
            recipient=recipient if recipient is not None else s.recipient,
            pvno=pvno or s.pvno,
            secret=s.mac_secret,
            trusted=list(s.trusted),
            untrusted=list(s.untrusted),
            server_cert=s.server_cert,
            implicit_confirm=implicit_confirm,
            total_timeout=s.total_timeout,
            lenient=Leniency(unprotected_errors=True, ignore_key_usage=s.ignore_key_usage),
            on_message=self.record,
            sleep=s.sleep,
        )

    # --- protections ---------------------------------------------------------------------
    def mac(self, params: Any = None) -> Any:
        from cmpclient.protection import MACProtection, PBMParams

        s = self.setup
        if s.mac_secret is None:
            raise Skip("no MAC secret given (--authparam/--secret)")
        if params is None:
            params = PBMParams.new(owf=s.pbm_owf, mac=s.pbm_mac, iterations=s.pbm_iterations)
        return MACProtection(s.mac_secret, params, sender_kid=s.keyid)

    def signer_protection(self, signer: Signer | None = None) -> Any:
        from cmpclient.protection import SignatureProtection

        signer = signer or self.setup.signer
        if signer is None:
            raise Skip("no signer credentials given (--keystore or --cert/--key)")
        return SignatureProtection(signer.key, signer.cert, signer.chain, digest=self.setup.digest)

    def base_protection(self) -> Any:
        """The end entity's own signature when :attr:`own_signer` is set; else MAC when a
        secret is given, else the signer's signature."""
        if self.own_signer is not None:
            protection = self.signer_protection(self.own_signer)
        elif self.setup.mac_secret is not None:
            protection = self.mac()
        elif self.setup.signer is not None:
            protection = self.signer_protection()
        else:
            raise Skip("needs a MAC secret or signer credentials")
        self._base.append(protection)
        return protection

    # --- keys and names -------------------------------------------------------------------
    def subject(self, tag: str | None = None, *, fresh: bool = False) -> Any:
        """A unique subject from the setup's template (a DN string); with :attr:`own_signer`
        (and not ``fresh``) the own certificate's subject (an ``x509.Name``): the end entity
        asks for itself."""
        if self.own_signer is not None and not fresh:
            return self.own_signer.cert.subject
        tag = (tag or self.scenario.name).replace(",", "-").replace("=", "-")
        return self.setup.subject_template.replace("{name}", f"chk-{tag}-{os.urandom(3).hex()}")

    def new_key(self, spec: str | None = None) -> Any:
        """A fresh key (``spec`` or the setup's default); the fixed --newkey when given."""
        from cmpclient.keys import generate_key, key_spec_of

        s = self.setup
        if s.newkey is not None:
            if spec is not None and key_spec_of(s.newkey).family != _family(spec):
                raise Skip(f"needs a {spec} key, but --newkey fixes the requested key to {key_spec_of(s.newkey)}")
            return s.newkey
        return generate_key(spec or s.key_spec)

    def popo(self, key: Any) -> Any:
        from cmpclient.protection import popo_signer

        return popo_signer(key, self.setup.digest)

    def request(self, key: Any, *, subject: Any = None, popo: str = "signature",
                extra: Callable[[Any], Any] | None = None) -> Any:
        from cmpclient.message.request import CertRequestBuilder

        b = CertRequestBuilder().subject(subject or self.subject()).public_key(key)
        if extra is not None:
            b = extra(b)
        if popo == "signature":
            b = b.popo_signature(self.popo(key))
        elif popo == "raVerified":
            b = b.popo_ra_verified()
        elif popo == "keyEncipherment":
            b = b.popo_key_encipherment()
        elif popo == "keyAgreement":
            b = b.popo_key_agreement()
        else:
            b = b.popo_none()
        return b.build()

    # --- operations ------------------------------------------------------------------------
    def enroll(self, kind: str = "ir", *, key: Any = None, protection: Any = None, subject: Any = None,
               implicit_confirm: bool = False, confirm: bool = True, pvno: int | None = None,
               transport: Any = None, request: Any = None, decrypt_key: Any = None) -> tuple[Any, Any]:
        """Enroll a fresh certificate; returns (EnrollResult, private key)."""
        from cmpclient.client import enroll

        key = key if key is not None else self.new_key()
        config = self.config(protection if protection is not None else self.base_protection(),
                             implicit_confirm=implicit_confirm, pvno=pvno, transport=transport)
        if request is None:
            if kind == "p10cr":
                request = self.csr(key, subject)
            else:
                request = self.request(key, subject=subject)
        result = enroll(config, kind, request, confirm=confirm, decrypt_key=decrypt_key)
        return result, key

    def csr(self, key: Any, subject: Any = None) -> bytes:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ed448, ed25519

        from cmpclient.message.names import parse_dn

        algo = None if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()
        csr = x509.CertificateSigningRequestBuilder().subject_name(parse_dn(subject or self.subject())).sign(key, algo)
        return csr.public_bytes(serialization.Encoding.DER)

    def signed_by(self, result: Any, key: Any) -> Signer:
        return Signer(key, result.certificate, result.chain())

    def send_raw(self, der: bytes, transport: Any = None) -> bytes:
        t = transport if transport is not None else self.transport()
        self.record("request", der)
        raw = t.send(der)
        self.record("response", raw)
        return raw

    def answer(self, der: bytes, transport: Any = None) -> Answer:
        """Send ``der`` as is and classify the answer: accepted, or rejected (with failInfo)."""
        from cmpclient.errors import DecodeError, HTTPStatusError

        try:
            raw = self.send_raw(der, transport)
        except HTTPStatusError as exc:
            if exc.status is not None and 400 <= exc.status < 600:
                return Answer(False, f"HTTP {exc.status} (refused at the HTTP layer)")
            raise
        from cmpclient.message.parse import parse_message

        try:
            rsp = parse_message(raw, strict=False)
        except DecodeError as exc:
            from cmpclient.check.model import Failure

            raise Failure(f"the answer is not a PKIMessage: {exc.message}") from exc
        return classify_response(rsp)


def classify_response(rsp: Any) -> Answer:
    from cmpclient.message.parse import CertRepContent, ErrorContent, RevRepContent

    prot = "" if rsp.protected else ", unprotected"
    content = rsp.content
    if isinstance(content, ErrorContent):
        st = content.status
        return Answer(False, _status_text("error", st) + prot, tuple(st.fail_info))
    if isinstance(content, CertRepContent) and content.responses:
        st = content.responses[0].status
        if st.status == "rejection":
            return Answer(False, _status_text(rsp.body_type, st) + prot, tuple(st.fail_info))
        return Answer(True, f"{rsp.body_type} {st.status}{prot}")
    if isinstance(content, RevRepContent) and content.statuses:
        st = content.statuses[0]
        if st.status == "rejection":
            return Answer(False, _status_text("rp", st) + prot, tuple(st.fail_info))
        return Answer(True, f"rp {st.status}{prot}")
    return Answer(True, f"{rsp.body_type}{prot}")


def _status_text(body: str, st: Any) -> str:
    text = f"{body} {st.status}"
    if st.fail_info:
        text += " " + ",".join(st.fail_info)
    if st.texts:
        text += ": " + " / ".join(st.texts)
    return text


def _family(spec: str) -> str:
    from cmpclient.keys import parse_key_spec

    return parse_key_spec(spec).family
