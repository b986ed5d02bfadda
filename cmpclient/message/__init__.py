"""Build and parse PKIMessages.

* :mod:`.header` -- :class:`HeaderBuilder`
* :mod:`.request` -- :class:`CertRequestBuilder` (CRMF with every POPO form)
* :mod:`.body` -- one function per request and response body
* :mod:`.pkimessage` -- assemble, encode, decode
* :mod:`.parse` -- typed views of received messages
* :mod:`.status` -- PKIStatusInfo from and to names
* :mod:`.names` -- DN text and GeneralNames
"""
