"""Habits of openssl cmp and EJBCA cmpclient users, and the promises around them: profile
values for repeatable options, --json on every error (click's own usage errors, dump),
bench's exit status, scheme-less --server, openssl's underscore spellings, the
CMPCLIENT_<OPTION> names and HTTP status hints."""

from __future__ import annotations

import json
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import click
import pytest
from click.testing import CliRunner

from cmpclient.cli.main import COMMANDS, cli
from cmpclient.errors import ExitCode


def run(args, env=None, input=None):
    merged = {"NO_COLOR": "1", "CMPCLIENT_CONFIG": "", "CMPCLIENT_PROFILE": ""}
    merged.update(env or {})
    return CliRunner().invoke(cli, [str(a) for a in args], env=merged, input=input, catch_exceptions=False)


def show_config(args, env=None):
    r = run([*args, "--show-config", "--json"], env=env)
    assert r.exit_code == 0, r.stderr
    return {row["name"]: row for row in json.loads(r.stdout)["options"]}


@pytest.fixture
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------- A: profile values of repeatable options


@pytest.mark.parametrize("command,key,option", [
    ("crmf", "trusted", "trusted"), ("crmf", "untrusted", "untrusted"), ("crmf", "extracerts", "extracerts"),
    ("crmf", "altname", "altname"), ("p10cr", "sans", None), ("genm", "infotype", "infotype"),
    ("revoke", "trusted", "trusted"), ("bench", "untrusted", "untrusted"),
])
def test_a_single_string_in_a_profile_is_a_one_item_list(tmp_path, command, key, option):
    if option is None:
        key, option = "altname", "altname"
    cfg = tmp_path / "cmp.toml"
    cfg.write_text(f'[profiles.lw]\n{key} = "/path/RootCA.pem"\n')
    rows = show_config(["--config", cfg, "--profile", "lw", command])
    assert rows[option]["value"] == ["/path/RootCA.pem"]
    assert rows[option]["origin"].startswith("profile lw")
    # a TOML list still works, and so does the per-command table
    cfg.write_text(f'[profiles.lw]\n{key} = ["a.pem", "b.pem"]\n[profiles.lw.{command}]\nkeyid = "k"\n')
    assert show_config(["--config", cfg, "--profile", "lw", command])[option]["value"] == ["a.pem", "b.pem"]


def test_a_single_string_for_every_repeatable_option_of_every_profile_command(tmp_path):
    ctx = click.Context(cli)
    for name in sorted(COMMANDS):
        cmd = cli.get_command(ctx, name)
        if cmd is None or not hasattr(cmd, "params"):
            continue
        repeatable = [p.name for p in cmd.params if getattr(p, "multiple", False) and p.name != "inputs"]
        if not repeatable or name not in ("bench", "certconf", "check", "crmf", "genm", "p10cr", "revoke", "update"):
            continue
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text("[default]\n" + "".join(f'{p} = "v-{p}"\n' for p in repeatable))
        extra = ["--state", "x.json"] if name == "certconf" else []
        rows = show_config([name, *extra], env={"CMPCLIENT_CONFIG": str(cfg)})
        for p in repeatable:
            assert rows[p]["value"] == [f"v-{p}"], (name, p)


def test_a_bad_profile_value_names_the_key_and_the_file_not_an_env_var(tmp_path):
    cfg = tmp_path / "cmp.toml"
    cfg.write_text('[profiles.lw]\ntimeout = "abc"\n')
    r = run(["--config", cfg, "--profile", "lw", "crmf", "--show-config"])
    assert r.exit_code == ExitCode.CONFIG, r.stderr
    assert "env var" not in r.stderr and "CMPCLIENT_TIMEOUT" not in r.stderr
    assert f"config file '{cfg}', profile lw, key 'timeout': 'abc' is not a number of seconds" in r.stderr
    assert "--timeout on the command line" in r.stderr
    # the key as it is spelt, in the per-command table; --json gets the error document
    cfg.write_text('[lw.crmf]\nimplicit-confirm = "perhaps"\n')
    r = run(["--json", "--config", cfg, "--profile", "lw", "crmf", "--show-config"])
    assert r.exit_code == ExitCode.CONFIG
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 3 and doc["error"] == "ConfigError"
    assert "profile lw, table [crmf], key 'implicit-confirm'" in doc["message"]
    # a list for an option that takes one value
    cfg.write_text('[lw]\nurl = ["http://a/", "http://b/"]\n')
    r = run(["--config", cfg, "--profile", "lw", "genm", "--show-config"])
    assert r.exit_code == ExitCode.CONFIG and "key 'url': a list (2 values)" in r.stderr


def test_a_value_error_names_the_env_var_only_when_it_came_from_there():
    r = run(["crmf", "--popo", "sig"])
    assert r.exit_code == ExitCode.USAGE and "Invalid value for '--popo': 'sig'" in r.stderr
    assert "env var" not in r.stderr
    r = run(["crmf", "--show-config"], env={"CMPCLIENT_POPO": "sig"})
    assert r.exit_code == ExitCode.USAGE and "'--popo' (from $CMPCLIENT_POPO)" in r.stderr


# ------------------------------------------------ E: CMPCLIENT_<OPTION> names, --help


def test_e_nested_reads_the_documented_variable_names():
    rows = show_config(["nested"], env={"CMPCLIENT_IN": "a.der", "CMPCLIENT_DUMP": "false"})
    assert rows["inputs"]["value"] == ["a.der"] and rows["inputs"]["origin"] == "environment $CMPCLIENT_IN"
    assert rows["dump_responses"]["value"] is False and rows["dump_responses"]["origin"] == "environment $CMPCLIENT_DUMP"
    rows = show_config(["nested"], env={"CMPCLIENT_INPUTS": "b.der"})  # the old name still works
    assert rows["inputs"]["value"] == ["b.der"] and rows["inputs"]["origin"] == "environment $CMPCLIENT_INPUTS"
    rows = show_config(["bench"], env={"CMPCLIENT_CR": "1"})
    assert rows["use_cr"]["value"] is True


#: Options of the client commands that read no variable (README: "-v, -q, --json and
#: --show-config read none"; --config/--profile read CMPCLIENT_CONFIG/CMPCLIENT_PROFILE).
_NO_VARIABLE = {"verbose", "quiet", "json_output", "show_config", "config", "profile", "help"}


@pytest.mark.parametrize("command", ["crmf", "p10cr", "update", "revoke", "certconf", "genm", "check", "bench", "nested"])
def test_e_every_client_option_reads_its_variable(command):
    """README: every option of the client commands also reads CMPCLIENT_<OPTION> (crmf --cr
    and --ir were plain click options and read none)."""
    cmd = cli.get_command(click.Context(cli), command)
    missing = [p.name for p in cmd.params
               if isinstance(p, click.Option) and not p.envvar and p.name not in _NO_VARIABLE]
    assert missing == [], f"{command}: options without CMPCLIENT_* variable: {missing}"


def test_e_crmf_cr_and_ir_from_the_environment():
    rows = show_config(["crmf"], env={"CMPCLIENT_CR": "1"})
    assert rows["use_cr"]["value"] is True and rows["use_cr"]["origin"] == "environment $CMPCLIENT_CR"
    rows = show_config(["crmf"], env={"CMPCLIENT_IR": "true"})
    assert rows["use_ir"]["value"] is True and rows["use_ir"]["origin"] == "environment $CMPCLIENT_IR"


def test_e_every_option_with_a_variable_shows_it_in_help_named_after_the_option():
    ctx = click.Context(cli)
    for name in sorted(COMMANDS):
        cmd = cli.get_command(ctx, name)
        if cmd is None or isinstance(cmd, click.Group) or name in ("serve", "proxy"):
            continue  # the servers name their variables (CMPCLIENT_TESTCA_*) in their help texts
        with click.Context(cmd, info_name=name, parent=ctx) as sub:
            helptext = cmd.get_help(sub)
        flat = " ".join(helptext.split())
        for p in cmd.params:
            if not isinstance(p, click.Option) or not p.envvar or p.hidden:
                continue
            envvars = [p.envvar] if isinstance(p.envvar, str) else list(p.envvar)
            assert p.show_envvar, (name, p.name)
            assert f"[env var: {', '.join(envvars)}" in flat, (name, p.name)
            if p.name == "allow_literal_secrets":
                continue
            long = next(o for o in p.opts if o.startswith("--"))
            import re

            documented = "CMPCLIENT_" + re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", long[2:]).replace("-", "_").upper()
            assert envvars[0] == documented, (name, p.name, envvars)


# ------------------------------------------------------------ B: --json on every error


@pytest.mark.parametrize("args,message", [
    (["--json", "crmf", "--popo", "sig"], "Invalid value for '--popo'"),
    (["crmf", "--popo", "sig", "--json"], "Invalid value for '--popo'"),
    (["--json", "crmf", "--bogus"], "No such option '--bogus'"),
    (["--json", "--bogus", "crmf"], "No such option '--bogus'"),
    (["--json", "bogus"], "No such command 'bogus'"),
    (["--json", "nested"], "Missing option '--in'"),
    (["--json", "bench", "-n", "0"], "Invalid value for '--count' / '-n'"),
    (["--json", "testca", "ee", "add"], "Missing option '--username'"),
    (["--json", "dump"], "Missing argument 'FILE...'"),
])
def test_b_click_usage_errors_print_the_json_error_document(args, message):
    r = run(args)
    assert r.exit_code == ExitCode.USAGE
    doc = json.loads(r.stdout)  # exactly one document
    assert doc["ok"] is False and doc["exit_code"] == 2 and doc["error"] == "UsageError"
    assert message in doc["message"] and doc["hint"].startswith("see '") and doc["hint"].endswith(" --help'")
    assert message in r.stderr  # people still get click's text on stderr


def test_b_no_json_document_without_json():
    r = run(["crmf", "--popo", "sig"])
    assert r.exit_code == ExitCode.USAGE and r.stdout == ""


def test_b_dump_json_error_document(tmp_path):
    bad = tmp_path / "truncated.der"
    bad.write_bytes(b"\x30\x82\x01")
    r = run(["--json", "dump", bad])
    assert r.exit_code == ExitCode.PROTOCOL
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 5 and doc["error"] == "DecodeError"
    assert "truncated" in doc["message"] and doc["source"] == str(bad)
    r = run(["dump", "--json", "/nonexistent/x.der"])
    assert r.exit_code == ExitCode.CONFIG and json.loads(r.stdout)["exit_code"] == 3


def test_b_dump_json_several_files_carry_the_error_in_place(tmp_path):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    good = sorted((repo / "tests" / "vectors" / "openssl").glob("*/rsp1.der"))[0]
    bad = tmp_path / "truncated.der"
    bad.write_bytes(b"\x30\x82\x01")
    r = run(["dump", "--json", bad, good])
    assert r.exit_code == ExitCode.PROTOCOL
    doc = json.loads(r.stdout)
    assert [sorted(e) for e in doc] == [["error", "source"], ["message", "source"]]
    assert doc[0]["source"] == str(bad) and doc[0]["error"]["exit_code"] == 5
    assert doc[1]["source"] == str(good) and "bodyType" in doc[1]["message"]


# ------------------------------------------------------------------- C: bench exit status


def test_c_bench_transport_failures_exit_4_with_no_latency(closed_port):
    args = ["bench", "--url", f"http://127.0.0.1:{closed_port}/x", "--authparam", "env:CMP_SECRET", "--keyid", "ra",
            "-n", "3", "-c", "1"]
    r = run(args, env={"CMP_SECRET": "x"})
    assert r.exit_code == ExitCode.TRANSPORT, r.output
    assert r.stdout.startswith("0/3 ok") and "latency n/a" in r.stdout and "0.0 ms" not in r.stdout
    assert "3 x TransportError" in r.stderr
    r = run([*args, "--json"], env={"CMP_SECRET": "x"})
    assert r.exit_code == ExitCode.TRANSPORT
    doc = json.loads(r.stdout)
    assert doc["latency_ms"] == {"p50": None, "p90": None, "p99": None} and doc["exit_code"] == 4


@pytest.mark.parametrize("failures,code", [
    ([("CMPRejection", 2)], ExitCode.REJECTED),
    ([("CMPErrorMessage", 4)], ExitCode.REJECTED),
    ([("TransportError", 5)], ExitCode.TRANSPORT),
    ([("HTTPStatusError", 1)], ExitCode.TRANSPORT),
    ([("TransportTimeout", 1)], ExitCode.TIMEOUT),
    ([("PollTimeout", 1)], ExitCode.TIMEOUT),
    ([("ProtectionError", 1)], ExitCode.PROTECTION),
    ([("TrustError", 1)], ExitCode.PROTECTION),
    ([("ProtocolError", 1)], ExitCode.PROTOCOL),
    ([("CMPClientError", 1)], ExitCode.FAILURE),
    ([("CMPRejection", 3), ("TransportError", 1), ("TransportTimeout", 1)], ExitCode.REJECTED),
    ([("CMPRejection", 1), ("CMPErrorMessage", 1), ("TransportError", 2)], ExitCode.TRANSPORT),  # 2 vs 2: lowest
])
def test_c_bench_exit_status_is_the_most_frequent_kind_of_failure(failures, code):
    import cmpclient.errors as errors
    from cmpclient.client.bulk import BulkReport

    halves = BulkReport(), BulkReport()  # as two worker processes report them
    for n, (name, times) in enumerate(failures):
        for _ in range(times):
            halves[n % 2].record_failure(getattr(errors, name)(f"{name} happened"))
    report = BulkReport()
    for half in halves:
        report.merge(half)
    assert report.exit_code() == code
    assert report.failed == sum(t for _, t in failures) == sum(report.errors.values())
    assert BulkReport().exit_code() == ExitCode.OK


# -------------------------------------------------------------------- D: openssl habits


def test_d_server_without_a_scheme_is_http(closed_port):
    from cmpclient.cli.options import with_scheme

    assert with_scheme("127.0.0.1:8080/pkix/") == "http://127.0.0.1:8080/pkix/"
    assert with_scheme("[::1]:8080/pkix/") == "http://[::1]:8080/pkix/"
    assert with_scheme("ca.example") == "http://ca.example"
    for url in ("https://ca/x", "tcp://ca:829", "HTTP://ca/x", None, ""):
        assert with_scheme(url) == url
    assert with_scheme("http:/ca/x") == "http:/ca/x"  # a typo stays a typo (the transport refuses it)
    r = run(["genm", "--server", f"127.0.0.1:{closed_port}/pkix/", "--secret", "env:S"], env={"S": "x"})
    assert r.exit_code == ExitCode.TRANSPORT, r.stderr
    assert f"http://127.0.0.1:{closed_port}/pkix/" in r.stderr and "unsupported server URL" not in r.stderr
    rows = show_config(["genm", "--server", "[::1]:8080/pkix/"])
    assert rows["url"]["value"] == "http://[::1]:8080/pkix/"
    rows = show_config(["genm"], env={"CMPCLIENT_URL": "localhost:8080/x"})
    assert rows["url"]["value"] == "http://localhost:8080/x"
    # a password in a scheme-less URL is still refused on the command line
    r = run(["genm", "--server", f"u:pw@127.0.0.1:{closed_port}/", "--secret", "env:S"],
            env={"S": "x", "CMPCLIENT_ALLOW_PASS_LITERAL": ""})
    assert r.exit_code == ExitCode.CONFIG and "refused on the command line" in r.stderr and "pw" not in r.stderr


@pytest.mark.parametrize("command", ["crmf", "p10cr", "update", "revoke", "genm", "bench"])
def test_d_openssl_underscore_spellings(command):
    args = [command, "--unprotected_errors", "--total_timeout", "5", "--keep_alive", "--expect_sender", "CN=x",
            "--ignore_keyusage", "--missing_recip_nonce", "--tls_insecure", "--pbm_iterations=7"]
    if command in ("crmf", "p10cr", "update", "bench"):
        args.append("--implicit_confirm")
    rows = show_config(args)
    for name, value in [("unprotected_errors", True), ("total_timeout", 5.0), ("keep_alive", 1),
                        ("expect_sender", "CN=x"), ("ignore_keyusage", True), ("missing_recip_nonce", True),
                        ("tls_insecure", True), ("pbm_iterations", 7)]:
        assert rows[name]["value"] == value and rows[name]["origin"] == "command line", name
    if "--implicit_confirm" in args:
        assert rows["implicit_confirm"]["value"] is True


def test_d_underscores_leave_choices_commands_profiles_and_env_alone(tmp_path):
    # Choice values (case-insensitive ones keep their canonical spelling) and commands
    rows = show_config(["crmf", "--popo", "RAVERIFY", "--authmodule", "hmac", "--no_keep_alive"])
    assert rows["popo"]["value"] == "raverify" and rows["authmodule"]["value"] == "HMAC"
    assert rows["no_keep_alive"]["value"] is True
    assert run(["check", "--expect", "ejbca", "--list"]).exit_code == 0
    assert run(["completion", "bash"]).exit_code == 0
    assert run(["testca", "ee", "--help"]).exit_code == 0
    assert run(["crmf", "--extraCertsFriendlyName", "x", "--show-config"]).exit_code == 0
    # profile keys in either spelling, environment variables with underscores
    cfg = tmp_path / "c.toml"
    cfg.write_text('[default]\ntotal_timeout = 9\nexpect-sender = "CN=p"\n')
    rows = show_config(["crmf"], env={"CMPCLIENT_CONFIG": str(cfg), "CMPCLIENT_UNPROTECTED_ERRORS": "1"})
    assert rows["total_timeout"]["value"] == 9 and rows["expect_sender"]["value"] == "CN=p"
    assert rows["unprotected_errors"]["origin"] == "environment $CMPCLIENT_UNPROTECTED_ERRORS"
    # an unknown underscore option is still an error, suggesting the documented spelling
    r = run(["crmf", "--implicit_confirmm"])
    assert r.exit_code == ExitCode.USAGE and "--implicit-confirm" in r.stderr


def test_d_openssl_path_option():
    """openssl's -path: "HTTP path at the CMP server (aka CMP alias) to use for POST requests;
    defaults to any path given with -server, else '/'"."""
    from cmpclient.cli.options import server_url
    from cmpclient.errors import UsageError

    assert server_url({"url": "127.0.0.1:8080", "path": "ejbca/publicweb/cmp/ra"}) == \
        "http://127.0.0.1:8080/ejbca/publicweb/cmp/ra"
    assert server_url({"url": "https://ca.example/pkix/", "path": "/other"}) == "https://ca.example/other"
    assert server_url({"url": "[::1]:8080/x", "path": "y"}) == "http://[::1]:8080/y"
    assert server_url({"url": "ca.example", "path": ""}) == "http://ca.example/"
    assert server_url({"url": "127.0.0.1:8080/pkix/"}) == "http://127.0.0.1:8080/pkix/"
    assert server_url({"host": "ca", "port": 80, "path": "cmp/a"}) == "http://ca:80/cmp/a"
    with pytest.raises(UsageError, match="--path or --alias"):
        server_url({"host": "ca", "alias": "ra", "path": "cmp/a"})
    with pytest.raises(UsageError, match="needs a server"):
        server_url({"path": "cmp/a"})


def test_d_openssl_keep_alive_numbers(closed_port):
    """openssl's -keep_alive 0|1|2 as --keep_alive N, beside --keep-alive alone and --no-keep-alive;
    a profile's boolean still reads."""
    from cmpclient.cli.options import keep_alive_of
    from cmpclient.errors import UsageError

    for args, level in [([], 1), (["--keep_alive", "0"], 0), (["--keep-alive"], 1), (["--keep_alive=2"], 2),
                        (["--no_keep_alive"], 0), (["--keep-alive", "1"], 1)]:
        rows = show_config(["crmf", *args])
        params = {name: row["value"] for name, row in rows.items()}
        assert keep_alive_of(params) == level, args
    r = run(["genm", "--keep_alive", "3"])
    assert r.exit_code == ExitCode.USAGE and "keep alive required" in r.stderr
    assert keep_alive_of({"keep_alive": False}) == 0 and keep_alive_of({"keep_alive": "true"}) == 1
    # every boolean word click's flag took from CMPCLIENT_KEEP_ALIVE still reads
    for word, level in [("y", 1), ("t", 1), ("yes", 1), ("on", 1), ("n", 0), ("f", 0), ("no", 0), ("off", 0)]:
        assert show_config(["crmf"], env={"CMPCLIENT_KEEP_ALIVE": word})["keep_alive"]["value"] == level, word
    with pytest.raises(UsageError, match="contradict"):
        keep_alive_of({"keep_alive": 2, "no_keep_alive": True})
    # keep-alive required cannot be honoured over TCP (one connection per message): said up front
    r = run(["genm", "--url", f"tcp://127.0.0.1:{closed_port}", "--keep-alive", "2", "--secret", "env:S"], env={"S": "x"})
    assert r.exit_code == ExitCode.USAGE and "cannot be honoured over tcp://" in r.stderr


# ------------------------------------------------------------ E: HTTP status hints


@pytest.fixture
def file_server(tmp_path):
    """python -m http.server: answers POST with 501 Not Implemented."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_e_http_501_hints_that_this_is_not_a_cmp_endpoint(file_server):
    r = run(["genm", "--url", file_server, "--secret", "env:S"], env={"S": "x"})
    assert r.exit_code == ExitCode.TRANSPORT
    assert "501" in r.stderr and "probably not a CMP endpoint" in r.stderr and "CA's log" not in r.stderr


@pytest.mark.parametrize("status,needle", [
    (501, "probably not a CMP endpoint"), (405, "probably not a CMP endpoint"), (500, "CA's log"),
    (503, "CA's log"), (404, "<alias>"),
])
def test_e_status_hints(status, needle):
    from cmpclient.transport.http import _status_hint

    assert needle in _status_hint(status, "http://x/", None)


@pytest.mark.parametrize("number, method", [("-1", "popo_none"), ("0", "popo_ra_verified"), ("1", "popo_signature"),
                                            ("2", "popo_key_agreement")])
def test_d_openssl_popo_numbers(number, method):
    """openssl cmp's -popo takes numbers: -1 none, 0 raVerified, 1 signature, 2 keyenc."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from cmpclient.cli.enroll_cmd import apply_popo

    assert show_config(["crmf", "--popo", number])["popo"]["value"] == number  # "-1" is a value, not an option

    class Builder:
        def __getattr__(self, name):
            return lambda *args: name

    assert apply_popo(Builder(), {"popo": number}, ec.generate_private_key(ec.SECP256R1())) == method
