"""A CMP proxy (as EJBCA's): clients talk to it as to the CA; it checks, forwards, answers.

* :class:`~cmpclient.proxy.core.Proxy` -- the pure core, ``handle(alias, der) ->
  (http_status, body, content_type)`` with an injectable ``send(alias, der) -> bytes``;
  its module docstring has the error table.
* :mod:`~cmpclient.proxy.config` -- the TOML configuration (per alias: upstream, MAC keys,
  issuer chain, CRL).
* :mod:`~cmpclient.proxy.wsgi` / :mod:`~cmpclient.proxy.serve` -- HTTP and TCP edges.
* :mod:`~cmpclient.proxy.upstream` -- forwarding (a transaction keeps its upstream connection until it ends) and CRL fetching.
"""

from cmpclient.proxy.config import AliasPolicy, ProxyConfig, load_config, parse_config
from cmpclient.proxy.core import Proxy, ProxyRefusal

__all__ = ["AliasPolicy", "ProxyConfig", "Proxy", "ProxyRefusal", "load_config", "parse_config"]
