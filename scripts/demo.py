"""The README's main job: start the bundled test CA and enroll a certificate against it.

It runs exactly what a user would type: ``cmpclient serve`` on a free port of 127.0.0.1
with a fresh data directory, waits until it says it is listening (no fixed sleeps), then
``cmpclient crmf`` against the ``ra`` alias with the shared secret taken from the
environment (never from the command line), and stops the server.

Options: ``--keep`` leaves the data directory and the enrolled files in place.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def cmpclient() -> list[str]:
    exe = BIN / "cmpclient"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "cmpclient"]


def start_server(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [*cmpclient(), "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", "0", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    # A thread reads the server's output (and keeps draining it, so the pipe never fills);
    # the wait for the listening line is bounded even if the server hangs without a word.
    found: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        listening = False
        for line in proc.stdout:  # the server prints its summary, then the listening line
            if not listening:
                print("  serve | " + line.rstrip(), flush=True)
                match = re.search(r"listening on (http://\S+)", line)
                if match:
                    listening = True
                    found.put(match.group(1))
        found.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        base = found.get(timeout=60)
    except queue.Empty:
        base = None
    if base is None:
        proc.kill()
        raise SystemExit("cmpclient serve did not start")
    return proc, base


def main() -> int:
    keep = "--keep" in sys.argv[1:]
    work = Path(tempfile.mkdtemp(prefix="cmpclient-demo-"))
    data_dir, out_dir = work / "testca", work / "out"
    print(f"$ cmpclient serve --data-dir {data_dir} --port 0 --workers 2")
    server, base = start_server(data_dir)
    try:
        url = f"{base}/ejbca/publicweb/cmp/ra"
        # The default `ra` alias: RA mode, HMAC with the shared secret "password" (see README).
        env = dict(os.environ, CMP_SECRET="password", NO_COLOR="1")
        args = [
            "crmf", "--url", url, "--authparam", "env:CMP_SECRET", "--keyid", "demo-ra",
            "--dn", "CN=demo-device,UID=device42,O=Example", "--reqnewkeyspec", "secp256r1",
            "--trusted", str(data_dir / "ca" / "RootCA.pem"), "--implicit-confirm", "--dest", str(out_dir),
        ]
        print("$ CMP_SECRET=... cmpclient " + " ".join(args))
        result = subprocess.run([*cmpclient(), *args], env=env, text=True, capture_output=True, timeout=60)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        if result.returncode != 0:
            print(f"enrollment failed with exit code {result.returncode}")
            return result.returncode
        print(f"enrolled: files in {out_dir}: " + ", ".join(sorted(p.name for p in out_dir.iterdir())))
        return 0
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
