"""The bundled EJBCA-compatible CMP test CA (pure core; HTTP/TCP adapters live beside it).

Public API::

    TestCA.open(config_path, data_dir) -> TestCA
    TestCA.handle(alias, der) -> (http_status, der)   # never raises
    TestCA.alias_exists(alias), .summary(), .close(), .store, .data_dir, .tcp_alias
    load_config(path) -> Config, DEFAULT_CONFIG_TOML

``testca`` never imports :mod:`cmpclient.client` or :mod:`cmpclient.cli`: the CA and the
client must not share a bug unseen.
"""

from cmpclient.testca.config import DEFAULT_CONFIG_TOML, load_config
from cmpclient.testca.core import TestCA

__all__ = ["TestCA", "load_config", "DEFAULT_CONFIG_TOML"]
