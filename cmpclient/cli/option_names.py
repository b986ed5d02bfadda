"""What config profiles can set, for the profile warnings (cli/config.py).

Kept as literals so that checking a profile for typos imports no command module (cold
start, issue #5). ``tests/unit/cli/test_cli_core.py`` compares them with the commands and
says what to change when a command or an option is added, renamed or removed.
"""

#: The commands that read a profile (click commands of class ``ProfileCommand``).
PROFILE_COMMANDS = frozenset({
    "bench", "certconf", "check", "crmf", "genm", "p10cr", "revoke", "update"
})

#: The parameter names of those commands.
OPTION_NAMES = frozenset({
    "accept_pvno1", "alias", "allow_literal_secrets", "altname", "authmodule", "authparam",
    "cacertsout", "capture", "cert", "certout", "chainout", "concurrency", "config", "count",
    "crlout", "csr", "days", "dest", "digest", "dn", "eku", "expect", "expect_sender",
    "extra_certs_friendly_name", "extracerts", "extracertsout", "host", "ignore_keyusage",
    "implicit_confirm", "includepopo", "infotype", "issuer", "json_output", "junit", "keep_alive", "no_keep_alive", "path",
    "key", "key_spec", "key_usage", "keyid", "keyout", "keypass", "keystore", "keystorepwd",
    "list_scenarios", "missing_recip_nonce", "nest_with_ra_cert", "nest_with_ra_key",
    "nest_with_ra_keypass", "newkey", "newkeypass", "newwithnew", "no_confirm", "not_after",
    "not_before", "oldcert", "oldcrl", "oldwithold", "only", "p12", "p12out", "p12pwd",
    "pbm_iterations", "pbm_mac", "pbm_owf", "pbmac1", "popo", "port", "processes", "profile",
    "protocol_encr_key", "pvno", "quiet", "reason", "recipient", "reject", "reqin", "reqnewkeyspec",
    "reqout", "rsa_pss", "rspin", "rspout", "same_key", "sender", "serno", "server_keygen",
    "show_config", "skip", "srvcert", "state", "state_out", "subject_template", "timeout", "tls_ca",
    "tls_cert", "tls_insecure", "tls_key", "total_timeout", "trusted", "unprotected_errors",
    "unprotected_requests", "untrusted", "url", "use_cr", "use_ir", "verbose"
})
