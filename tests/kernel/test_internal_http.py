"""The two sides of internal HTTP agree: every expected error crosses a service boundary with its code."""
from __future__ import annotations

import pytest

from kernel.errors import HTTP_STATUS, AppError, ErrorCode, RateLimited
from kernel.internal_client import PeerUnavailable, _decode
from kernel.internal_server import error_response


@pytest.mark.parametrize("code", sorted(HTTP_STATUS, key=lambda c: c.value))
def test_an_error_raised_by_the_owner_is_raised_again_by_the_caller_with_its_code(code: ErrorCode) -> None:
    # given the owner's answer to a refusal with this code
    response = error_response(AppError("the owner's reason", code=code))
    # when the calling side decodes it
    with pytest.raises(AppError) as raised:
        _decode(response.status_code, bytes(response.body), "peer")
    # then it is the same refusal, with the owner's message
    assert raised.value.code is code
    assert raised.value.message == "the owner's reason"


def test_a_rate_limited_peer_is_rate_limited_for_the_caller_too() -> None:
    with pytest.raises(RateLimited):
        _decode(429, b'{"code": "RATE_LIMITED", "message": "slow down"}', "peer")
    with pytest.raises(RateLimited):  # a proxy's bare 429 as well
        _decode(429, b"<html>Too Many Requests</html>", "peer")


def test_a_server_error_or_an_unknown_status_is_unavailable_not_a_client_error() -> None:
    for status in (500, 502, 418):
        with pytest.raises(PeerUnavailable):
            _decode(status, b'{"code": "BAD_USER_INPUT", "message": "not believed"}', "peer")


def test_a_code_that_does_not_match_its_status_is_judged_by_the_status() -> None:
    with pytest.raises(AppError) as raised:
        _decode(404, b'{"code": "FORBIDDEN", "message": "gone"}', "peer")
    assert raised.value.code is ErrorCode.NOT_FOUND
