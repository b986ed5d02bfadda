"""cmpclient: a Certificate Management Protocol (CMP) toolkit.

The package is layered (see DESIGN notes in the README): ``asn1`` holds the schema,
``message`` builds and parses PKIMessages, ``protection`` and ``keys`` do the
cryptography, ``transport`` moves bytes, ``client`` runs transactions.  Importing the
package itself is cheap: subpackages are imported only when used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
