"""Fixtures for the CMP proxy's unit tests (no sockets: a recording upstream)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
