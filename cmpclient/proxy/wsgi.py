"""The CMP proxy's HTTP edge: a WSGI application around :meth:`Proxy.handle`.

The HTTP rules are the test CA's, from the same code
(:func:`cmpclient.testca.wsgi.read_cmp_request`): paths ``/ejbca/publicweb/cmp/<alias>``
and ``/<alias>``, alias syntax (400), unknown alias 404 *before the body is read*, only
POST (405 with ``Allow: POST``), ``Content-Length`` required and at most
``max_body_size`` bytes (400). The proxy's answer goes out with its status, body and
Content-Type as :meth:`Proxy.handle` gives them, plus ``Cache-Control``/``Pragma:
no-cache``; an upstream's CMP answer is passed on byte for byte.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from cmpclient.testca.wsgi import MAX_BODY_SIZE, HTTPRefusal, cmp_response, plain_response, read_cmp_request

__all__ = ["make_app"]

log = logging.getLogger("cmpclient.proxy")


def make_app(proxy: Any, *, max_body_size: int = MAX_BODY_SIZE) -> Callable[[dict, Callable[..., Any]], list[bytes]]:
    """A WSGI application serving ``proxy`` (``alias_exists`` and ``handle``)."""

    def app(environ: dict, start_response: Callable[..., Any]) -> list[bytes]:
        try:
            alias, body = read_cmp_request(environ, proxy.alias_exists, max_body_size=max_body_size)
        except HTTPRefusal as refusal:
            return plain_response(start_response, refusal.status, refusal.text, refusal.headers)
        except Exception:  # the client never sees a traceback
            log.exception("unexpected error reading %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            return plain_response(start_response, 400, "the request could not be read")
        status, answer, content_type = proxy.handle(alias, body)  # never raises
        return cmp_response(start_response, status, answer, content_type)

    return app
