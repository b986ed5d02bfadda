"""``cmpclient dump``: input formats, text/JSON output, and errors with exit status 5."""

from __future__ import annotations

import base64
import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmpclient.cli.main import cli
from cmpclient.errors import ExitCode

REPO = Path(__file__).resolve().parents[3]
MANIFEST = json.loads((REPO / "tests" / "vectors" / "manifest.json").read_text())
VECTORS = {v["name"]: REPO / v["file"] for v in MANIFEST["vectors"]}


def run(*args: str, input: bytes | None = None, env: dict[str, str] | None = None):
    runner = CliRunner()
    return runner.invoke(cli, ["dump", *args], input=input, env={"NO_COLOR": "1", **(env or {})}, catch_exceptions=False)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_every_vector_text_and_json(name: str) -> None:
    body = next(v["body"] for v in MANIFEST["vectors"] if v["name"] == name)
    text = run(str(VECTORS[name]))
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith(f"PKIMessage {body} (")
    as_json = run("--json", str(VECTORS[name]))
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["bodyType"] == body


def test_rejection_shows_fail_info_names() -> None:
    result = run(str(VECTORS["rejection_pbm/rsp1"]))
    assert "status: rejection (2)" in result.stdout
    assert "failInfo: badPOP" in result.stdout
    doc = json.loads(run("--json", str(VECTORS["rejection_pbm/rsp1"])).stdout)
    assert doc["body"]["response"][0]["status"]["failInfo"] == ["badPOP"]


def test_ip_shows_certificate_subjects() -> None:
    out = run(str(VECTORS["ir_sig_ec/rsp1"])).stdout
    assert "subject: O=cmpclient test,CN=cmp-rsp-ec" in out
    assert "subject: O=cmpclient test,CN=cmpclient test root CA" in out


def test_group_level_json_flag() -> None:
    result = CliRunner().invoke(cli, ["--json", "dump", str(VECTORS["rr_pbm/rsp1"])], env={"NO_COLOR": "1"})
    assert json.loads(result.stdout)["bodyType"] == "rp"


def test_stdin() -> None:
    der = VECTORS["rr_pbm/req1"].read_bytes()
    result = run("-", input=der)
    assert result.exit_code == 0
    assert result.stdout.startswith("PKIMessage rr (")


@pytest.mark.parametrize("label", ["PKIMESSAGE", "CMP MESSAGE", "X"])
def test_pem_with_any_label(tmp_path: Path, label: str) -> None:
    der = VECTORS["genm_pbm_cacerts/rsp1"].read_bytes()
    b64 = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    path = tmp_path / "msg.pem"
    path.write_text(f"some text before\n-----BEGIN {label}-----\n{b64}\n-----END {label}-----\ntrailer\n")
    result = run(str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("PKIMessage genp (")


def test_pem_with_two_blocks(tmp_path: Path) -> None:
    blocks = []
    for name in ("ir_sig_ec/req1", "ir_sig_ec/rsp1"):
        b64 = base64.encodebytes(VECTORS[name].read_bytes()).decode()
        blocks.append(f"-----BEGIN CMP-----\n{b64}-----END CMP-----\n")
    path = tmp_path / "two.pem"
    path.write_text("".join(blocks))
    result = run(str(path))
    assert f"==> {path}[0] <==" in result.stdout and f"==> {path}[1] <==" in result.stdout
    doc = json.loads(run("--json", str(path)).stdout)
    assert [d["message"]["bodyType"] for d in doc] == ["ir", "ip"]


def test_base64_text(tmp_path: Path) -> None:
    path = tmp_path / "msg.b64"
    path.write_bytes(base64.encodebytes(VECTORS["polling_pbm/rsp2"].read_bytes()))
    result = run(str(path))
    assert result.exit_code == 0
    assert result.stdout.startswith("PKIMessage pollRep (")


def test_saved_transaction_json(tmp_path: Path) -> None:
    ip = VECTORS["ir_sig_ec/rsp1"].read_bytes()
    cert = (REPO / "fixtures" / "pki" / "rsp-ec.crt.pem").read_text()
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert_der = x509.load_pem_x509_certificate(cert.encode()).public_bytes(Encoding.DER)
    state = {
        "transaction_id": "00112233445566778899aabbccddeeff",
        "cert_req_id": 0,
        "cert": cert_der.hex(),
        "messages": {"response": base64.b64encode(ip).decode()},
    }
    path = tmp_path / "dev1.cmpstate.json"
    path.write_text(json.dumps(state))
    result = run("--json", str(path))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    sources = {d["source"].rsplit(":", 1)[1]: d["message"] for d in doc}
    assert sources["cert"]["certificate"]["subject"] == "O=cmpclient test,CN=cmp-rsp-ec"
    assert sources["messages.response"]["bodyType"] == "ip"
    text = run(str(path)).stdout
    assert "PKIMessage ip (" in text and "certificate" in text


def test_json_without_messages_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"transaction_id": "0011"}')
    result = run(str(path))
    assert result.exit_code == ExitCode.PROTOCOL
    assert "holds no PKIMessage" in result.stderr


@pytest.mark.parametrize(
    "data, message",
    [
        (b"this is not a message\n", "not a CMP message"),
        (b"\x30\x82\x01\x00\x02", "not a valid PKIMessage"),
        (b"", "empty input"),
        (b"-----BEGIN X-----\nAAAA\n", "without a matching END"),
    ],
    ids=["text", "truncated-der", "empty", "broken-pem"],
)
def test_garbage_exits_5_with_a_clear_message(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(data)
    result = run(str(path))
    assert result.exit_code == ExitCode.PROTOCOL == 5
    assert message in result.stderr
    assert f"{path}" in result.stderr
    assert "error (protocol, exit 5)" in result.stderr
    assert result.stdout == ""


def test_missing_file_and_good_file_together() -> None:
    result = run("/nonexistent/rsp.der", str(VECTORS["rr_pbm/rsp1"]))
    assert result.exit_code == 3  # a file that cannot be read: a local problem (config), not a bad message
    assert "cannot read" in result.stderr and "exit 3" in result.stderr
    assert "PKIMessage rp (" in result.stdout  # the good file is still dumped


def test_trailing_bytes_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "trailing.der"
    path.write_bytes(VECTORS["rr_pbm/rsp1"].read_bytes() + b"\x00\x00")
    result = run(str(path))
    assert result.exit_code == 5
    assert "trailing byte" in result.stderr


def test_rich_tree_on_a_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from cmpclient.asn1.dump import dump as dump_tree
    from cmpclient.cli import dump_cmd

    monkeypatch.delenv("NO_COLOR", raising=False)
    dump_cmd.print_rich(dump_tree(VECTORS["rejection_pbm/rsp1"].read_bytes()))
    out = capsys.readouterr().out
    assert "PKIMessage ip" in out
    assert "failInfo: badPOP" in out
    assert "└──" in out or "├──" in out


def test_no_color_disables_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    from cmpclient.cli import dump_cmd

    class TTY:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdout", TTY())
    monkeypatch.setenv("NO_COLOR", "1")
    assert dump_cmd._want_rich() is False
    monkeypatch.delenv("NO_COLOR")
    assert dump_cmd._want_rich() is True
