"""The one mapping from server answers to the sink error hierarchy, and the
one function that decides what is worth retrying."""

from __future__ import annotations

import ssl

import pytest

from gateway.sinks.base import AuthError, NotFound, SinkError, TlsError, is_transient
from gateway.sinks.influx_common import Malformed, error_for_status, redact_url, server_message

V1_CONFLICT = (
    b'{"error":"partial write: field type conflict: input field \\"ch4\\" on measurement '
    b'\\"telemetry\\" is type string, already exists as type float dropped=1"}'
)
V2_PARSE = b'{"code":"invalid","message":"unable to parse \'x y\': missing fields"}'


@pytest.mark.parametrize(
    ("status", "body", "kind", "retryable", "words"),
    [
        (400, V1_CONFLICT, Malformed, False, "field type conflict"),
        (400, V2_PARSE, Malformed, False, "unable to parse"),
        (413, b"", Malformed, False, "(no body)"),
        (400, b'{"error":"unrecognized precision \\"x\\""}', SinkError, False, "precision"),
        (401, b'{"error":"authorization failed"}', AuthError, False, "authorization failed"),
        (403, b'{"code":"forbidden","message":"insufficient permissions"}', AuthError, False, "insufficient"),
        (404, b'{"error":"database not found: \\"x\\""}', NotFound, False, "database not found"),
        (429, b"slow down", SinkError, True, "slow down"),
        (500, b'{"error":"timeout"}', SinkError, True, "timeout"),
        (503, b"", SinkError, True, "HTTP 503"),
    ],
)  # fmt: skip
def test_http_status_mapping(
    status: int, body: bytes, kind: type[SinkError], retryable: bool, words: str
) -> None:
    err = error_for_status(status, body, "http://db")
    assert type(err) is kind
    assert is_transient(err) is retryable
    assert words in str(err) and str(err).startswith(f"http://db: HTTP {status}")
    assert err.status == status


def test_is_retryable_for_plain_exceptions() -> None:
    assert is_transient(ConnectionRefusedError())
    assert is_transient(TimeoutError())
    assert not is_transient(ssl.SSLCertVerificationError())
    assert not is_transient(ValueError("a bug"))
    assert not is_transient(TlsError("x")) and not is_transient(AuthError("x"))
    assert is_transient(SinkError("x")) and not is_transient(SinkError("x", retryable=False))


def test_server_message_and_redaction() -> None:
    assert server_message(b'{"error": "boom"}') == "boom"
    assert server_message(b'{"message": "bucket not found"}') == "bucket not found"
    assert server_message(b"plain text\n") == "plain text"
    assert server_message(None) == ""
    assert redact_url("https://u:secret@db.example:8086/x") == "https://db.example:8086/x"
    assert redact_url("http://db:8086") == "http://db:8086"
