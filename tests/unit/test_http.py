"""The shared HTTP core's pure logic: retry decisions, error mapping, redaction.

These use httpx's own MockTransport at the socket seam; everything above it is our real code.
End-to-end behaviour is tested against the sandbox in tests/client.
"""

from __future__ import annotations

import httpx
import pytest

from sparc.client._http import HttpCore, RetryPolicy, is_loopback, parse_retry_after, redact_url
from sparc.client.errors import (
    AuthenticationError,
    GoneError,
    InsecureTransportError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)


def core(handler, **policy) -> tuple[HttpCore, list[float]]:  # type: ignore[no-untyped-def]
    slept: list[float] = []
    http = HttpCore(transport=httpx.MockTransport(handler),
                    retry=RetryPolicy(backoff=0.01, **policy), sleep=slept.append)
    return http, slept


def test_retries_5xx_then_succeeds() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503 if len(calls) < 3 else 200, json={"ok": True})

    http, slept = core(handler)
    assert http.request("GET", "https://x.org/a").json() == {"ok": True}
    assert len(calls) == 3 and len(slept) == 2


def test_retry_after_is_honoured() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "7"}, json="slow down")
        return httpx.Response(200, json=[])

    http, slept = core(handler)
    http.request("GET", "https://x.org/a")
    assert slept == [7.0]


def test_gives_up_with_typed_error_after_bounded_retries() -> None:
    http, slept = core(lambda r: httpx.Response(429, headers={"Retry-After": "1"},
                                                json="too many"), max_retries=2)
    with pytest.raises(RateLimitedError) as info:
        http.request("GET", "https://x.org/a")
    assert len(slept) == 2 and info.value.retry_after == 1.0
    assert info.value.server_message == "too many"


def test_total_time_bound_stops_long_retry_after() -> None:
    http, slept = core(lambda r: httpx.Response(503, headers={"Retry-After": "3600"}),
                       max_total=10)
    with pytest.raises(ServerError):
        http.request("GET", "https://x.org/a")
    assert slept == []


def test_post_is_not_retried_unless_idempotent() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(500, json="boom")

    http, _ = core(handler, max_retries=3)
    with pytest.raises(ServerError):
        http.request("POST", "https://x.org/a", json={})
    assert len(calls) == 1
    with pytest.raises(ServerError):
        http.request("POST", "https://x.org/a", json={}, idempotent=True)
    assert len(calls) == 1 + 4


def test_connection_errors_become_transport_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http, slept = core(handler, max_retries=2)
    with pytest.raises(TransportError, match="after 3 attempts") as info:
        http.request("GET", "https://x.org/a?api_key=SECRET")
    assert "SECRET" not in str(info.value) and isinstance(info.value, ConnectionError)


@pytest.mark.parametrize(("status", "body", "cls", "message"), [
    (400, "ids must be numbers", InvalidRequestError, "ids must be numbers"),
    (401, "Dataset is under embargo", AuthenticationError, "Dataset is under embargo"),
    (404, "5", NotFoundError, "5"),
    (422, {"errors": [{"msg": "field required"}]}, InvalidRequestError, "field required"),
    (500, {"message": "oops"}, ServerError, "oops"),
])
def test_error_mapping(status: int, body: object, cls: type, message: str) -> None:
    http, _ = core(lambda r: httpx.Response(status, json=body), max_retries=0)
    with pytest.raises(cls) as info:
        http.request("GET", "https://x.org/discover/datasets/5", service="pennsieve")
    err = info.value
    assert (err.status, err.server_message, err.service) == (status, message, "pennsieve")
    assert err.method == "GET" and err.url.endswith("/discover/datasets/5")


def test_gone_carries_tombstone() -> None:
    tomb = {"id": 3, "version": 1, "name": "Old", "tags": [], "status": "UNPUBLISHED",
            "doi": "10.1/x", "updatedAt": "2020-01-01T00:00:00Z"}
    http, _ = core(lambda r: httpx.Response(410, json=tomb))
    with pytest.raises(GoneError) as info:
        http.request("GET", "https://x.org/discover/datasets/3")
    assert info.value.tombstone == tomb and isinstance(info.value, NotFoundError)
    assert "unpublished" in str(info.value)


def test_credentials_never_go_over_plain_http_to_remote_hosts() -> None:
    http, _ = core(lambda r: httpx.Response(200, json={}))
    with pytest.raises(InsecureTransportError):
        http.request("GET", "http://api.example.org/x", headers={"Authorization": "Bearer t"})
    http.request("GET", "http://127.0.0.1:1/x", headers={"Authorization": "Bearer t"})
    http.request("GET", "https://api.example.org/x", headers={"Authorization": "Bearer t"})


def test_redaction_and_helpers() -> None:
    url = "https://u:pw@h.org/p?X-Amz-Signature=abc&keep=1&api_key=k"
    shown = redact_url(url)
    assert "abc" not in shown and "pw" not in shown and "=k" not in shown and "keep=1" in shown
    assert is_loopback("127.0.0.5") and is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.org")
    assert parse_retry_after("2.5") == 2.5 and parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_user_agent_names_the_package() -> None:
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(request.headers)
        return httpx.Response(200, json={})

    http, _ = core(handler)
    http.request("GET", "https://x.org/a", params={"a": None, "tags": ["x", "y"], "b": True})
    assert seen["user-agent"].startswith("sparc.client/")


def test_redaction_catches_secret_like_names() -> None:
    shown = redact_url("https://h.org/p?client_secret=CS&session_token=TT&api_secret=2&page=3")
    assert "CS" not in shown and "TT" not in shown and "=2" not in shown and "page=3" in shown


def test_closed_core_reopens_its_pool() -> None:
    http, _ = core(lambda r: httpx.Response(200, json={}))
    http.request("GET", "https://x.org/a")
    http.close()
    assert http.closed
    assert http.request("GET", "https://x.org/a").status_code == 200


# -- error classes chosen in one place; every error pickles -------------------------------------
S3_EXPIRED = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
              '<Message>Request has expired</Message><Expires>2024-01-01T00:00:00Z</Expires>'
              '</Error>')


@pytest.mark.parametrize(("status", "body", "xml", "cls_name", "code"), [
    (403, S3_EXPIRED, True, "LinkExpiredError", "AccessDenied"),
    (400, "<Error><Code>ExpiredToken</Code><Message>The provided token has expired."
          "</Message></Error>", True, "LinkExpiredError", "ExpiredToken"),
    (403, "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", True,
     "PermissionDeniedError", "AccessDenied"),
    (403, "requested files are too large to download", False, "DownloadTooLargeError", None),
    (403, "Dataset is too large to download directly.", False, "DownloadTooLargeError", None),
    (403, "no permission", False, "PermissionDeniedError", None),
    (405, "HTTP method not allowed", False, "ClientError", None),
    (412, "<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions "
          "you specified did not hold</Message></Error>", True, "ClientError",
     "PreconditionFailed"),
])
def test_error_class_from_status_code_and_message(status: int, body: str, xml: bool,
                                                  cls_name: str, code: str | None) -> None:
    import sparc.client.errors as errors

    def handler(request: httpx.Request) -> httpx.Response:
        if xml:
            return httpx.Response(status, text=body, headers={"content-type": "application/xml"})
        return httpx.Response(status, json=body)

    http, _ = core(handler, max_retries=0)
    with pytest.raises(errors.ApiError) as info:
        http.request("GET", "https://x.org/a?X-Amz-Signature=s")
    err = info.value
    assert type(err).__name__ == cls_name and err.code == code and err.status == status
    assert not isinstance(err, InvalidRequestError)  # none of these is "fix your arguments"
    if cls_name != "ClientError":
        assert isinstance(err, errors.PermissionDeniedError) or status == 400


def test_every_error_class_pickles() -> None:
    import pickle

    import sparc.client.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        if not isinstance(cls, type):
            continue
        if issubclass(cls, errors.ApiError):
            err = cls("GET u -> 4xx", status=403, method="GET", url="u", service="pennsieve",
                      server_message="m", body={"a": 1}, code="C")
        elif cls is errors.UnsafePathError:
            err = cls("../x", "'..' segments are not allowed")
        elif cls is errors.TransportError:
            err = cls("refused", method="GET", url="u")
        elif issubclass(cls, errors.DownloadError):
            err = cls("1 files failed", failures={"a": ValueError("x")}, result=[1, 2])
        else:
            err = cls("message")
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is cls and str(back) == str(err) and back.args == err.args
        assert {k: v for k, v in vars(back).items() if k != "failures"} == \
            {k: v for k, v in vars(err).items() if k != "failures"}, name
    limited = pickle.loads(pickle.dumps(errors.RateLimitedError("x", status=429, retry_after=2)))
    assert limited.retry_after == 2


# -- one retry layer: per-request retries, and answers never worth retrying ---------------------
def test_per_request_retries_override() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("refused", request=request)

    http, slept = core(handler)
    with pytest.raises(TransportError, match="after 1 attempt"):
        http.request("GET", "https://x.org/a", retries=0)
    assert len(calls) == 1 and slept == []


def test_retry_if_skips_deterministic_crashes() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(500, text="There was an internal server error.")

    http, slept = core(handler)
    with pytest.raises(ServerError):
        http.request("GET", "https://x.org/a", retry_if=lambda r: "internal server" not in r.text)
    assert len(calls) == 1 and slept == []


def test_unbuildable_urls_are_argument_errors() -> None:
    from sparc.client.errors import ArgumentError

    http, _ = core(lambda r: httpx.Response(200, json={}))
    with pytest.raises(ArgumentError, match="too long"):
        http.request("GET", "https://x.org/search", params={"query": "x" * 100_000})
    with pytest.raises(ArgumentError):
        http.request("GET", "http://[::1/a")


# -- credentials are bound to their hosts -------------------------------------------------------
def test_auth_goes_only_to_its_hosts() -> None:
    seen: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] = request.headers.get("authorization")
        return httpx.Response(200, json={})

    http = HttpCore(transport=httpx.MockTransport(handler), auth=httpx.BasicAuth("k", "s"),
                    auth_hosts={"api.example.org"})
    http.request("GET", "https://api.example.org/a")
    http.request("GET", "https://bucket.s3.amazonaws.com/key?X-Amz-Signature=x")
    http.request("GET", "https://api.example.org/b", auth=False)
    assert seen["api.example.org"] is None  # the last call asked for no credentials
    assert seen["bucket.s3.amazonaws.com"] is None
    http.request("GET", "https://api.example.org/a")
    assert seen["api.example.org"].startswith("Basic ")
    with pytest.raises(InsecureTransportError):
        HttpCore(transport=httpx.MockTransport(handler), auth=httpx.BasicAuth("k", "s"),
                 auth_hosts={"plain.example.org"}).request("GET", "http://plain.example.org/a")
    # a per-request auth is bound to that request's host
    http.request("GET", "https://other.example.org/x", auth=httpx.BasicAuth("o", "p"))
    assert seen["other.example.org"].startswith("Basic ")


def test_auth_needs_its_hosts() -> None:
    from sparc.client.errors import ArgumentError

    with pytest.raises(ArgumentError, match="auth_hosts"):
        HttpCore(auth=httpx.BasicAuth("k", "s"))
