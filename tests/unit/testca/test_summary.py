"""What ``serve`` prints about the CA must help a user without leaking secrets."""

from __future__ import annotations


def test_summary_names_files_and_aliases_but_no_secrets(testca) -> None:
    text = testca.summary()
    assert str(testca.data_dir) in text
    for alias in ("ra", "client", "ra-sig", "servergen", "lwcmp"):
        assert f"  {alias}:" in text
    waiting = [ee.username for ee in testca.store.list_end_entities() if ee.status == "NEW" and ee.password]
    assert waiting and all(name in text for name in waiting)  # usernames awaiting enrolment are shown ...
    secrets = {alias.hmac_secret for alias in testca.config.aliases.values() if alias.hmac_secret}
    secrets |= {ee.password for ee in testca.store.list_end_entities() if ee.password}
    assert secrets, "the default configuration has shared secrets and EE passwords"
    for secret in secrets:  # ... their passwords and the aliases' shared secrets are not
        assert secret not in text, f"secret {secret!r} printed in the summary"
