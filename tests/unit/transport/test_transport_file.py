"""Capture (-reqout/-rspout) and replay (-rspin/-reqin) transports."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmpclient.errors import ConfigError, ExitCode, TransportError
from cmpclient.transport.file import CaptureTransport, ReplayTransport, split_file_list


class FakeTransport:
    def __init__(self):
        self.sent: list[bytes] = []
        self.closed = False

    def send(self, request: bytes) -> bytes:
        self.sent.append(request)
        return b"\x30\x01" + bytes([len(self.sent)])

    def close(self) -> None:
        self.closed = True


def test_split_file_list_openssl_style():
    assert split_file_list("a.der, b.der  c.der,d.der") == [Path(p) for p in ("a.der", "b.der", "c.der", "d.der")]
    assert split_file_list(["with space.der"]) == [Path("with space.der")]
    assert split_file_list(None) == []


def test_capture_writes_nth_message_to_nth_file(tmp_path):
    inner = FakeTransport()
    req = [tmp_path / "req1.der", tmp_path / "req2.der"]
    rsp = [tmp_path / "rsp1.der", tmp_path / "rsp2.der"]
    with CaptureTransport(inner, reqout=req, rspout=rsp) as t:
        assert t.send(b"\x30\x00A") == b"\x30\x01\x01"
        assert t.send(b"\x30\x00B") == b"\x30\x01\x02"
    assert inner.closed
    assert req[0].read_bytes() == b"\x30\x00A" and req[1].read_bytes() == b"\x30\x00B"
    assert rsp[0].read_bytes() == b"\x30\x01\x01" and rsp[1].read_bytes() == b"\x30\x01\x02"


def test_capture_exhausted_reqout_is_an_error_and_request_not_sent(tmp_path):
    inner = FakeTransport()
    t = CaptureTransport(inner, reqout=str(tmp_path / "only.der"))
    t.send(b"one")
    with pytest.raises(TransportError, match="not enough file names"):
        t.send(b"two")
    assert inner.sent == [b"one"]  # like openssl: a request that cannot be saved is not sent


def test_capture_exhausted_rspout_is_an_error(tmp_path):
    inner = FakeTransport()
    t = CaptureTransport(inner, rspout=[tmp_path / "r.der"])
    t.send(b"one")
    with pytest.raises(TransportError, match="not enough file names"):
        t.send(b"two")


def test_capture_non_strict_skips_extra_messages(tmp_path):
    inner = FakeTransport()
    t = CaptureTransport(inner, reqout=[tmp_path / "q.der"], rspout=[], strict=False)
    assert t.send(b"one") == b"\x30\x01\x01"
    assert t.send(b"two") == b"\x30\x01\x02"
    assert (tmp_path / "q.der").read_bytes() == b"one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.der"]


def test_capture_unwritable_path(tmp_path):
    t = CaptureTransport(FakeTransport(), reqout=[tmp_path / "missing-dir" / "q.der"])
    with pytest.raises(ConfigError, match="cannot write request") as info:  # a local file: exit 3, not 4
        t.send(b"x")
    assert info.value.exit_code == ExitCode.CONFIG


def test_replay_returns_responses_in_order_then_fails(tmp_path):
    files = []
    for i in range(2):
        p = tmp_path / f"rsp{i}.der"
        p.write_bytes(bytes([0x30, 1, i]))
        files.append(p)
    t = ReplayTransport(rspin=",".join(str(p) for p in files))
    assert t.send(b"a") == b"\x30\x01\x00"
    assert t.send(b"b") == b"\x30\x01\x01"
    with pytest.raises(TransportError, match="rspin exhausted"):
        t.send(b"c")
    assert t.requests == [b"a", b"b", b"c"]


def test_replay_falls_back_to_inner_when_exhausted(tmp_path):
    p = tmp_path / "rsp.der"
    p.write_bytes(b"\x30\x00")
    inner = FakeTransport()
    with ReplayTransport(rspin=[p], inner=inner) as t:
        assert t.send(b"a") == b"\x30\x00"
        assert t.send(b"b") == b"\x30\x01\x01"
    assert inner.sent == [b"b"] and inner.closed


def test_replay_reqin_replaces_requests(tmp_path):
    q = tmp_path / "req.der"
    q.write_bytes(b"\x30\x00saved")
    inner = FakeTransport()
    t = CaptureTransport(ReplayTransport(reqin=[q], inner=inner))
    # the next saved request can be looked at (and refused) before anything goes out
    assert t.next_saved_request() == t.next_saved_request() == b"\x30\x00saved" and inner.sent == []
    t.send(b"ignored")
    assert inner.sent == [b"\x30\x00saved"] and t.replaced_request == b"\x30\x00saved"
    assert t.next_saved_request() is None
    # used up: the built request goes out (openssl 3.0: "the remaining ones are taken from
    # ... the sequence of requests produced internally"), and nothing was replaced
    t.send(b"built")
    assert inner.sent == [b"\x30\x00saved", b"built"] and t.replaced_request is None


def test_replay_missing_and_empty_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read response") as info:
        ReplayTransport(rspin=[tmp_path / "nope.der"]).send(b"x")
    assert info.value.hint == "check the file name"
    empty = tmp_path / "empty.der"
    empty.write_bytes(b"")
    with pytest.raises(TransportError, match="empty"):
        ReplayTransport(rspin=[empty]).send(b"x")


def test_replay_needs_something():
    with pytest.raises(TransportError):
        ReplayTransport()
