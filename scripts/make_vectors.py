#!/usr/bin/env python3
"""Record real CMP wire messages made by an independent implementation (openssl cmp 3.0).

Usage::

    .venv/bin/python scripts/make_vectors.py [--only SCENARIO ...] [--list]

For each scenario it starts an ``openssl cmp -port`` mock (tests/interop/openssl_peer.py, on a
free 127.0.0.1 port), runs the ``openssl cmp`` client against it with
``-reqout req1.der,req2.der,... -rspout rsp1.der,...`` (one file per message), and writes
``tests/vectors/openssl/<scenario>/`` plus ``tests/vectors/manifest.json``.

Every file is decoded (pyasn1-alt-modules rfc9810, an independent schema) to check that it is
exactly one DER PKIMessage, to record its body type and protection algorithm, and to check the
body type the scenario expects. The messages contain fresh nonces, transactionIDs, salts and
(EC)DSA signatures, so a re-run produces different bytes: the committed vectors are the
reference; re-run only to add scenarios (``--only``) or after changing the fixtures.

Secrets reach openssl through the environment (``env:CMP_VECTOR_SECRET``), never argv; the
manifest records their values because the vectors exist to be verified. TEST MATERIAL ONLY.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "interop"))

from openssl_peer import (  # noqa: E402
    PKI,
    OpenSSLMockServer,
    cmp_options,
    openssl_binary,
    openssl_version,
    run_openssl_client,
)

VEC_DIR = REPO / "tests" / "vectors"
OUT_DIR = VEC_DIR / "openssl"
MANIFEST = VEC_DIR / "manifest.json"

SECRET_ENV = "CMP_VECTOR_SECRET"
SECRET = "vector-secret-1234"  # PBM shared secret, both directions. Test material.
REF = "cmp-vector-ref"  # client senderKID (-ref) and mock -srv_ref
MAX_FILES = 8

pki = PKI(dir=Path("fixtures/pki"))  # relative to REPO: commands in the manifest stay portable


def rel(p: Path | str) -> str:
    p = Path(p)
    return str(p.relative_to(REPO)) if p.is_absolute() else str(p)


# --------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    name: str
    description: str
    client: dict[str, Any]  # client options (cmp_options kwargs)
    server: dict[str, Any]  # mock options
    req_bodies: list[str]
    rsp_bodies: list[str]
    req_protection: dict[str, Any]
    rsp_protection: dict[str, Any]
    expect_rc: int = 0
    pre: list[list[str]] = field(default_factory=list)  # preparatory commands (run in REPO)
    extra_files: list[str] = field(default_factory=list)


def pbm_prot() -> dict[str, Any]:
    return {"type": "pbm", "secret": SECRET, "sender_kid": REF}


def sig_prot(cert: Path) -> dict[str, Any]:
    return {
        "type": "signature",
        "signer_cert": rel(cert),
        "chain": rel(pki.chain),
        "trusted": rel(pki.trusted),
    }


def pbm_server(kt: str = "ec", **extra: Any) -> dict[str, Any]:
    d = dict(srv_ref=REF, srv_secret=f"env:{SECRET_ENV}", rsp_cert=pki.rsp_cert(kt),
             rsp_capubs=pki.trusted, rsp_extracerts=pki.chain)
    d.update(extra)
    return d


def sig_server(kt: str, rsp_kt: str | None = None, **extra: Any) -> dict[str, Any]:
    d = dict(srv_cert=pki.server_cert(kt), srv_key=pki.server_key(kt), srv_trusted=pki.trusted,
             srv_untrusted=pki.chain, rsp_cert=pki.rsp_cert(rsp_kt or kt), rsp_capubs=pki.trusted,
             rsp_extracerts=pki.chain)
    d.update(extra)
    return d


def pbm_client(cmd: str, kt: str = "ec", **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = dict(cmd=cmd, ref=REF, secret=f"env:{SECRET_ENV}")
    if cmd in ("ir", "cr", "kur"):
        d.update(newkey=pki.rsp_key(kt), subject=f"/CN=cmp-rsp-{kt}/O=cmpclient test")
    d.update(extra)
    return d


def sig_client(cmd: str, kt: str, new_kt: str | None = None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = dict(cmd=cmd, cert=pki.client_cert(kt), key=pki.client_key(kt),
                             untrusted=pki.chain, trusted=pki.trusted)
    if cmd in ("ir", "cr", "kur"):
        d.update(newkey=pki.rsp_key(new_kt or kt))
    if cmd in ("ir", "cr"):
        d.update(subject=f"/CN=cmp-rsp-{new_kt or kt}/O=cmpclient test")
    d.update(extra)
    return d


def scenarios() -> list[Scenario]:
    P, S = pbm_prot, sig_prot
    csr = OUT_DIR / "p10cr_pbm" / "csr.pem"
    out: list[Scenario] = [
        Scenario("ir_pbm_certconf", "ir protected by PBM (openssl defaults: sha256 owf, 500 iterations, "
                 "hmac-sha1), explicit certConf", pbm_client("ir"), pbm_server(),
                 ["ir", "certConf"], ["ip", "pkiconf"], P(), P()),
        Scenario("ir_pbm_hmac_sha256", "ir with PBM using -mac hmacWithSHA256, explicit certConf",
                 pbm_client("ir", mac="hmacWithSHA256"), pbm_server(),
                 ["ir", "certConf"], ["ip", "pkiconf"], P(), P()),
        Scenario("cr_pbm_implicitconfirm", "cr with PBM, implicitConfirm requested and granted",
                 pbm_client("cr", implicit_confirm=True), pbm_server(grant_implicitconf=True),
                 ["cr"], ["cp"], P(), P()),
        Scenario("ir_ed25519_newkey_pbm", "ir with PBM for an Ed25519 key (Ed25519 POPO signature); "
                 "OpenSSL 3.0 cannot use Ed25519 for CMP message protection itself",
                 pbm_client("ir", "ed25519"), pbm_server("ed25519"),
                 ["ir", "certConf"], ["ip", "pkiconf"], P(), P()),
    ]
    for kt in ("ec", "rsa"):
        out.append(Scenario(
            f"ir_sig_{kt}", f"ir signature-protected by client-{kt} (extraCerts carry its chain); "
            f"responses signed by server-{kt}; explicit certConf",
            sig_client("ir", kt), sig_server(kt), ["ir", "certConf"], ["ip", "pkiconf"],
            S(pki.client_cert(kt)), S(pki.server_cert(kt))))
    out += [
        Scenario("kur_sig_ec", "kur signed by client-ec for -oldcert rsp-ec (the mock accepts kur only "
                 "for its -rsp_cert), new key rsp-ec, explicit certConf",
                 sig_client("kur", "ec", oldcert=pki.rsp_cert("ec")), sig_server("ec"),
                 ["kur", "certConf"], ["kup", "pkiconf"], S(pki.client_cert("ec")), S(pki.server_cert("ec"))),
        Scenario("p10cr_pbm", "p10cr with PBM carrying a PKCS#10 CSR made by `openssl req` for rsp-ec's key "
                 "(csr.pem in the same folder), explicit certConf",
                 dict(cmd="p10cr", ref=REF, secret=f"env:{SECRET_ENV}", csr=rel(csr)), pbm_server(),
                 ["p10cr", "certConf"], ["cp", "pkiconf"], P(), P(),
                 pre=[[openssl_binary(), "req", "-new", "-config", os.devnull, "-key", rel(pki.rsp_key("ec")),
                       "-subj", "/CN=cmp-rsp-ec/O=cmpclient test", "-out", rel(csr)]],
                 extra_files=[rel(csr)]),
        Scenario("rr_sig_ec", "rr signed by client-ec revoking rsp-ec (reason 1 keyCompromise)",
                 sig_client("rr", "ec", oldcert=pki.rsp_cert("ec"), revreason=1), sig_server("ec"),
                 ["rr"], ["rp"], S(pki.client_cert("ec")), S(pki.server_cert("ec"))),
        Scenario("rr_pbm", "rr with PBM revoking rsp-ec (no reason code)",
                 pbm_client("rr", oldcert=pki.rsp_cert("ec")), pbm_server(),
                 ["rr"], ["rp"], P(), P()),
        Scenario("genm_pbm_default", "genm with PBM and no -infotype: empty GenMsgContent; genp empty too",
                 pbm_client("genm"), pbm_server(), ["genm"], ["genp"], P(), P()),
        Scenario("genm_pbm_cacerts", "genm with PBM asking id-it-caCerts (ITAV without value); the 3.0 mock echoes the same ITAV, still without value, in genp",
                 pbm_client("genm", infotype="caCerts"), pbm_server(), ["genm"], ["genp"], P(), P()),
        Scenario("genm_sig_ec_cacerts", "genm signed by client-ec asking id-it-caCerts; genp echoes the ITAV",
                 sig_client("genm", "ec", infotype="caCerts"), sig_server("ec"), ["genm"], ["genp"],
                 S(pki.client_cert("ec")), S(pki.server_cert("ec"))),
        Scenario("polling_pbm", "ir with PBM, mock -poll_count 2 -check_after 0: ip(waiting), "
                 "pollReq/pollRep, pollReq -> ip, certConf",
                 pbm_client("ir"), pbm_server(poll_count=2, check_after=0),
                 ["ir", "pollReq", "pollReq", "certConf"], ["ip", "pollRep", "ip", "pkiconf"], P(), P()),
        Scenario("error_send_error_pbm", "ir with PBM answered by an error message (mock -send_error)",
                 pbm_client("ir"), pbm_server(send_error=True), ["ir"], ["error"], P(), P(), expect_rc=1),
        Scenario("rejection_pbm", "ir with PBM answered by ip with status rejection, failInfo badPOP (bit 9), "
                 "statusString 'rejected by test'",
                 pbm_client("ir"), pbm_server(pkistatus=2, failure=9, statusstring="rejected by test"),
                 ["ir"], ["ip"], P(), P(), expect_rc=1),
    ]
    return out


# --------------------------------------------------------------------------- decode / check


def decode(der: bytes) -> dict[str, Any]:
    from pyasn1.codec.der import decoder, encoder
    from pyasn1_alt_modules import rfc9810

    msg, rest = decoder.decode(der, asn1Spec=rfc9810.PKIMessage())
    if rest:
        raise ValueError(f"{len(rest)} trailing bytes")
    if encoder.encode(msg) != der:
        raise ValueError("pyasn1 re-encoding differs from the wire bytes")
    hdr = msg["header"]
    body_name = msg["body"].getName()
    info: dict[str, Any] = {"body": body_name, "pvno": int(hdr["pvno"])}
    if hdr["protectionAlg"].isValue:
        oid = hdr["protectionAlg"]["algorithm"]
        info["protection_alg_oid"] = str(oid)
        if oid == rfc9810.id_PasswordBasedMac:
            params, _ = decoder.decode(hdr["protectionAlg"]["parameters"], asn1Spec=rfc9810.PBMParameter())
            info["pbm"] = {
                "salt_len": len(params["salt"]),
                "owf_oid": str(params["owf"]["algorithm"]),
                "iteration_count": int(params["iterationCount"]),
                "mac_oid": str(params["mac"]["algorithm"]),
            }
    info["protected"] = msg["protection"].isValue
    if msg["extraCerts"].isValue:
        info["extra_certs"] = len(msg["extraCerts"])
    if hdr["senderKID"].isValue:
        info["sender_kid"] = bytes(hdr["senderKID"]).decode("latin-1")
    return info


# --------------------------------------------------------------------------- run


def cmdline(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def run_scenario(sc: Scenario) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    d = OUT_DIR / sc.name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    env = {SECRET_ENV: SECRET}
    pre_cmds = []
    for argv in sc.pre:
        subprocess.run(argv, cwd=REPO, check=True, capture_output=True, timeout=30)
        pre_cmds.append(cmdline(["openssl"] + argv[1:]))
    reqs = [rel(d / f"req{i}.der") for i in range(1, MAX_FILES + 1)]
    rsps = [rel(d / f"rsp{i}.der") for i in range(1, MAX_FILES + 1)]
    client_opts = dict(sc.client, reqout=",".join(reqs), rspout=",".join(rsps))
    if sc.client["cmd"] in ("ir", "cr", "kur", "p10cr"):
        client_opts["certout"] = rel(d / "newcert.pem")
    with OpenSSLMockServer(env=env, cwd=REPO, **sc.server) as mock:
        res = run_openssl_client(server=mock, env=env, cwd=REPO, timeout=30, **client_opts)
        server_argv = ["openssl"] + mock.argv[1:]
        port = mock.port
    if res.returncode != sc.expect_rc:
        raise SystemExit(f"{sc.name}: client exit {res.returncode}, expected {sc.expect_rc}\n"
                         f"{res.describe()}\n{mock.describe()}")
    (d / "newcert.pem").unlink(missing_ok=True)  # identical to the fixture rsp cert
    client_argv = ["openssl"] + res.argv[1:]
    client_cmd = cmdline(client_argv).replace(f"127.0.0.1:{port}", "127.0.0.1:$PORT")
    server_cmd = cmdline(server_argv).replace(f"-port {port}", "-port $PORT")
    env_note = f"{SECRET_ENV}={SECRET}"

    vectors: list[dict[str, Any]] = []
    for direction, names, bodies, prot in (
        ("request", reqs, sc.req_bodies, sc.req_protection),
        ("response", rsps, sc.rsp_bodies, sc.rsp_protection),
    ):
        present = [n for n in names if (REPO / n).exists()]
        if len(present) != len(bodies):
            raise SystemExit(f"{sc.name}: {len(present)} {direction} files, expected {len(bodies)}: "
                             f"{present}\n{res.describe()}")
        for i, (name, body) in enumerate(zip(present, bodies), start=1):
            der = (REPO / name).read_bytes()
            info = decode(der)
            if info["body"] != body:
                raise SystemExit(f"{sc.name}: {name} body {info['body']}, expected {body}")
            if not info["protected"]:
                raise SystemExit(f"{sc.name}: {name} unprotected")
            if prot["type"] == "pbm" and "pbm" not in info:
                raise SystemExit(f"{sc.name}: {name} is not PBM-protected: {info}")
            if prot["type"] == "signature" and "pbm" in info:
                raise SystemExit(f"{sc.name}: {name} is PBM-protected, expected a signature")
            stem = Path(name).stem
            vectors.append({
                "name": f"{sc.name}/{stem}",
                "scenario": sc.name,
                "file": name,
                "direction": direction,
                "sender": "openssl-client" if direction == "request" else "openssl-mock-server",
                "index": i,
                "body": body,
                "protection": dict(prot, alg_oid=info.get("protection_alg_oid"),
                                   **({"params": info["pbm"]} if "pbm" in info else {})),
                "pvno": info["pvno"],
                "extra_certs": info.get("extra_certs", 0),
                "size": len(der),
                "sha256": hashlib.sha256(der).hexdigest(),
                "command": client_cmd,
                "server_command": server_cmd,
                "env": env_note,
            })
    scen = {
        "name": sc.name,
        "description": sc.description,
        "dir": rel(d),
        "client_command": client_cmd,
        "server_command": server_cmd,
        "env": env_note,
        "prepare_commands": pre_cmds,
        "extra_files": sc.extra_files,
        "client_exit_code": res.returncode,
        "client_log": [ln.replace(f"127.0.0.1:{port}", "127.0.0.1:$PORT")
                       for ln in res.output.splitlines() if "CMP " in ln],
        "requests": sc.req_bodies,
        "responses": sc.rsp_bodies,
    }
    return scen, vectors


def main(argv: list[str] | None = None) -> int:
    all_sc = scenarios()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", choices=[s.name for s in all_sc], help="regenerate only these")
    ap.add_argument("--list", action="store_true", help="list the scenarios")
    args = ap.parse_args(argv)
    if args.list:
        for s in all_sc:
            print(f"{s.name:24} {s.description}")
        return 0
    PKI(dir=REPO / "fixtures" / "pki").check()
    old: dict[str, Any] = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    selected = [s for s in all_sc if not args.only or s.name in args.only]
    done_sc: dict[str, Any] = {s["name"]: s for s in old.get("scenarios", [])} if args.only else {}
    done_vec: dict[str, list] = {}
    if args.only:
        for v in old.get("vectors", []):
            done_vec.setdefault(v["scenario"], []).append(v)
    for sc in selected:
        scen, vecs = run_scenario(sc)
        done_sc[sc.name] = scen
        done_vec[sc.name] = vecs
        print(f"{sc.name:24} {' '.join(v['body'] for v in vecs)}")
    order = [s.name for s in all_sc if s.name in done_sc]
    manifest = {
        "description": "CMP messages recorded from the independent openssl cmp client and mock server; "
                       "see tests/vectors/README.md",
        "generator": "scripts/make_vectors.py",
        "generated_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "openssl_version": openssl_version(),
        "pbm": {"secret": SECRET, "secret_env": SECRET_ENV, "sender_kid": REF},
        "pki_dir": "fixtures/pki",
        "paths_relative_to": "repository root",
        "scenarios": [done_sc[n] for n in order],
        "vectors": [v for n in order for v in done_vec[n]],
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{len(manifest['vectors'])} vectors in {len(order)} scenarios -> {rel(MANIFEST)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
