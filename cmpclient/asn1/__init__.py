"""ASN.1 schema for CMP (RFC 9810) and CRMF (RFC 4211), plus strict DER helpers.

Submodules: :mod:`.cmp` (messages), :mod:`.crmf` (certificate request messages),
:mod:`.oids` (object identifiers and names), :mod:`.codec` (strict DER encode/decode),
:mod:`.dump` (human-readable trees).  Nothing is imported here so that ``import
cmpclient.asn1.oids`` stays free.
"""
