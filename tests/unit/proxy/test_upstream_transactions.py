"""Upstream keeps each transaction on its own transport until the transaction ends.

The transports here are fakes that record what they carried; the answers are real
PKIMessages (an ip with or without implicitConfirm, a pollRep, a pkiConf), so the
decision to keep or let go is made from the DER exactly as in production. The live
proof is tests/interop/test_proxy_openssl.py (several openssl clients at once through
the proxy to openssl's mock server, which binds a transaction to its connection).
"""

from __future__ import annotations

import threading
import time

import pytest

from cmpclient.asn1 import oids
from cmpclient.errors import TransportError
from cmpclient.message import body as B
from cmpclient.message.header import HeaderBuilder
from cmpclient.message.pkimessage import assemble, encode_message
from cmpclient.proxy.upstream import Upstream

URL = "http://ca.example/ejbca/publicweb/cmp/ra"


def message(tid: bytes, body: object, *, implicit: bool = False) -> bytes:
    hb = HeaderBuilder().sender("CN=x").recipient("CN=CA").transaction_id(tid)
    if implicit:
        hb = hb.implicit_confirm()
    return encode_message(assemble(hb.build(), body))


def ir(tid: bytes) -> bytes:
    """The request that opens a transaction (its body does not matter to the upstream,
    only the answer does): a genm, answered with an ip below."""
    return message(tid, B.genm_body([(oids.IT_CA_CERTS, None)]))


def cert_conf(tid: bytes) -> bytes:
    return message(tid, B.cert_conf_body([]))


class FakeTransport:
    """Answers each request with ``answer_for(request)``; counts transactions it ended."""

    def __init__(self, answer_for, name: int) -> None:
        self.answer_for = answer_for
        self.name = name
        self.carried: list[bytes] = []
        self.ended = 0
        self.closed = False
        self.fail: BaseException | None = None
        self.busy = False
        self.clashes = 0  # sends while another send was in progress

    def send(self, der: bytes) -> bytes:
        assert not self.closed
        if self.busy:
            self.clashes += 1
        self.busy = True
        try:
            self.carried.append(der)
            if self.fail is not None:
                raise self.fail
            time.sleep(0)  # let other threads run in the middle of an exchange
            return self.answer_for(der)
        finally:
            self.busy = False

    def end_transaction(self) -> None:
        self.ended += 1

    def close(self) -> None:
        self.closed = True


class Harness:
    def __init__(self, answer_for, **kw) -> None:
        self.transports: list[FakeTransport] = []
        self.upstream = Upstream(lambda alias: URL, **kw)
        lock = threading.Lock()

        def new(url: str) -> FakeTransport:
            assert url == URL
            with lock:
                t = FakeTransport(answer_for, len(self.transports))
                self.transports.append(t)
            return t

        self.upstream._new_transport = new  # type: ignore[method-assign]

    def send(self, der: bytes) -> FakeTransport:
        self.upstream.send("ra", der)
        return next(t for t in self.transports if any(x is der for x in t.carried))


def answers(*, implicit: bool = False):
    """genm (standing for an ir) -> ip (implicitConfirm as given), certConf -> pkiConf, pollReq -> pollRep."""
    from cmpclient.message.peek import peek

    def answer_for(der: bytes) -> bytes:
        p = peek(der)
        assert p.transaction_id is not None
        if p.body_type == "genm":
            return message(p.transaction_id, B.cert_rep_body("ip", []), implicit=implicit)
        if p.body_type == "pollReq":
            return message(p.transaction_id, B.poll_rep_body([(0, 1, [])]))
        return message(p.transaction_id, B.pkiconf_body())

    return answer_for


def test_certconf_goes_on_the_transport_of_its_ir_and_no_one_else_takes_it() -> None:
    h = Harness(answers())
    a = h.send(ir(b"A"))
    b = h.send(ir(b"B"))  # A is waiting for its certConf: B gets another transport
    assert b is not a
    assert h.send(cert_conf(b"A")) is a and a.ended == 1
    c = h.send(ir(b"C"))  # A is over: its transport is free again
    assert c is a
    assert h.send(cert_conf(b"B")) is b and h.send(cert_conf(b"C")) is a
    assert len(h.transports) == 2 and a.ended == 2 and b.ended == 1


def test_implicit_confirm_ends_the_transaction_at_once() -> None:
    h = Harness(answers(implicit=True))
    first = h.send(ir(b"A"))
    assert first.ended == 1
    assert h.send(ir(b"B")) is first and len(h.transports) == 1


def test_a_failed_exchange_ends_its_transaction() -> None:
    h = Harness(answers())
    a = h.send(ir(b"A"))
    a.fail = TransportError("connection reset")
    with pytest.raises(TransportError):
        h.upstream.send("ra", cert_conf(b"A"))
    assert a.ended == 1  # the ip kept it open; the failure let it go
    a.fail = None
    assert h.send(ir(b"B")) is a  # free again, not bound to A


def test_the_oldest_open_transaction_is_let_go_beyond_the_limit() -> None:
    h = Harness(answers(), max_open_transactions=2)
    a, b = h.send(ir(b"A")), h.send(ir(b"B"))
    c = h.send(ir(b"C"))  # three open: A (the oldest) loses its connection
    assert len({id(a), id(b), id(c)}) == 3 and a.ended == 1 and b.ended == 0
    # A's certConf now starts on a free transport (A's own, released); B keeps its own.
    assert h.send(cert_conf(b"A")) is a
    assert h.send(cert_conf(b"B")) is b


def test_polling_stays_on_one_transport() -> None:
    h = Harness(answers())
    poll = message(b"P", B.poll_req_body([0]))
    first = h.send(ir(b"P"))
    other = h.send(ir(b"Q"))
    assert h.send(poll) is first and h.send(poll) is first and first.ended == 0 and other is not first


def test_close_closes_free_and_open_transports() -> None:
    h = Harness(answers())
    h.send(ir(b"A"))
    h.send(ir(b"B"))
    h.send(cert_conf(b"B"))
    h.upstream.close()
    assert all(t.closed for t in h.transports) and len(h.transports) == 2


def test_concurrent_transactions_never_share_a_transport() -> None:
    h = Harness(answers())
    failures: list[str] = []

    def run(i: int) -> None:
        tid = b"T%d" % i
        try:
            carrier = h.send(ir(tid))
            if h.send(cert_conf(tid)) is not carrier:
                failures.append(f"{tid!r}: certConf on another transport")
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(f"{tid!r}: {exc!r}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert not failures
    assert sum(t.clashes for t in h.transports) == 0
    assert all(t.ended == len(t.carried) // 2 for t in h.transports)


def test_the_same_transaction_twice_at_once_leaves_no_transport_behind() -> None:
    """Two ir with one transactionID in flight together (a client resending): both answers
    keep the transaction open; the later one wins and the other transport is let go."""
    start = threading.Barrier(2)
    slow = answers()

    def answer_for(der: bytes) -> bytes:
        start.wait(5)  # both requests are in flight before either answer comes back
        return slow(der)

    h = Harness(answer_for)
    threads = [threading.Thread(target=h.upstream.send, args=("ra", ir(b"D"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    first, second = h.transports
    assert sorted([first.ended, second.ended]) == [0, 1]  # one kept for the certConf, one let go
    h.upstream.close()
    assert first.closed and second.closed


def test_an_answer_after_close_does_not_keep_its_transport() -> None:
    h = Harness(answers())
    h.upstream.close()
    a = h.send(ir(b"A"))  # the proxy is shutting down while a request was being forwarded
    assert a.closed and a.ended == 1


def test_a_silent_client_loses_its_connection_after_the_hold() -> None:
    """An abandoned certConf: after ``hold`` seconds the connection is closed, so a CA
    that serves one connection at a time (openssl's mock) can take the next client."""
    h = Harness(answers(), hold=0.2)
    a = h.send(ir(b"A"))
    assert a.ended == 0
    deadline = time.monotonic() + 10
    while a.ended == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert a.ended == 1
    assert h.send(ir(b"B")) is a  # free again
    h.upstream.close()
    assert a.closed


def test_a_client_within_the_hold_keeps_its_connection() -> None:
    h = Harness(answers(), hold=30)
    a = h.send(ir(b"A"))
    b = h.send(ir(b"B"))
    assert h.send(cert_conf(b"A")) is a and h.send(cert_conf(b"B")) is b


def test_transports_of_one_url_share_the_tls_context() -> None:
    """Forked from the first: one TLS context (and session) per upstream, one warning for
    verify=False; connections are each transport's own."""
    import logging

    from cmpclient.transport.http import HTTPTransport

    class Records(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    # Our own handler on the module's logger: the CLI's logging set-up (run in-process by
    # other tests) stops propagation at "cmpclient", out of caplog's reach.
    records, logger = Records(), logging.getLogger("cmpclient.transport")
    logger.addHandler(records)
    level = logger.level
    logger.setLevel(logging.WARNING)
    url = "https://127.0.0.1:9/ejbca/publicweb/cmp/ra"
    up = Upstream(lambda alias: url, verify=False)
    try:
        first, second = up._new_transport(url), up._new_transport(url)
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
    assert isinstance(second, HTTPTransport) and second is not first
    assert second._endpoint is first._endpoint and second._endpoint.context is not None
    assert second._idle is not first._idle and second._lock is not first._lock
    assert sum("verification is OFF" in r.getMessage() for r in records.records) == 1
    first.close()
    assert not second._closed  # closing one does not close the other
    up.close()


def test_a_rejected_request_ends_the_transaction_at_once() -> None:
    """No certConf follows an ip that rejects every request (openssl's client sends none):
    the connection is closed at once instead of holding the CA for upstream_hold."""
    def answer_for(der: bytes) -> bytes:
        from cmpclient.message.peek import peek

        tid = peek(der).transaction_id
        assert tid is not None
        return message(tid, B.cert_rep_body("ip", [B.cert_response(0, "rejection", fail_info=["badPOP"])]))

    h = Harness(answer_for, hold=60)
    a = h.send(ir(b"A"))
    assert a.ended == 1
    assert h.send(ir(b"B")) is a


def test_the_janitor_outlives_a_transport_that_fails_to_close() -> None:
    h = Harness(answers(), hold=0.05)
    a = h.send(ir(b"A"))

    def broken() -> None:
        a.ended += 1
        raise OSError("close failed")

    a.end_transaction = broken  # type: ignore[method-assign]
    deadline = time.monotonic() + 10
    while a.ended == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert a.ended == 1
    b = h.send(ir(b"B"))  # a new transport (A's could not be handed back)
    while b.ended == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b is not a and b.ended == 1  # still expired by the same janitor
    h.upstream.close()


def _poll_answers(check_after: int):
    """As :func:`answers`, with pollReps of the given checkAfter (-5: our builder refuses a
    negative one, so 0x7F is patched to 0xFB in the DER of an unprotected pollRep)."""
    from cmpclient.message.peek import peek

    plain = answers()

    def answer_for(der: bytes) -> bytes:
        p = peek(der)
        if p.body_type == "pollReq":
            if check_after == -5:
                rep = message(p.transaction_id, B.poll_rep_body([(0, 0x7F, [])]))
                assert rep.count(b"\x02\x01\x7f") == 1
                return rep.replace(b"\x02\x01\x7f", b"\x02\x01\xfb")
            return message(p.transaction_id, B.poll_rep_body([(0, check_after, [])]))
        return plain(der)

    return answer_for


def _wait_until(predicate, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_after_a_pollrep_the_hold_includes_its_check_after() -> None:
    """A CA that says "ask again in 1 s" (pollRep checkAfter) keeps the connection for
    hold + 1 s: with hold 0.2 s alone the pollReq would find it closed."""
    h = Harness(_poll_answers(1), hold=0.2)
    started = time.monotonic()
    polling = h.send(ir(b"P"))
    assert h.send(message(b"P", B.poll_req_body([0]))) is polling  # a pollRep, checkAfter 1
    _wait_until(lambda: polling.ended == 1)
    assert polling.ended == 1 and time.monotonic() - started >= 1.2
    h.upstream.close()


def test_the_janitor_lets_go_by_deadline_not_by_age() -> None:
    """P waits out a checkAfter of 30 s; Q, opened later with the plain hold (0.2 s), is
    let go long before P (a janitor going by age would wait for P first)."""
    h = Harness(_poll_answers(30), hold=0.2)
    polling = h.send(ir(b"P"))
    assert h.send(message(b"P", B.poll_req_body([0]))) is polling
    plain = h.send(ir(b"Q"))
    _wait_until(lambda: plain.ended == 1)
    assert plain.ended == 1 and polling.ended == 0
    h.upstream.close()


@pytest.mark.parametrize("check_after", [10**400, -5, 0], ids=["400-digits", "negative", "zero"])
def test_absurd_check_after_values_are_clamped(check_after: int) -> None:
    """A pollRep's checkAfter is an INTEGER of any size: the upstream keeps the transaction
    (at most a day past the hold) instead of failing on it, and never loses the transport."""
    h = Harness(_poll_answers(check_after), hold=60)
    polling = h.send(ir(b"P"))
    assert h.send(message(b"P", B.poll_req_body([0]))) is polling
    (deadline,) = [d for _, d in h.upstream._open.values()]
    assert time.monotonic() + 59 < deadline <= time.monotonic() + 60 + 86_400
    h.upstream.close()
    assert polling.closed


def test_a_client_polling_within_check_after_keeps_its_connection() -> None:
    h = Harness(answers(), hold=0.05)
    poll = message(b"P", B.poll_req_body([0]))
    polling = h.send(ir(b"P"))
    assert h.send(poll) is polling
    time.sleep(0.3)  # longer than the hold, well within hold + checkAfter (1 s): the client waits as told
    assert polling.ended == 0
    assert h.send(poll) is polling
    h.upstream.close()
