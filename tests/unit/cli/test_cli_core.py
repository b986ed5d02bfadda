"""Unit tests of the command line without a server: secrets, config, options, rendering, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cmpclient.cli import secrets
from cmpclient.cli.config import load_profile
from cmpclient.cli.main import COMMANDS, cli
from cmpclient.errors import ExitCode, SecretSourceError

EXE = Path(sys.executable).parent / "cmpclient"


def run(args, env=None, input=None):
    merged = {"NO_COLOR": "1", "CMPCLIENT_CONFIG": "", "CMPCLIENT_PROFILE": ""}
    merged.update(env or {})
    return CliRunner().invoke(cli, [str(a) for a in args], env=merged, input=input, catch_exceptions=False)


# --------------------------------------------------------------------------- secrets


def test_secret_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("S1", "from-env")
    assert secrets.read_secret("env:S1", what="--x") == b"from-env"
    (tmp_path / "s").write_bytes(b"from-file\nsecond line\n")
    assert secrets.read_secret(f"file:{tmp_path / 's'}", what="--x") == b"from-file"
    r, w = os.pipe()
    os.write(w, b"from-fd\n")
    os.close(w)
    try:
        assert secrets.read_secret(f"fd:{r}", what="--x") == b"from-fd"
    finally:
        os.close(r)


@pytest.mark.parametrize("spec,match", [
    ("env:NOPE_NOT_SET", "not set"), ("file:/nonexistent/x", "cannot read"), ("fd:x", "number"),
    ("hunter2", "not a secret source"), ("pass:hunter2", "refused"),
])
def test_secret_source_errors(spec, match, monkeypatch):
    monkeypatch.delenv(secrets.ALLOW_LITERAL_ENV, raising=False)
    with pytest.raises(SecretSourceError, match=match) as info:
        secrets.read_secret(spec, what="--authparam")
    assert "hunter2" not in str(info.value)
    assert info.value.exit_code == ExitCode.CONFIG


def test_pass_literal_only_when_allowed(monkeypatch):
    monkeypatch.delenv(secrets.ALLOW_LITERAL_ENV, raising=False)
    assert secrets.read_secret("pass:x", what="--x", allow_literal=True) == b"x"
    monkeypatch.setenv(secrets.ALLOW_LITERAL_ENV, "1")
    assert secrets.read_secret("pass:x", what="--x") == b"x"


def test_missing_secret_prompts_only_on_a_tty():
    with pytest.raises(SecretSourceError, match="not a terminal"):
        secrets.read_secret(None, what="--authparam", stdin_is_tty=False)
    secrets.set_prompter(lambda prompt: "typed")
    try:
        assert secrets.read_secret(None, what="--authparam", stdin_is_tty=True) == b"typed"
    finally:
        secrets.set_prompter(None)
    assert secrets.read_secret(None, what="--x", required=False) is None


def test_redact():
    assert secrets.redact("pass:hunter2") == "pass:<redacted>"
    assert secrets.redact("env:VAR") == "env:VAR"
    assert secrets.redact("hunter2") == "<redacted>"


def test_cli_refuses_literal_secret_with_config_exit_code():
    r = run(["genm", "--url", "http://127.0.0.1:9/", "--secret", "pass:hunter2"], env={"CMPCLIENT_ALLOW_PASS_LITERAL": ""})
    assert r.exit_code == ExitCode.CONFIG
    assert "refused" in r.stderr and "hunter2" not in r.stderr


def test_cli_stdin_not_a_tty_never_prompts():
    r = run(["genm", "--url", "http://127.0.0.1:9/", "--authmodule", "HMAC"])
    assert r.exit_code == ExitCode.CONFIG
    assert "not a terminal" in r.stderr


# --------------------------------------------------------------------------- config


def test_load_profile_forms(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[default]\nurl = "http://d/"\n[profiles.p]\nurl = "http://p/"\nimplicit-confirm = true\n'
                   '[profiles.p.crmf]\nreqnewkeyspec = "Ed25519"\n[q]\ntimeout = 5\n')
    assert load_profile(cfg, None) == {"url": "http://d/"}
    assert load_profile(cfg, "p", "crmf") == {"url": "http://p/", "implicit_confirm": True, "reqnewkeyspec": "Ed25519"}
    assert load_profile(cfg, "p", "genm") == {"url": "http://p/", "implicit_confirm": True}
    assert load_profile(cfg, "q") == {"timeout": 5}


def test_config_errors_exit_config(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[p]\nurl = 'x'\n")
    r = run(["genm", "--config", cfg, "--profile", "nope", "--show-config"])
    assert r.exit_code == ExitCode.CONFIG and "not found" in r.stderr
    (tmp_path / "bad.toml").write_text("[p\n")
    r = run(["genm", "--config", tmp_path / "bad.toml", "--show-config"])
    assert r.exit_code == ExitCode.CONFIG and "TOML" in r.stderr


@pytest.mark.parametrize("args,endpoint", [
    (["--url", "http://ca.example:8080/a", "--path", "pkix/"], "http://ca.example:8080/pkix/"),
    (["--server", "ca.example:80/x"], "http://ca.example:80/x"),
    (["--host", "ca.example", "--alias", "ee"], "http://ca.example:8080/ejbca/publicweb/cmp/ee"),
    (["--url", "http://alice:s3cr3tpw@ca.example/x"], "http://alice:***@ca.example/x"),
    ([], None),
])
def test_show_config_names_the_endpoint_a_request_goes_to(args, endpoint):
    env = {"CMPCLIENT_URL": "http://alice:s3cr3tpw@ca.example/x"} if "alice" in str(args) else None
    args = [a for a in args if "alice" not in a and a != "--url"] if env else args
    r = run(["crmf", *args, "--show-config", "--json"], env=env)
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.stdout)["options"]}
    assert rows["endpoint"]["value"] == endpoint and "s3cr3tpw" not in r.stdout
    r = run(["revoke", "--alias", "ee", "--path", "/p", "--show-config"])
    assert r.exit_code == 0 and "not resolved: give --path or --alias, not both" in r.stdout


@pytest.mark.parametrize("url", ["http://alice:s3c?r3tpw@ca.example/pkix", "http://alice:s3c#r3tpw@ca.example/pkix"])
def test_show_config_endpoint_never_shows_a_url_password(url):
    """urllib and the redaction disagree where the authority ends ('?' or '#' in the
    password): the endpoint is resolved from the redacted URL."""
    r = run(["crmf", "--path", "/x", "--show-config", "--json"], env={"CMPCLIENT_URL": url})
    assert r.exit_code == 0, r.output
    assert "r3tpw" not in r.stdout and "s3c" not in r.stdout, r.stdout


def test_show_config_survives_a_url_urllib_cannot_split():
    r = run(["crmf", "--url", "http://[::1", "--path", "/x", "--show-config"])
    assert r.exit_code == 0 and "not resolved" in r.stdout, r.output


def test_show_config_origins_and_redaction(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[profiles.p]\nurl = "http://profile/"\ntimeout = 7\nkeystorepwd = "pass:topsecret"\nunknown = 1\n')
    r = run(["--config", cfg, "--profile", "p", "genm", "--timeout", "9", "--show-config", "--json"],
            env={"CMPCLIENT_AUTHPARAM": "pass:alsosecret", "CMPCLIENT_KEYID": "kid1"})
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    rows = {row["name"]: row for row in doc["options"]}
    assert rows["url"]["value"] == "http://profile/" and rows["url"]["origin"].startswith("profile p")
    assert rows["timeout"]["value"] == 9 and rows["timeout"]["origin"] == "command line"
    assert rows["keyid"]["origin"] == "environment $CMPCLIENT_KEYID"
    assert rows["authparam"]["value"] == "pass:<redacted>"
    assert rows["keystorepwd"]["value"] == "pass:<redacted>"
    assert rows["pvno"]["origin"] == "default"
    assert "ignored" in rows["unknown"]["origin"]
    assert "topsecret" not in r.output and "alsosecret" not in r.output


def test_profile_typos_are_warned_about_and_shared_keys_are_not(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[profiles.p]\nurl = "http://profile/"\nimplict-confirm = true\nreqnewkeyspec = "secp256r1"\n'
                   '[profiles.p.revoke]\nreasn = "superseded"\n[profiles.p.crfm]\nsubject = "CN=x"\n')
    r = run(["--config", cfg, "--profile", "p", "revoke", "--show-config"])
    assert r.exit_code == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: config:")]
    assert len(warnings) == 3, r.stderr
    assert any("'implict-confirm' is not an option of any cmpclient command that reads profiles" in w
               and "'implicit-confirm'?" in w for w in warnings)
    assert any("'reasn' in the [revoke] table is not an option of 'cmpclient revoke'" in w and "'reason'?" in w
               for w in warnings)
    assert any("[crfm] table names no cmpclient command that reads profiles" in w and "[crmf]?" in w for w in warnings)
    assert "reqnewkeyspec" not in r.stderr  # an option of crmf: a shared profile may hold it
    # -q, on the group or on the command, hides warnings; so does shell completion
    assert "warning" not in run(["-q", "--config", cfg, "--profile", "p", "revoke", "--show-config"]).stderr
    assert "warning" not in run(["--config", cfg, "--profile", "p", "revoke", "-q", "--show-config"]).stderr
    completing = subprocess.run(
        [sys.executable, "-m", "cmpclient"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "CMPCLIENT_CONFIG": str(cfg), "CMPCLIENT_PROFILE": "p", "_CMPCLIENT_COMPLETE": "bash_complete",
             "COMP_WORDS": "cmpclient revoke --rea", "COMP_CWORD": "2"})
    assert "--reason" in completing.stdout and completing.stderr == "", completing.stderr
    # serve, proxy and testca read no profile: their options and tables in one are warned about
    cfg.write_text('[profiles.p]\nurl = "http://profile/"\ndata-dir = "/x"\n[profiles.p.serve]\nport = 1\n')
    r = run(["--config", cfg, "--profile", "p", "revoke", "--show-config"])
    assert "'data-dir' is not an option of any cmpclient command that reads profiles" in r.stderr
    assert "[serve] table names no cmpclient command that reads profiles" in r.stderr
    # a clean profile gives none
    cfg.write_text('[profiles.p]\nurl = "http://profile/"\nreqnewkeyspec = "secp256r1"\n[profiles.p.crmf]\npopo = "signature"\n')
    assert "warning" not in run(["--config", cfg, "--profile", "p", "revoke", "--show-config"]).stderr


def test_option_names_literal_matches_the_commands():
    """cmpclient.cli.option_names (read by the profile warnings without importing every
    command) must list the commands that read profiles and all their parameter names."""
    import click

    from cmpclient.cli.config import ProfileCommand
    from cmpclient.cli.main import COMMANDS, cli
    from cmpclient.cli.option_names import OPTION_NAMES, PROFILE_COMMANDS

    ctx = click.Context(cli)
    commands = {name: cli.get_command(ctx, name) for name in COMMANDS}
    readers = {name for name, cmd in commands.items() if isinstance(cmd, ProfileCommand)}
    names = {p.name for name in readers for p in commands[name].params if p.name}
    assert PROFILE_COMMANDS == readers, f"update PROFILE_COMMANDS in cmpclient/cli/option_names.py: {sorted(readers)}"
    assert OPTION_NAMES == names, (
        "update OPTION_NAMES in cmpclient/cli/option_names.py: added " + repr(sorted(names - OPTION_NAMES))
        + ", removed " + repr(sorted(OPTION_NAMES - names)))


def test_env_beats_profile_cli_beats_env(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[default]\nrecipient = "CN=profile"\nsender = "CN=profile"\nalias = "profile"\n')
    r = run(["revoke", "--recipient", "CN=cli", "--show-config"],
            env={"CMPCLIENT_CONFIG": str(cfg), "CMPCLIENT_RECIPIENT": "CN=env", "CMPCLIENT_SENDER": "CN=env"})
    assert r.exit_code == 0, r.stderr
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines()}
    assert "CN=cli" in lines["recipient"]
    assert "CN=env" in lines["sender"]
    assert "profile" in lines["alias"] and "profile default" in lines["alias"]


# --------------------------------------------------------------------------- main group


def test_version_and_dependency_versions():
    r = run(["--version"])
    assert r.exit_code == 0 and r.stdout.startswith("cmpclient ")
    r = run(["--version", "-v"])
    assert "cryptography" in r.stdout and "OpenSSL" in r.stdout


def test_help_lists_every_command_without_importing_them():
    code = (
        "import sys; from click.testing import CliRunner; from cmpclient.cli.main import cli;"
        "r = CliRunner().invoke(cli, ['--help']); print(r.output);"
        "print('HEAVY' if any(m in sys.modules for m in ('pyasn1', 'cryptography.x509', 'cmpclient.cli.enroll_cmd')) else 'LIGHT')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    for name in COMMANDS:
        assert name in out
    assert out.strip().endswith("LIGHT")


# The process entry point pauses the garbage collector while a command loads, then freezes
# what start-up built and resumes it; run in a child so this test process's collector is
# untouched.  A probe command reports what a command sees.
_GC_PROBE = """
import gc, json, sys, types
import click
from cmpclient.cli import main as cli_main
seen = {}
@click.command("probe")
def probe():
    seen.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count())
    runs = gc.get_stats()[0]["collections"]
    junk = [[i] for i in range(5000)]  # a command's own allocations are collected as usual
    seen["collected_while_running"] = gc.get_stats()[0]["collections"] > runs
sys.modules["gc_probe"] = types.SimpleNamespace(probe=probe)
cli_main.COMMANDS["probe"] = ("gc_probe:probe", "probe")
import cmpclient.__main__ as entry
before = gc.get_freeze_count()
rc = entry.main(sys.argv[1:])
print(json.dumps(dict(seen, rc=rc, before=before, end_enabled=gc.isenabled(), end_frozen=gc.get_freeze_count())))
"""


@pytest.mark.parametrize("args", [["probe"], ["--help"], ["no-such-command"]])
def test_process_entry_pauses_the_collector_only_for_start_up(args):
    out = subprocess.run([sys.executable, "-c", _GC_PROBE, *args], capture_output=True, text=True, timeout=120)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["before"] == 0
    assert doc["end_enabled"] is True, "the collector must be running again when the command line returns"
    assert doc["end_frozen"] > 10_000, "at exit everything alive is frozen: the interpreter's last collections skip it"
    if args == ["probe"]:
        assert doc["rc"] == 0
        assert doc["enabled"] is True, "a command (serve, bench, proxy) must run with the collector on"
        assert doc["frozen"] > 10_000, "start-up's objects (click, schemas) are frozen before the command runs"
        assert doc["collected_while_running"] is True
    else:
        assert doc["rc"] == (0 if args == ["--help"] else 2)


def test_library_entry_leaves_the_collector_alone():
    code = ("import gc, sys; from cmpclient.cli.main import main; rc = main(['--version']);"
            "print(rc, gc.isenabled(), gc.get_freeze_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.split()[-3:] == ["0", "True", "0"]


def test_a_missing_module_breaks_only_its_command(monkeypatch):
    monkeypatch.setitem(COMMANDS, "ghost", ("cmpclient.cli.no_such_module:ghost", "A ghost."))
    r = CliRunner().invoke(cli, ["ghost"])
    assert r.exit_code == ExitCode.USAGE and "not available" in r.output
    assert run(["--version"]).exit_code == 0
    assert "ghost" in run(["--help"]).stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell):
    r = run(["completion", shell])
    assert r.exit_code == 0 and "_CMPCLIENT_COMPLETE" in r.stdout


def test_subprocess_entry_point_version():
    out = subprocess.run([str(EXE), "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("cmpclient")
    out = subprocess.run([sys.executable, "-m", "cmpclient", "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0


# --------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize("args,needle", [
    (["crmf", "--url", "http://127.0.0.1:9/", "--secret", "env:X"], "needs the subject"),
    (["crmf", "--dn", "CN=x", "--reqnewkeyspec", "RSA1000", "--url", "http://127.0.0.1:9/"], "RSA key size"),
    (["crmf", "--dn", "CN=x", "--ir", "--cr"], "not both"),
    (["revoke", "--url", "http://127.0.0.1:9/"], "what to revoke"),
    (["revoke", "--issuer", "CN=x", "--url", "http://127.0.0.1:9/"], "go together"),
    (["revoke", "--issuer", "CN=x", "--serno", "zz", "--url", "http://127.0.0.1:9/"], "hexadecimal"),
    (["revoke", "--reason", "bogus", "--serno", "1", "--issuer", "CN=x"], "unknown revocation reason"),
    (["genm", "--infotype", "nonsense", "--url", "http://127.0.0.1:9/"], "unknown --infotype"),
    (["genm"], "no CMP server"),
    (["update", "--url", "http://127.0.0.1:9/"], "current certificate"),
    (["crmf", "--dn", "CN=x", "--url", "ftp://x/", "--newkey", "/nonexistent"], "private key"),
])
def test_usage_and_config_errors(args, needle):
    r = run(args)
    assert r.exit_code in (ExitCode.USAGE, ExitCode.CONFIG), r.stderr
    assert needle in r.stderr


def test_click_usage_error_is_exit_2():
    r = run(["crmf", "--popo", "bogus"])
    assert r.exit_code == ExitCode.USAGE


def test_transport_error_exit_code_and_no_color(monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run(["genm", "--url", f"http://127.0.0.1:{port}/", "--secret", "env:SEC"], env={"SEC": "x"})
    assert r.exit_code == ExitCode.TRANSPORT
    assert "\x1b[" not in r.stderr
    assert "error (transport, exit 4)" in r.stderr and "hint:" in r.stderr


# --------------------------------------------------------------------------- helpers


def test_request_helpers():
    from cryptography import x509

    from cmpclient.cli.enroll_cmd import ext_key_usage, general_names, key_usage, parse_serial
    from cmpclient.cli.genm_cmd import info_type_oid
    from cmpclient.cli.revoke_cmd import parse_reason

    names = general_names(["dns:a.example,ip:192.0.2.1", "email:x@example.org", "b.example", "uri:https://x/"])
    assert [type(n) for n in names] == [x509.DNSName, x509.IPAddress, x509.RFC822Name, x509.DNSName,
                                        x509.UniformResourceIdentifier]
    # A dirName keeps its own commas; a typed or bare item after it starts a new name.
    names = general_names(["dirName:CN=a,O=b,ip:192.0.2.1", r"dn:CN=a\,b,2.5.4.10=x,c.example", "DN: /CN=x/O=y"])
    assert [type(n) for n in names] == [x509.DirectoryName, x509.IPAddress, x509.DirectoryName, x509.DNSName,
                                        x509.DirectoryName]
    assert names[0].value.rfc4514_string() == "CN=a,O=b"
    assert names[2].value.rfc4514_string() == r"CN=a\,b,O=x" and names[3].value == "c.example"
    assert names[4].value.rfc4514_string() == "O=y,CN=x"
    # an escaped backslash at the end of a value does not escape the comma after it
    names = general_names([r"dirName:CN=a\\,dns:x.example"])
    assert [type(n) for n in names] == [x509.DirectoryName, x509.DNSName] and names[1].value == "x.example"
    ku = key_usage("digitalSignature,nonRepudiation")
    assert ku.digital_signature and ku.content_commitment and not ku.key_encipherment
    assert [o.dotted_string for o in ext_key_usage("serverAuth,1.2.3.4")] == ["1.3.6.1.5.5.7.3.1", "1.2.3.4"]
    assert parse_serial("0x1F") == 31 and parse_serial("0a:ff") == 0x0AFF
    assert parse_reason("keycompromise") == 1 and parse_reason("6") == 6 and parse_reason(None) is None
    assert info_type_oid("caCerts") == "1.3.6.1.5.5.7.4.17" and info_type_oid("1.2.3.4") == "1.2.3.4"


def test_server_url_and_auth_module():
    from cmpclient.cli.options import _auth_module, server_url

    assert server_url({"host": "ca", "alias": "ee"}) == "http://ca:8080/ejbca/publicweb/cmp/ee"
    assert server_url({"host": "ca", "port": 80, "alias": "x"}) == "http://ca:80/ejbca/publicweb/cmp/x"
    assert server_url({"url": "tcp://ca:829", "host": "other"}) == "tcp://ca:829"
    assert server_url({}) is None
    assert _auth_module({"authparam": "env:X"}, None) == "HMAC"
    assert _auth_module({"authparam": "env:X"}, object()) == "EndEntityCertificate"
    assert _auth_module({"authmodule": "regtokenpwd"}, None) == "RegTokenPwd"


def test_render_error_document():
    from cmpclient.cli.render import error_document
    from cmpclient.errors import CMPRejection

    doc = error_document(CMPRejection("no", fail_info_names=["badPOP"], status_strings=["x"]), ExitCode.REJECTED)
    assert doc == {"ok": False, "exit_code": 7, "error": "CMPRejection", "message": "no", "hint": None,
                   "pki_status": "rejection", "fail_info": ["badPOP"], "status_string": ["x"]}


def test_unexpected_exception_is_failure_exit_code(monkeypatch):
    import cmpclient.cli.genm_cmd as g

    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(g, "build_client", boom)
    r = run(["genm", "--url", "http://127.0.0.1:9/"])
    assert r.exit_code == ExitCode.FAILURE and "kaboom" in r.stderr and "-vv" in r.stderr


def test_keyboard_interrupt_exit_code(monkeypatch):
    import cmpclient.cli.genm_cmd as g

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(g, "build_client", interrupted)
    r = run(["genm", "--url", "http://127.0.0.1:9/"])
    assert r.exit_code == ExitCode.INTERRUPTED


def test_serial_numbers_are_shown_as_openssl_prints_them(tmp_path):
    """Upper-case hex octets (an even number of digits), as `openssl x509 -serial` does, so
    a serial can be grepped across the tools."""
    import subprocess

    from cmpclient.cli.results import serial_hex

    assert serial_hex(0x6F9) == "06F9" and serial_hex(0xABCD) == "ABCD" and serial_hex(0) == "00"
    key = tmp_path / "k.pem"
    for serial in ("0x6F921E93", "0x1", "0x80", "0x0123456789ABCDEF0123456789ABCDEF01234567"):
        cert = tmp_path / "c.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", cert, "-subj", "/CN=s", "-set_serial", serial, "-days", "1"],
                       check=True, capture_output=True, timeout=60)
        shown = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-serial"], check=True,
                               capture_output=True, text=True, timeout=60).stdout.strip()
        assert shown == "serial=" + serial_hex(int(serial, 16)), (serial, shown)
