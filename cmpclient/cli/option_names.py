"""The parameter names of every cmpclient command, for config profile warnings.

Kept as a literal so that checking a profile for typos imports no command module (cold
start, issue #5). ``tests/unit/cli/test_cli_core.py`` compares it with the commands'
parameters and prints the new literal when an option is added or renamed.
"""

OPTION_NAMES = frozenset({
    "accept_pvno1", "alias", "allow_literal_secrets", "altname", "as_json", "authmodule",
    "authparam", "cacertsout", "capture", "cert", "certout", "chainout", "concurrency", "config",
    "config_path", "count", "crlout", "csr", "data_dir", "days", "dest", "digest", "dn",
    "dump_responses", "eku", "expect", "expect_sender", "extra_certs_friendly_name", "extracerts",
    "extracertsout", "files", "host", "ignore_keyusage", "implicit_confirm", "includepopo",
    "infotype", "inner_rspout", "inputs", "issuer", "json_output", "junit", "keep_alive", "key",
    "key_spec", "key_usage", "keyid", "keyout", "keypass", "keystore", "keystorepwd",
    "list_scenarios", "listen", "max_depth", "missing_recip_nonce", "nest_with_ra_cert",
    "nest_with_ra_key", "nest_with_ra_keypass", "newkey", "newkeypass", "newwithnew", "no_confirm",
    "not_after", "not_before", "oldcert", "oldcrl", "oldwithold", "only", "p12", "p12out", "p12pwd",
    "password_source", "pbm_iterations", "pbm_mac", "pbm_owf", "pbmac1", "popo", "port",
    "processes", "profile", "protocol_encr_key", "pvno", "quiet", "ra_cert", "ra_chain", "ra_key",
    "ra_keypass", "reason", "recipient", "reject", "reqin", "reqnewkeyspec", "reqout", "rsa_pss",
    "rspin", "rspout", "same_key", "sender", "serial", "serno", "server_keygen", "shell",
    "show_config", "skip", "srvcert", "state", "state_out", "subject_template", "tcp_listen",
    "tcp_port", "timeout", "tls_ca", "tls_cert", "tls_insecure", "tls_key", "total_timeout",
    "trusted", "unprotected_errors", "untrusted", "upstream", "upstream_timeout", "url", "use_cr",
    "use_ir", "username", "verbose", "workers"
})
