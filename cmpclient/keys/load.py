"""Loading and writing keys, certificates and PKCS#12 files.

Every failure raises :class:`~cmpclient.errors.KeyLoadError` naming the file and saying
what was wrong (missing file, wrong password, not a key, a certificate where a key was
expected...).  Private key files are written with mode 0600 from the moment they exist:
they are created under a temporary name with ``os.open(..., O_CREAT | O_EXCL, 0o600)``
and renamed into place, so no other user can ever open them.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from pathlib import Path
from typing import Any, Sequence

from cmpclient.errors import KeyLoadError, UsageError

__all__ = [
    "load_private_key",
    "load_certificates",
    "load_pkcs12",
    "write_private_key",
    "write_certificates",
    "write_pkcs12",
    "atomic_write",
]

PathLike = str | os.PathLike[str]


def _read(path: PathLike, what: str) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise KeyLoadError(f"{what} file {str(p)!r} does not exist", hint="check the path") from None
    except IsADirectoryError:
        raise KeyLoadError(f"{what} file {str(p)!r} is a directory") from None
    except PermissionError:
        raise KeyLoadError(
            f"cannot read {what} file {str(p)!r}: permission denied", hint="check the file's owner and mode"
        ) from None
    except OSError as exc:
        raise KeyLoadError(f"cannot read {what} file {str(p)!r}: {exc.strerror or exc}") from None


def _is_pem(data: bytes) -> bool:
    return b"-----BEGIN " in data


def _pem_labels(data: bytes) -> list[str]:
    import re

    return [m.decode("ascii", "replace") for m in re.findall(rb"-----BEGIN ([A-Z0-9 ]+)-----", data)]


def _der_is_encrypted_pkcs8(data: bytes) -> bool:
    """True when DER bytes parse as EncryptedPrivateKeyInfo (to tell 'wrong password' apart)."""
    try:
        from pyasn1.codec.der import decoder
        from pyasn1_modules import rfc5208

        _, rest = decoder.decode(data, asn1Spec=rfc5208.EncryptedPrivateKeyInfo())
        return not rest
    except Exception:  # noqa: BLE001 - any failure just means "not this structure"
        return False


def _der_is_certificate(data: bytes) -> bool:
    try:
        from cryptography import x509

        x509.load_der_x509_certificate(data)
        return True
    except Exception:  # noqa: BLE001
        return False


def load_private_key(path: PathLike, password: bytes | None = None, *, password_option: str = "--keypass") -> Any:
    """Load a private key from a PEM or DER file (PKCS#8, traditional RSA/EC, encrypted or not).

    ``password`` decrypts an encrypted key; it is ignored for an unencrypted one;
    ``password_option`` names the option that gives it, in hints.  Raises
    :class:`KeyLoadError` naming the file for: missing file, encrypted key without password,
    wrong password, a certificate or other non-key content, unsupported algorithm.
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    if password is not None and not isinstance(password, (bytes, bytearray)):
        raise UsageError("password must be bytes or None")
    data = _read(path, "private key")
    name = str(path)
    pem = _is_pem(data)
    if pem:
        labels = _pem_labels(data)
        encrypted = any("ENCRYPTED" in lbl for lbl in labels) or b"Proc-Type: 4,ENCRYPTED" in data
        if not any("PRIVATE KEY" in lbl for lbl in labels):
            found = ", ".join(sorted(set(labels))) or "no PEM blocks"
            raise KeyLoadError(
                f"{name!r} does not contain a private key (found: {found})",
                hint="pass the key file, not the certificate" if "CERTIFICATE" in labels else None,
            )
    else:
        encrypted = _der_is_encrypted_pkcs8(data)

    if encrypted and password is None:
        raise KeyLoadError(
            f"private key in {name!r} is encrypted but no password was given",
            hint=f"give the key password (e.g. {password_option} env:VAR)",
        )
    loader = serialization.load_pem_private_key if pem else serialization.load_der_private_key
    try:
        # Passing a password for an unencrypted key is a TypeError in cryptography; the
        # user most likely supplied a password "just in case", so do not fail for that.
        return loader(data, password=bytes(password) if (encrypted and password is not None) else None)
    except UnsupportedAlgorithm as exc:
        raise KeyLoadError(f"private key in {name!r} uses an unsupported algorithm or cipher: {exc}") from None
    except (ValueError, TypeError) as exc:
        if encrypted:
            raise KeyLoadError(
                f"cannot decrypt private key in {name!r}: wrong password (or corrupt file)",
                hint="check the key password",
            ) from None
        if not pem and _der_is_certificate(data):
            raise KeyLoadError(
                f"{name!r} contains a certificate, not a private key", hint="pass the key file, not the certificate"
            ) from None
        raise KeyLoadError(f"{name!r} is not a readable private key ({_short(exc)})",
                           hint=_check_hint("pkey", name)) from None


#: cryptography's PEM errors send the reader to its FAQ; at a terminal that is noise.
_FAQ_POINTER = re.compile(r"\s*See https?://\S+ for more details\.")


def _short(exc: Exception) -> str:
    """The first line of a library error, without pointers to its FAQ; "Could not
    deserialize key data. The data may be ... Details: X" becomes "Could not deserialize
    key data: X"."""
    text = str(exc).strip().splitlines()
    first = _FAQ_POINTER.sub("", text[0] if text else "").strip()
    details = first.rpartition("Details: ")
    if details[1] and details[2]:
        first = f"{first.split('. ', 1)[0].rstrip('.')}: {details[2]}"
    return first or type(exc).__name__


def _check_hint(command: str, name: str) -> str:
    """A command that shows what is in the file (``-text`` only for certificates: for a key
    it would print the private key)."""
    import shlex

    return f"look at it with: openssl {command} -in {shlex.quote(name)} -noout" + (" -text" if command == "x509" else "")


def load_certificates(path: PathLike) -> list[Any]:
    """Load all certificates from a file: PEM with one or more ``CERTIFICATE`` blocks, or one
    DER certificate.  Returns a non-empty list of ``cryptography.x509.Certificate``."""
    from cryptography import x509

    data = _read(path, "certificate")
    name = str(path)
    if _is_pem(data):
        if b"-----BEGIN CERTIFICATE-----" not in data and b"-----BEGIN X509 CERTIFICATE-----" not in data:
            found = ", ".join(sorted(set(_pem_labels(data))))
            raise KeyLoadError(f"{name!r} contains no certificate (found PEM blocks: {found})")
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise KeyLoadError(f"{name!r} contains a malformed certificate ({_short(exc)})",
                               hint=_check_hint("x509", name)) from None
    else:
        try:
            certs = [x509.load_der_x509_certificate(data)]
        except ValueError as exc:
            raise KeyLoadError(f"{name!r} is neither a PEM nor a DER certificate ({_short(exc)})",
                               hint=_check_hint("x509", name)) from None
    if not certs:
        raise KeyLoadError(f"{name!r} contains no certificate")
    return certs


def load_crl(path: PathLike) -> Any:
    """Load one CRL (PEM or DER) as a ``cryptography.x509.CertificateRevocationList``."""
    from cryptography import x509

    data = _read(path, "CRL")
    try:
        return x509.load_pem_x509_crl(data) if _is_pem(data) else x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise KeyLoadError(f"{str(path)!r} is not a readable CRL ({_short(exc)})",
                           hint="give an X.509 CRL in PEM or DER") from None


def load_pkcs12(path: PathLike, password: bytes | None) -> tuple[Any, Any, list[Any]]:
    """Load a PKCS#12 keystore: returns ``(private_key, certificate, [extra certificates])``.

    ``private_key`` or ``certificate`` may be ``None`` when the file does not hold one.
    Raises :class:`KeyLoadError` for a wrong password or a file that is not PKCS#12.
    """
    from cryptography.hazmat.primitives.serialization import pkcs12

    data = _read(path, "PKCS#12")
    name = str(path)
    if _is_pem(data):
        raise KeyLoadError(f"{name!r} is a PEM file, not a PKCS#12 keystore", hint="use --key/--cert for PEM files")
    if password is not None and not isinstance(password, (bytes, bytearray)):
        raise UsageError("password must be bytes or None")
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, bytes(password) if password is not None else None)
    except ValueError as exc:
        if _looks_like_pfx(data):
            raise KeyLoadError(
                f"cannot open PKCS#12 keystore {name!r}: wrong password (or corrupt file)",
                hint="check the keystore password",
            ) from None
        raise KeyLoadError(f"{name!r} is not a PKCS#12 keystore ({_short(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - e.g. UnsupportedAlgorithm for legacy ciphers
        raise KeyLoadError(f"cannot open PKCS#12 keystore {name!r}: {_short(exc)}") from None
    return key, cert, list(extra)


def _looks_like_pfx(data: bytes) -> bool:
    """True when the bytes decode as a PFX structure (so a failure means a bad password)."""
    try:
        from pyasn1.codec.der import decoder
        from pyasn1.codec.ber import decoder as ber_decoder
        from pyasn1.type import namedtype, univ

        class _PFX(univ.Sequence):
            componentType = namedtype.NamedTypes(
                namedtype.NamedType("version", univ.Integer()),
                namedtype.NamedType("authSafe", univ.Any()),
                namedtype.OptionalNamedType("macData", univ.Any()),
            )

        # PKCS#12 files are often BER (indefinite lengths), so fall back to the BER decoder.
        for dec in (decoder, ber_decoder):
            try:
                pfx, _ = dec.decode(data, asn1Spec=_PFX())
                return int(pfx["version"]) == 3
            except Exception:  # noqa: BLE001
                continue
    except Exception:  # noqa: BLE001
        pass
    return False


# --- Writing ------------------------------------------------------------------------------


def atomic_write(path: PathLike, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically with file mode ``mode``.

    The bytes go to a temporary file in the same directory, created with
    ``O_CREAT | O_EXCL`` and the final mode (so it is never readable by others, whatever the
    umask), then ``fsync``-ed and renamed over ``path``.  A crash leaves either the old file
    or the new one, never a half-written key. ``/dev/null``, ``/dev/stdout``, a FIFO or a
    device is written to directly (:func:`is_special_output`); through a symbolic link, the
    file it names is replaced and the link kept.
    """
    target = Path(path)
    if is_special_output(target):
        _write_special(target, data)
        return
    if target.is_symlink():
        target = Path(os.path.realpath(target))  # replace the file the link names, keep the link
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise KeyLoadError(f"cannot write {str(target)!r}: directory {str(directory)!r} does not exist")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = -1
    tmp = ""
    for _ in range(16):
        tmp = os.path.join(directory, f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, mode)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise KeyLoadError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    if fd < 0:
        raise KeyLoadError(f"cannot write {str(target)!r}: could not create a temporary file")
    try:
        # The umask can only remove bits; fchmod makes the mode exactly what was asked.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise KeyLoadError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None


_FD_PATH = re.compile(r"^/(?:proc/self/fd|dev/fd)/(\d+)$")


def _own_fd(path: PathLike) -> int | None:
    """The descriptor ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` or ``/proc/self/fd/N`` names."""
    text = os.path.abspath(path)
    match = _FD_PATH.match(text)
    return int(match.group(1)) if match else {"/dev/stdout": 1, "/dev/stderr": 2}.get(text)


def is_special_output(path: PathLike) -> bool:
    """One of our own descriptors (``/dev/stdout``, ``/proc/self/fd/N``), or an existing path
    that is neither a regular file nor a directory (``/dev/null``, a FIFO, a device): written
    to as it is (as openssl does), never replaced by renaming a file over it. Other paths,
    ``/dev/shm/key.pem`` included, get the atomic 0600 write."""
    p = Path(path)
    return _own_fd(p) is not None or (p.exists() and not p.is_file() and not p.is_dir())


def _write_special(target: Path, data: bytes) -> None:
    fd_number = _own_fd(target)
    if fd_number is not None:
        # Our own open descriptor (a pipe, a terminal, a file the shell redirected with > or
        # >>): write to it as it is, at its offset and with its flags, after what Python has
        # buffered for it.
        import sys

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd_number, view):]
        except OSError as exc:
            raise KeyLoadError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
        return
    try:
        # O_NONBLOCK: a FIFO nobody reads fails at once (ENXIO) instead of blocking forever.
        fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise KeyLoadError(f"cannot write {str(target)!r}: a pipe with no reader") from None
        raise KeyLoadError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    try:
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise KeyLoadError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None


def write_private_key(path: PathLike, key: Any, password: bytes | None = None) -> None:
    """Write ``key`` as PKCS#8 PEM (encrypted with ``password`` when given) with mode 0600."""
    from cryptography.hazmat.primitives import serialization

    if password is not None:
        if not isinstance(password, (bytes, bytearray)) or not password:
            raise UsageError("password must be non-empty bytes or None")
        enc: Any = serialization.BestAvailableEncryption(bytes(password))
    else:
        enc = serialization.NoEncryption()
    try:
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    except AttributeError:
        raise UsageError(f"not a private key: {type(key).__name__}") from None
    atomic_write(path, pem, mode=0o600)


def write_certificates(path: PathLike, certs: Sequence[Any] | Any, *, der: bool = False) -> None:
    """Write certificates as concatenated PEM (or a single DER certificate with ``der=True``).

    Certificates are public, so the file gets mode 0644.
    """
    from cryptography.hazmat.primitives import serialization

    if not isinstance(certs, (list, tuple)):
        certs = [certs]
    if not certs:
        raise UsageError("no certificates to write")
    if der:
        if len(certs) != 1:
            raise UsageError("DER output holds exactly one certificate; use PEM for a chain")
        data = certs[0].public_bytes(serialization.Encoding.DER)
    else:
        data = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    atomic_write(path, data, mode=0o644)


def write_pkcs12(
    path: PathLike,
    key: Any,
    cert: Any,
    cas: Sequence[Any] | None = None,
    password: bytes | None = None,
    *,
    friendly_name: bytes | None = None,
) -> None:
    """Write a PKCS#12 keystore with mode 0600 (encrypted with ``password`` when given)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    if password:
        enc: Any = serialization.BestAvailableEncryption(bytes(password))
    else:
        enc = serialization.NoEncryption()
    try:
        data = pkcs12.serialize_key_and_certificates(friendly_name, key, cert, list(cas or []) or None, enc)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"cannot build PKCS#12: {_short(exc)}") from None
    atomic_write(path, data, mode=0o600)
