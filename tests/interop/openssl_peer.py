"""Run the independent CMP peer, the ``openssl cmp`` CLI (OpenSSL 3.0.x), live.

Two roles:

* :class:`OpenSSLMockServer` — ``openssl cmp -port N ...``, the HTTP mock CA, as a context
  manager. It is started on a free port; readiness is detected by *polling* under a deadline
  (10 s by default, never a fixed sleep); it is terminated (SIGTERM, then SIGKILL after a
  timeout) on exit. Its stdout and stderr are captured to files and exposed as
  :attr:`~OpenSSLMockServer.stdout` / :attr:`~OpenSSLMockServer.stderr` for debugging.
* :func:`run_openssl_client` — one ``openssl cmp`` client invocation with a timeout, returning
  an :class:`OpenSSLResult` (argv, returncode, stdout, stderr, duration).

Options may be given as raw argv (``["-srv_ref", "x"]``) and/or as keyword arguments, converted by
:func:`cmp_options`: ``srv_ref="x"`` -> ``-srv_ref x``; ``True`` -> bare flag; ``False``/``None``
-> omitted; a list/tuple -> the option repeated; :class:`os.PathLike` -> ``str``.

Facts about the 3.0(.19) peer that this module encodes (also in ``tests/vectors/README.md``):

* The mock serves only the paths ``/`` and ``/pkix/`` (anything else -> HTTP 404, logged as
  "expecting empty path or 'pkix/'"). :attr:`OpenSSLMockServer.url` uses ``/pkix/``.
* It listens on all interfaces (``[::]``); we only ever connect to 127.0.0.1.
* Once listening it prints ``ACCEPT [::]:<port> PID=<pid>`` on stdout (flushed at once).
* Readiness, two bounded polling modes (``readiness=``):
  - ``"announce"`` (default): poll the mock's captured stdout for that ACCEPT line for our port.
    Costs nothing and never touches the mock's message count.
  - ``"connect"``: poll a TCP connect to 127.0.0.1:<port> (no data, graceful close). The mock
    reads EOF and does not count it against ``-max_msgs``, but then sleeps 1 s ("no request
    yet" retry) before it serves the next connection. A reset (SO_LINGER 0) avoids the stall
    but IS counted as a message ("Request line read error"), and a probe that sends anything
    (even "\n") is counted too ("HTTP request does not begin with POST").
  With either, ``-max_msgs N`` means N real CMP messages; after them the mock exits 0.
* The openssl cmp client writes its log ("CMP info: sending IR", errors) on STDOUT.
  Use :attr:`OpenSSLResult.output` (stdout + stderr) for assertions on it.
* ``-config ""`` is always passed so a system ``openssl.cnf`` with a ``[cmp]`` section cannot
  change behaviour, and ``OPENSSL_CONF`` is removed from the children's environment.

Only the Python standard library is used, so ``scripts/make_vectors.py`` can import it.
"""

from __future__ import annotations

import os
import shutil
import signal
import re
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES_DIR = REPO_ROOT / "fixtures"
PKI_DIR = FIXTURES_DIR / "pki"

KEY_TYPES = ("rsa", "ec", "ed25519")
#: OpenSSL 3.0's CMP code cannot *protect* messages with Ed25519 keys ("unsupported key type",
#: on the client and on the mock server). Ed25519 works only as the enrolled key (POPO).
SIGNER_KEY_TYPES = ("rsa", "ec")

MOCK_PATH = "/pkix/"

#: PBM credentials used by the interop fixtures (``mock_server_pbm``). Test material. The secret
#: is handed to openssl through the environment (``env:CMP_TEST_SECRET``), never in argv.
PBM_REF = "cmp-test-ref"
PBM_SECRET = "cmp-test-secret"
PBM_SECRET_ENV = "CMP_TEST_SECRET"

__all__ = [
    "KEY_TYPES",
    "SIGNER_KEY_TYPES",
    "MOCK_PATH",
    "PBM_REF",
    "PBM_SECRET",
    "PBM_SECRET_ENV",
    "PKI",
    "OpenSSLError",
    "OpenSSLMockServer",
    "OpenSSLResult",
    "cmp_options",
    "free_port",
    "openssl_binary",
    "openssl_version",
    "run_openssl_client",
]


class OpenSSLError(RuntimeError):
    """The openssl peer is missing, failed to start, or a checked run failed."""


# --------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class PKI:
    """Paths of the committed test PKI (``fixtures/pki``, made by ``scripts/make_fixtures.py``)."""

    dir: Path = PKI_DIR

    @property
    def root_cert(self) -> Path:
        return self.dir / "root-ca.crt.pem"

    @property
    def root_key(self) -> Path:
        return self.dir / "root-ca.key.pem"

    @property
    def issuing_cert(self) -> Path:
        return self.dir / "issuing-ca.crt.pem"

    @property
    def issuing_key(self) -> Path:
        return self.dir / "issuing-ca.key.pem"

    @property
    def chain(self) -> Path:
        """Issuing CA + root (PEM bundle): pass as ``-untrusted`` / ``-srv_untrusted``."""
        return self.dir / "chain.pem"

    @property
    def trusted(self) -> Path:
        """The root only: pass as ``-trusted`` / ``-srv_trusted``."""
        return self.dir / "trusted.pem"

    @property
    def client_p12(self) -> Path:
        return self.dir / "client-ec.p12"

    p12_password: str = "test1234"

    def _p(self, role: str, kt: str, what: str) -> Path:
        if kt not in KEY_TYPES:
            raise ValueError(f"unknown key type {kt!r}; expected one of {KEY_TYPES}")
        return self.dir / f"{role}-{kt}.{what}.pem"

    def client_cert(self, kt: str) -> Path:
        return self._p("client", kt, "crt")

    def client_key(self, kt: str) -> Path:
        return self._p("client", kt, "key")

    def server_cert(self, kt: str) -> Path:
        return self._p("server", kt, "crt")

    def server_key(self, kt: str) -> Path:
        return self._p("server", kt, "key")

    def rsp_cert(self, kt: str) -> Path:
        """The certificate the mock returns (``-rsp_cert``)."""
        return self._p("rsp", kt, "crt")

    def rsp_key(self, kt: str) -> Path:
        """The key matching :meth:`rsp_cert`: the client's ``-newkey`` must be this key."""
        return self._p("rsp", kt, "key")

    def check(self) -> "PKI":
        missing = [p for p in self.all_files() if not p.is_file()]
        if missing:
            raise OpenSSLError(
                "test PKI incomplete, run `python scripts/make_fixtures.py`; missing: "
                + ", ".join(str(p) for p in missing)
            )
        return self

    def all_files(self) -> list[Path]:
        files = [self.root_cert, self.root_key, self.issuing_cert, self.issuing_key, self.chain,
                 self.trusted, self.client_p12]
        for kt in KEY_TYPES:
            for role in ("client", "server", "rsp"):
                files += [self._p(role, kt, "crt"), self._p(role, kt, "key")]
        return files


# --------------------------------------------------------------------------- basics


def openssl_binary() -> str:
    """Path of the ``openssl`` CLI (``$OPENSSL`` overrides); raises if it is missing."""
    exe = os.environ.get("OPENSSL") or shutil.which("openssl")
    if not exe:
        raise OpenSSLError(
            "the `openssl` command is required for the interop tests (Debian: apt-get install "
            "openssl; scripts/setup.sh does this)"
        )
    return exe


def openssl_version() -> str:
    """E.g. ``"OpenSSL 3.0.19 27 Jan 2026 (Library: ...)"``."""
    out = subprocess.run([openssl_binary(), "version"], capture_output=True, text=True, timeout=10)
    return out.stdout.strip()


def free_port() -> int:
    """A TCP port that is currently free on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cmp_options(args: Sequence[Any] = (), **options: Any) -> list[str]:
    """Raw ``args`` (stringified) followed by keyword options converted to argv."""
    argv = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args]
    for name, value in options.items():
        flag = "-" + name
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            for v in value:
                argv += [flag, os.fspath(v) if isinstance(v, os.PathLike) else str(v)]
        else:
            argv += [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    return argv


def _child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    e = dict(os.environ)
    e.pop("OPENSSL_CONF", None)
    if env:
        e.update(env)
    return e


# --------------------------------------------------------------------------- client


@dataclass
class OpenSSLResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def output(self) -> str:
        """stdout + stderr (the openssl cmp client logs to stdout)."""
        return self.stdout + self.stderr

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self) -> "OpenSSLResult":
        """Raise :class:`OpenSSLError` (with the output) unless the run succeeded."""
        if self.returncode != 0:
            raise OpenSSLError(f"openssl exited {self.returncode}\n{self.describe()}")
        return self

    def describe(self) -> str:
        return (
            f"$ {' '.join(_shell_quote(a) for a in self.argv)}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def _shell_quote(a: str) -> str:
    import shlex

    return shlex.quote(a)


def run_openssl_client(
    args: Sequence[Any] = (),
    *,
    server: "OpenSSLMockServer | str | None" = None,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    input: bytes | None = None,
    keep_alive: int | None = 0,
    check: bool = False,
    **options: Any,
) -> OpenSSLResult:
    """Run ``openssl cmp -config "" -batch <args> <options>`` as a client.

    ``server``: an :class:`OpenSSLMockServer` (its 127.0.0.1 URL is used) or a URL string;
    omitted if ``None`` (e.g. with ``-rspin`` or ``-use_mock_srv``).
    ``keep_alive``: adds ``-keep_alive N`` unless None (0 by default: one connection per
    message, which avoids the ~40 ms Nagle stall of openssl's two-write POST on a reused socket).
    ``timeout`` bounds the whole run; on expiry the process is killed and
    :class:`OpenSSLError` is raised. ``check=True`` raises on a non-zero exit.
    """
    argv = [openssl_binary(), "cmp", "-config", "", "-batch"]
    if server is not None:
        argv += ["-server", server.url if isinstance(server, OpenSSLMockServer) else str(server)]
    if keep_alive is not None:
        argv += ["-keep_alive", str(keep_alive)]
    argv += cmp_options(args, **options)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            input=input if input is not None else b"",
            timeout=timeout,
            env=_child_env(env),
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        raise OpenSSLError(
            f"openssl client timed out after {timeout}s: {' '.join(argv)}\n"
            f"stderr: {(exc.stderr or b'').decode(errors='replace')}"
        ) from None
    res = OpenSSLResult(
        argv=argv,
        returncode=proc.returncode,
        stdout=proc.stdout.decode(errors="replace"),
        stderr=proc.stderr.decode(errors="replace"),
        duration=time.monotonic() - t0,
    )
    return res.check() if check else res


# --------------------------------------------------------------------------- mock server


class OpenSSLMockServer:
    """``openssl cmp -port <port> ...`` as a context manager.

    Example::

        with OpenSSLMockServer(srv_ref="srv", srv_secret="env:SRV_SECRET",
                               rsp_cert=pki.rsp_cert("ec"), env={"SRV_SECRET": "s3cret"}) as mock:
            r = run_openssl_client(server=mock, cmd="ir", ref="srv", secret="env:SRV_SECRET",
                                   newkey=pki.rsp_key("ec"), subject="/CN=x",
                                   certout=tmp / "c.pem", env={"SRV_SECRET": "s3cret"})
            assert r.returncode == 0, r.describe() + mock.stderr

    ``args``/``options`` are mock options (see :func:`cmp_options`); ``-port`` and
    ``-config ""`` are added here. ``port=None`` picks a free port (and retries with another
    one, a bounded number of times, if the port was taken meanwhile).
    """

    def __init__(
        self,
        args: Sequence[Any] = (),
        *,
        port: int | None = None,
        startup_timeout: float = 10.0,
        stop_timeout: float = 5.0,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
        readiness: str = "announce",
        **options: Any,
    ) -> None:
        if readiness not in ("announce", "connect"):
            raise ValueError("readiness must be 'announce' or 'connect'")
        self.readiness = readiness
        self.args = list(args)
        self.port = port
        self._fixed_port = port is not None
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.env = env
        self.cwd = cwd
        self.options = options
        self.proc: subprocess.Popen | None = None
        self.argv: list[str] = []
        self._logdir: str | None = None
        self._out = ""
        self._err = ""
        self.returncode: int | None = None

    # -- addresses -------------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/pkix/`` (the mock serves only ``/`` and ``/pkix/``)."""
        return f"http://127.0.0.1:{self.port}{MOCK_PATH}"

    @property
    def server_arg(self) -> str:
        """Value for the openssl client's ``-server`` (``127.0.0.1:<port>/pkix/``)."""
        return f"127.0.0.1:{self.port}{MOCK_PATH}"

    # -- output ------------------------------------------------------------------

    def _read(self, name: str) -> str:
        if self._logdir is None:
            return self._out if name == "stdout" else self._err
        try:
            return (Path(self._logdir) / name).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def stdout(self) -> str:
        return self._read("stdout")

    @property
    def stderr(self) -> str:
        return self._read("stderr")

    def describe(self) -> str:
        return (
            f"mock: {' '.join(_shell_quote(a) for a in self.argv)}\n"
            f"mock returncode: {self.returncode if self.proc is None else self.proc.poll()}\n"
            f"--- mock stdout ---\n{self.stdout}\n--- mock stderr ---\n{self.stderr}"
        )

    # -- lifecycle -----------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _build_argv(self, port: int) -> list[str]:
        argv = cmp_options(self.args, **self.options)
        return [openssl_binary(), "cmp", "-config", "", "-port", str(port)] + argv

    def start(self) -> "OpenSSLMockServer":
        if self.alive:
            return self
        attempts = 1 if self._fixed_port else 5
        last = ""
        for _ in range(attempts):
            port = self.port if self._fixed_port else free_port()
            if self._try_start(port):
                return self
            last = self.describe()
            if "in use" not in self.stderr.lower():
                break
        raise OpenSSLError(f"openssl mock server did not come up\n{last}")

    def _try_start(self, port: int) -> bool:
        self._cleanup_logs()
        self._logdir = tempfile.mkdtemp(prefix="openssl-mock-")
        self.port = port
        self.argv = self._build_argv(port)
        out = open(Path(self._logdir) / "stdout", "wb")
        err = open(Path(self._logdir) / "stderr", "wb")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=_child_env(self.env),
                cwd=self.cwd,
                start_new_session=True,  # its own process group: we can signal just it
            )
        finally:
            out.close()
            err.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                return False
            if self._announced(port) if self.readiness == "announce" else self._probe(port):
                return True
            # bounded poll interval: returns at once if the process exits meanwhile
            try:
                self.proc.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                pass
        self._terminate()
        raise OpenSSLError(
            f"openssl mock server not accepting on 127.0.0.1:{port} after "
            f"{self.startup_timeout}s\n{self.describe()}"
        )

    def _announced(self, port: int) -> bool:
        """The mock prints ``ACCEPT [::]:<port> PID=<pid>`` once its socket is listening."""
        return re.search(rf"^ACCEPT \S*:{port} PID=", self.stdout, re.M) is not None

    @staticmethod
    def _probe(port: int) -> bool:
        """TCP readiness probe: connect to 127.0.0.1:port, send nothing, close gracefully.

        The 3.0 mock reads EOF, does not count the connection against ``-max_msgs``, but then
        sleeps 1 s before it accepts the next connection (its "no request yet" retry). A reset
        (SO_LINGER 0) avoids the stall but IS counted as a message ("Request line read error").
        """
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def _terminate(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=self.stop_timeout)
            except ProcessLookupError:
                pass
        self.returncode = proc.returncode

    def wait(self, timeout: float = 5.0) -> int:
        """Wait (bounded) for the mock to exit by itself, e.g. after ``-max_msgs``; its status."""
        if self.proc is None:
            raise OpenSSLError("mock server not started")
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise OpenSSLError(f"mock server still running after {timeout}s\n{self.describe()}") from None
        return self.returncode

    def stop(self) -> None:
        """Terminate (SIGTERM, then SIGKILL after ``stop_timeout``) and keep the output."""
        self._terminate()
        self._out, self._err = self.stdout, self.stderr
        self._cleanup_logs()
        self.proc = None

    def restart(self) -> "OpenSSLMockServer":
        """Stop and start again (same options; a new free port unless one was fixed).

        Useful because the 3.0.19 mock can crash after some negative signature cases.
        """
        self.stop()
        return self.start()

    def _cleanup_logs(self) -> None:
        if self._logdir is not None:
            shutil.rmtree(self._logdir, ignore_errors=True)
            self._logdir = None

    def __enter__(self) -> "OpenSSLMockServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:  # last resort; normal use is the context manager
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
        except Exception:
            pass
