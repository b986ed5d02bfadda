"""The README's main job, run as a new user would (minus the idempotent set-up step)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.interop
def test_demo_enrolls_a_certificate():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "enrolled: subject=" in proc.stdout and "confirmed=True" in proc.stdout
    written = Path(proc.stdout.rsplit("written to ", 1)[1].strip())
    cert = x509.load_pem_x509_certificate(written.read_bytes())
    assert "cmp-rsp-ec" in cert.subject.rfc4514_string()
