"""The driver's retry rules, against a scripted transport: what counts as transient, and how a
retried create that may already have landed is recognised as done instead of done twice."""

from __future__ import annotations

import httpx
import pytest

from tests.resilience.load import CallFailed, Http

pytestmark = pytest.mark.resilience

WHO = ("u", ("requester",))


def _http(*answers, deadline_s: float = 10.0) -> tuple[Http, list[httpx.Request]]:
    """Each call takes the next answer: an httpx.Response, or an exception to raise."""
    seen: list[httpx.Request] = []
    script = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Http({"svc": "http://svc"}, deadline_s, transport=httpx.MockTransport(handle)), seen


def test_connection_errors_and_502_503_504_are_retried_until_an_answer():
    http, seen = _http(httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(502),
                       httpx.Response(504), httpx.Response(201, json={"id": "1"}))
    assert http.call("svc", "POST", "/things", WHO, json={}, ok=(201,)) == {"id": "1"}
    assert len(seen) == 5
    assert sum(http.stats.retries.values()) == 4
    assert seen[0].headers["authorization"].startswith("Bearer ")


def test_other_errors_fail_at_once():
    http, seen = _http(httpx.Response(500, json={"detail": "boom"}))
    with pytest.raises(CallFailed, match="500"):
        http.call("svc", "POST", "/things", WHO, ok=(201,))
    assert len(seen) == 1


def test_409_to_a_retry_is_already_done_but_409_to_a_first_attempt_is_an_error():
    http, _ = _http(httpx.ReadError("reset after the commit"),
                    httpx.Response(409, json={"existing_id": "inv-1"}))
    out = http.call("svc", "POST", "/invoices", WHO, ok=(201,), done_statuses=(409,))
    assert out == {"existing_id": "inv-1"}
    assert sum(http.stats.already_done.values()) == 1
    http, _ = _http(httpx.Response(409, json={"existing_id": "inv-1"}))
    with pytest.raises(CallFailed, match="409"):
        http.call("svc", "POST", "/invoices", WHO, ok=(201,), done_statuses=(409,))


def test_done_if_is_asked_before_a_retry_and_stops_a_second_create():
    http, seen = _http(httpx.RemoteProtocolError("server died mid-answer"))
    found = {"id": "req-1", "title": "t"}
    out = http.call("svc", "POST", "/requisitions", WHO, ok=(201,), done_if=lambda: found)
    assert out == found
    assert len(seen) == 1  # no second POST


def test_done_if_answering_no_lets_the_retry_through():
    http, seen = _http(httpx.ConnectError("refused"), httpx.Response(201, json={"id": "r"}))
    out = http.call("svc", "POST", "/requisitions", WHO, ok=(201,), done_if=lambda: None)
    assert out == {"id": "r"} and len(seen) == 2


def test_a_call_still_failing_at_its_deadline_fails():
    http, _ = _http(*[httpx.Response(503)] * 50, deadline_s=0.5)
    with pytest.raises(CallFailed, match="still failing"):
        http.call("svc", "GET", "/x", WHO)
