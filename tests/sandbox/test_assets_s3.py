"""The asset store answers as S3 does: ETags, encryption headers, conditional requests, presigned-URL
errors and hostile ``Range`` headers, over real HTTP against the session sandbox."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.etree import ElementTree

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparc.sandbox.assets.errors import S3Error
from sparc.sandbox.assets.signing import Signer, canonical_request, sigv4_signature

MANIFEST = "/discover/datasets/{}/versions/{}/files/download-manifest"
MiB = 1 << 20

SINGLE = (120, 1, "files/primary/sub-1/ecap_run1.edf")  # 1 MiB generated, 2023: SSE-S3
STORED = (90, 1, "readme.md")  # stored text, 2019: no encryption header
MULTIPART_16 = (426, 3, "files/derivative/sub-f006/L/020-stitching/Segmentation_Stitcher.exf")
KMS_SMALL = (120, 1, "files/primary/sub-1/ecap_run2.edf")
KMS_MULTIPART = (120, 1, "files/derivative/summary.mat")
KMS_TILE = (318, 1, "files/primary/sub-07/sam-2/run-3/tile-0004.tif")


def presigned(client: httpx.Client, dataset: int, version: int, path: str) -> str:
    """The presigned URL of one file, from the download manifest (as a client gets it)."""
    response = client.post(MANIFEST.format(dataset, version), json={"paths": [path]})
    assert response.status_code == 200, response.text
    (entry,) = response.json()["data"]
    return entry["url"]


def with_query(url: str, **changes: str | None) -> str:
    """``url`` with query parameters replaced (``None`` removes one)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def s3_error(response: httpx.Response) -> dict[str, str]:
    """The elements of an S3 XML error body, checked for S3's common shape."""
    assert response.headers["content-type"].startswith("application/xml")
    root = ElementTree.fromstring(response.content)
    assert root.tag == "Error"
    fields = {child.tag: child.text or "" for child in root}
    names = list(fields)
    assert names[:2] == ["Code", "Message"] and names[-2:] == ["RequestId", "HostId"]
    assert fields["RequestId"] == response.headers["x-amz-request-id"]
    assert fields["HostId"] == response.headers["x-amz-id-2"]
    return fields


@pytest.fixture(scope="module")
def single(client: httpx.Client) -> tuple[str, bytes, httpx.Response]:
    url = presigned(client, *SINGLE)
    response = client.get(url)
    assert response.status_code == 200
    return url, response.content, response


# ---- ETags and encryption ------------------------------------------------------------------------
def test_single_part_etag_is_md5_of_bytes(client: httpx.Client, single: tuple) -> None:
    _, body, response = single
    assert response.headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert response.headers["x-amz-server-side-encryption"] == "AES256"  # written after 2023-01-05
    stored = client.get(presigned(client, *STORED))
    assert stored.headers["etag"] == f'"{hashlib.md5(stored.content).hexdigest()}"'
    assert "x-amz-server-side-encryption" not in stored.headers  # written in 2019
    assert "sha256" not in {k.lower() for k in response.headers}


def test_multipart_etag_recomputes_from_parts(client: httpx.Client) -> None:
    response = client.get(presigned(client, *MULTIPART_16))
    body, etag = response.content, response.headers["etag"].strip('"')
    digest, _, parts = etag.partition("-")
    assert re.fullmatch(r"[0-9a-f]{32}", digest) and int(parts) == -(-len(body) // (16 * MiB)) == 10
    part_md5s = b"".join(hashlib.md5(body[i:i + 16 * MiB]).digest() for i in range(0, len(body), 16 * MiB))
    assert hashlib.md5(part_md5s).hexdigest() == digest
    assert digest != hashlib.md5(body).hexdigest()
    eight = b"".join(hashlib.md5(body[i:i + 8 * MiB]).digest() for i in range(0, len(body), 8 * MiB))
    assert hashlib.md5(eight).hexdigest() != digest  # the part size matters


def test_sse_kms_objects_have_an_opaque_etag(client: httpx.Client) -> None:
    for target in (KMS_SMALL, KMS_TILE):
        response = client.get(presigned(client, *target))
        assert response.headers["x-amz-server-side-encryption"] == "aws:kms"
        assert response.headers["x-amz-server-side-encryption-aws-kms-key-id"].startswith("arn:aws:kms:")
        etag = response.headers["etag"].strip('"')
        assert re.fullmatch(r"[0-9a-f]{32}", etag) and etag != hashlib.md5(response.content).hexdigest()
    first = client.get(presigned(client, *KMS_MULTIPART), headers={"Range": "bytes=0-0"})
    assert first.status_code == 206 and first.headers["x-amz-server-side-encryption"] == "aws:kms"
    assert re.fullmatch(r'"[0-9a-f]{32}-6"', first.headers["etag"])  # 100 MB in 16 MiB parts


def test_object_headers(single: tuple) -> None:
    _, body, response = single
    assert response.headers["accept-ranges"] == "bytes" and int(response.headers["content-length"]) == len(body)
    assert parsedate_to_datetime(response.headers["last-modified"]).year == 2023
    assert re.fullmatch(r"[0-9A-F]{16}", response.headers["x-amz-request-id"]) and response.headers["x-amz-id-2"]


def test_five_zero_object_has_version_id(client: httpx.Client) -> None:
    url = presigned(client, *MULTIPART_16)
    response = client.get(url, headers={"Range": "bytes=0-9"})
    assert response.status_code == 206
    assert response.headers["x-amz-version-id"] == dict(parse_qsl(urlsplit(url).query))["versionId"]


# ---- conditional requests ------------------------------------------------------------------------
def test_if_none_match_gives_304(client: httpx.Client, single: tuple) -> None:
    url, _, full = single
    etag = full.headers["etag"]
    for header in (etag, etag.strip('"'), f"W/{etag}", f'"0000", {etag}', "*"):
        response = client.get(url, headers={"If-None-Match": header})
        assert response.status_code == 304 and response.content == b"", header
        assert response.headers["etag"] == etag
    assert client.get(url, headers={"If-None-Match": '"0123"'}).status_code == 200
    # If-None-Match decides over If-Modified-Since (S3's documented pair)
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get(url, headers={"If-None-Match": etag, "If-Modified-Since": old}).status_code == 304


def test_failed_if_match_gives_412(client: httpx.Client, single: tuple) -> None:
    url, body, full = single
    etag = full.headers["etag"]
    response = client.get(url, headers={"If-Match": '"d41d8cd98f00b204e9800998ecf8427e"'})
    fields = s3_error(response)
    assert response.status_code == 412 and fields["Code"] == "PreconditionFailed"
    assert fields["Message"] == "At least one of the pre-conditions you specified did not hold"
    assert fields["Condition"] == "If-Match"
    assert client.get(url, headers={"If-Match": f"W/{etag}"}).status_code == 412  # strong comparison
    for header in (etag, "*", f'"x", {etag}'):
        assert client.get(url, headers={"If-Match": header}).content == body
    # a true If-Match wins over a false If-Unmodified-Since (200, as S3 documents)
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get(url, headers={"If-Match": etag, "If-Unmodified-Since": old}).status_code == 200


def test_modified_since_conditions(client: httpx.Client, single: tuple) -> None:
    url, _, full = single
    modified = full.headers["last-modified"]
    stamp = parsedate_to_datetime(modified).timestamp()
    before, after = formatdate(stamp - 1, usegmt=True), formatdate(stamp + 86400, usegmt=True)
    assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get(url, headers={"If-Modified-Since": after}).status_code == 304
    assert client.get(url, headers={"If-Modified-Since": before}).status_code == 200
    assert client.get(url, headers={"If-Unmodified-Since": after}).status_code == 200
    assert client.get(url, headers={"If-Unmodified-Since": modified}).status_code == 200
    late = client.get(url, headers={"If-Unmodified-Since": before})
    assert late.status_code == 412 and s3_error(late)["Condition"] == "If-Unmodified-Since"
    for junk in ("yesterday", "Mon, 99 Foo 2024 99:99:99 GMT", "9" * 5000):  # unreadable dates are ignored
        assert client.get(url, headers={"If-Modified-Since": junk}).status_code == 200
        assert client.get(url, headers={"If-Unmodified-Since": junk}).status_code == 200


def test_if_range(client: httpx.Client, single: tuple) -> None:
    url, body, full = single
    etag, modified = full.headers["etag"], full.headers["last-modified"]
    fresh = client.get(url, headers={"Range": "bytes=10-19", "If-Range": etag})
    assert fresh.status_code == 206 and fresh.content == body[10:20]
    dated = client.get(url, headers={"Range": "bytes=10-19", "If-Range": modified})
    assert dated.status_code == 206 and dated.content == body[10:20]
    for stale in ('"0123456789abcdef0123456789abcdef"', f"W/{etag}", "Mon, 01 Jan 2001 00:00:00 GMT", "junk"):
        response = client.get(url, headers={"Range": "bytes=10-19", "If-Range": stale})
        assert response.status_code == 200 and response.content == body, stale
    # a stale If-Range drops even an unsatisfiable Range; a failed If-Match comes before the Range
    far = f"bytes={len(body) + 5}-"
    assert client.get(url, headers={"Range": far, "If-Range": '"x"'}).status_code == 200
    assert client.get(url, headers={"Range": far, "If-Match": '"x"'}).status_code == 412


# ---- presigned URLs and their errors -------------------------------------------------------------
def test_presigned_url_shape(single: tuple) -> None:
    url = single[0]
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and query["X-Amz-SignedHeaders"] == "host"
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}/\d{8}/us-east-1/s3/aws4_request", query["X-Amz-Credential"])
    assert query["X-Amz-Credential"].split("/")[1] == query["X-Amz-Date"][:8]
    assert query["X-Amz-Security-Token"].startswith("IQoJb3JpZ2luX2Vj") and len(query["X-Amz-Security-Token"]) > 300
    assert re.fullmatch(r"[0-9a-f]{64}", query["X-Amz-Signature"]) and query["X-Amz-Expires"] == "3600"


def test_bad_signature_is_signature_does_not_match(client: httpx.Client, single: tuple) -> None:
    url = single[0]
    signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    for bad in ("0" * 64, signature[::-1], "é" * 64, "\u2603", "", "%00"):
        response = client.get(with_query(url, X_Amz_Signature=bad) if bad else url.replace(signature, "0"))
        fields = s3_error(response)
        assert response.status_code == 403 and fields["Code"] == "SignatureDoesNotMatch", bad
        assert fields["Message"].startswith("The request signature we calculated does not match")
        assert fields["AWSAccessKeyId"].startswith("ASIA") and "CanonicalRequest" in fields
    # every query parameter is signed, the Host too
    assert s3_error(client.get(url + "&extra=1"))["Code"] == "SignatureDoesNotMatch"
    moved = client.get(url, headers={"Host": "example.org"})
    assert moved.status_code == 403 and s3_error(moved)["Code"] == "SignatureDoesNotMatch"


def test_tampered_credentials(client: httpx.Client, single: tuple) -> None:
    url = single[0]
    query = dict(parse_qsl(urlsplit(url).query))
    token = client.get(with_query(url, X_Amz_Security_Token=query["X-Amz-Security-Token"][:-4] + "AAAA"))
    assert token.status_code == 400 and s3_error(token)["Code"] == "InvalidToken"
    assert s3_error(client.get(with_query(url, X_Amz_Security_Token=None)))["Code"] == "InvalidToken"
    key = query["X-Amz-Credential"].replace("ASIA", "AKIA", 1)
    unknown = client.get(with_query(url, X_Amz_Credential=key))
    assert unknown.status_code == 403 and s3_error(unknown)["Code"] == "InvalidAccessKeyId"


def test_expired_url(client: httpx.Client, single: tuple) -> None:
    url = single[0]
    response = client.get(with_query(url, X_Amz_Date="20200101T000000Z"))
    fields = s3_error(response)
    assert response.status_code == 403 and fields["Code"] == "AccessDenied"
    assert fields["Message"] == "Request has expired"
    assert fields["X-Amz-Expires"] == "3600" and fields["Expires"] == "2020-01-01T01:00:00Z"
    assert fields["ServerTime"].endswith("Z")


def test_malformed_and_missing_authentication(client: httpx.Client, single: tuple) -> None:
    url = single[0]
    anonymous = client.get(url.split("?")[0])
    assert anonymous.status_code == 403 and s3_error(anonymous)["Message"] == "Access Denied"
    for change in ({"X_Amz_Date": None}, {"X_Amz_Date": "yesterday"}, {"X_Amz_Expires": "604801"},
                   {"X_Amz_Expires": "1e3"}, {"X_Amz_Expires": "9" * 5000}, {"X_Amz_Algorithm": "AWS4-HMAC-MD5"},
                   {"X_Amz_Credential": "ASIA/x"}, {"X_Amz_Credential": "A/20240101/eu-west-1/s3/aws4_request"}):
        response = client.get(with_query(url, **change))
        assert response.status_code == 400, change
        assert s3_error(response)["Code"] == "AuthorizationQueryParametersError"


def test_head_needs_a_url_presigned_for_head(client: httpx.Client, single: tuple) -> None:
    """A URL presigned for GET does not serve HEAD (the method is signed): 403, without a body."""
    response = client.head(single[0])
    assert response.status_code == 403 and response.content == b""
    assert response.headers["x-amz-request-id"]


def test_signer_matches_aws_example_and_expires_tokens() -> None:
    # AWS's documented presigned-URL example (AmazonS3 API reference, "sigv4-query-string-auth")
    params = [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
              ("X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"),
              ("X-Amz-Date", "20130524T000000Z"), ("X-Amz-Expires", "86400"), ("X-Amz-SignedHeaders", "host")]
    request = canonical_request("GET", "/test.txt", params, "examplebucket.s3.amazonaws.com")
    assert sigv4_signature("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524T000000Z", request) == \
        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    # a URL signed late in a credentials session dies with the session, before X-Amz-Expires
    signer = Signer(b"s" * 32, 3600, started=1_700_000_000.0)
    late = signer.started + signer.session_seconds - 1800
    query = signer.query("GET", "h", "/_assets/b/k", {}, now=late)
    signer.check("GET", "h", "/_assets/b/k", list(query.items()), now=late + 1700)
    with pytest.raises(S3Error) as token:
        signer.check("GET", "h", "/_assets/b/k", list(query.items()), now=late + 1900)
    assert (token.value.status, token.value.code) == (400, "ExpiredToken")
    assert b"<Code>ExpiredToken</Code><Message>The provided token has expired.</Message><Token-0>" in \
        token.value.response().body
    with pytest.raises(S3Error) as expired:
        signer.check("GET", "h", "/_assets/b/k", list(query.items()), now=late + 3601)
    assert expired.value.message == "Request has expired"
    fresh = signer.query("GET", "h", "/_assets/b/k", {}, now=late + 1900)  # the next session's key
    assert fresh["X-Amz-Credential"] != query["X-Amz-Credential"]
    signer.check("GET", "h", "/_assets/b/k", list(fresh.items()), now=late + 1900 + 3000)


# ---- Range robustness ----------------------------------------------------------------------------
@pytest.mark.parametrize(("header", "status", "span"), [
    ("bytes=0-9", 206, (0, 10)),
    ("bytes=-7", 206, (-7, None)),
    ("bytes=1048570-", 206, (1048570, None)),
    ("bytes=0-" + "9" * 5000, 206, (0, None)),
    ("bytes=-" + "9" * 5000, 206, (0, None)),
    ("bytes=" + "0" * 4999 + "5-9", 206, (5, 10)),
    ("bytes=" + "9" * 5000 + "-", 416, None),
    ("bytes=" + "9" * 5000 + "-" + "9" * 5001, 416, None),
    ("bytes=-0", 416, None),
    ("bytes=0-1,4-5", 200, (0, None)),
    ("bytes=5-2", 200, (0, None)),
    ("bytes=", 200, (0, None)),
    ("bytes=-", 200, (0, None)),
    ("bytes=a-b", 200, (0, None)),
    ("bytes 0-1", 200, (0, None)),
    ("items=0-1", 200, (0, None)),
    ("bytes=\xd9\xa0-\xd9\xa3", 200, (0, None)),
])
def test_hostile_range_headers(client: httpx.Client, single: tuple, header: str, status: int,
                               span: tuple[int, int | None] | None) -> None:
    url, body, _ = single
    response = client.get(url, headers={"Range": header.encode("latin-1")})
    assert response.status_code == status
    if span is None:
        assert s3_error(response)["Code"] == "InvalidRange"
        assert response.headers["content-range"] == f"bytes */{len(body)}"
    else:
        assert response.content == body[span[0]:span[1]]
        if status == 206:
            start = span[0] % len(body)
            assert response.headers["content-range"] == f"bytes {start}-{len(body) - 1 if span[1] is None else span[1] - 1}/{len(body)}"


def test_ranges_across_block_stamps(client: httpx.Client) -> None:
    """Small ranges of the 1 GiB file, across the 16-byte stamp at each 1 MiB block start."""
    url = presigned(client, 90, 1, "files/primary/sub-1/sam-1/recording_full.dat")
    whole = client.get(url, headers={"Range": f"bytes={MiB - 20}-{2 * MiB + 19}"}).content
    assert len(whole) == MiB + 40
    for start in (MiB - 20, MiB - 1, MiB, MiB + 5, MiB + 15, MiB + 16, 2 * MiB - 3):
        response = client.get(url, headers={"Range": f"bytes={start}-{start + 9}"})
        offset = start - (MiB - 20)
        assert response.status_code == 206 and response.content == whole[offset:offset + 10], start


# ---- fuzzing: any header or query value is an S3 answer, never a crash -----------------------------
_TEXT = st.text(st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=60).map(str.strip) | st.sampled_from(
    ["bytes=0-0", "bytes=-1", "*", '"x"', "W/\"x\"", "Mon, 01 Jan 2001 00:00:00 GMT", "9" * 5000])


@settings(max_examples=150, deadline=None,  # a loaded machine generates slowly: not a failure
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(headers=st.dictionaries(st.sampled_from(["Range", "If-Range", "If-Match", "If-None-Match",
                                                "If-Modified-Since", "If-Unmodified-Since"]), _TEXT),
       query=st.dictionaries(st.sampled_from(["X-Amz-Signature", "X-Amz-Date", "X-Amz-Expires",
                                              "X-Amz-Credential", "X-Amz-Security-Token",
                                              "X-Amz-Algorithm", "versionId", "X_Amz_Date"]),
                             st.text(max_size=40) | st.none(), max_size=3))
def test_fuzzed_requests_never_crash(client: httpx.Client, single: tuple, headers: dict[str, str],
                                     query: dict[str, str | None]) -> None:
    url = with_query(single[0], **{k.replace("-", "_"): v for k, v in query.items()})
    response = client.get(url, headers={k: v.encode("latin-1") for k, v in headers.items()})
    assert response.status_code in (200, 206, 304, 400, 403, 404, 412, 416), response.text
    if response.status_code >= 400:
        assert s3_error(response)["Code"]


# ---- a client that hangs up mid-object ------------------------------------------------------------
BIG = (90, 1, "files/primary/sub-1/sam-1/recording_full.dat")  # 1 GiB, generated
GiB = 1 << 30


def test_streaming_stops_when_the_client_hangs_up(tmp_path: Path) -> None:
    """Read 1 MB of a 1 GiB object and hang up, five times: each answer ends at once (the
    request is over in the stats), ``bytes_sent`` stays far below one object (socket buffers
    only), and the server writes no "socket.send() raised exception" spam on stderr."""
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "sparc.cli", "sandbox", "serve", "--port", "0",
             "--data-dir", str(tmp_path / "data"), "--time-scale", "0"],
            stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip()
        assert base.startswith("http"), base
        with httpx.Client(base_url=base, timeout=30) as control:
            url = presigned(control, *BIG)
            control.post("/_sandbox/reset")
            for _ in range(5):
                with httpx.Client(timeout=30) as reader, reader.stream("GET", url) as response:
                    assert response.status_code == 200
                    got = 0
                    for chunk in response.iter_raw():
                        got += len(chunk)
                        if got >= 1_000_000:
                            break
            deadline = time.monotonic() + 5
            while (stats := control.get("/_sandbox/stats").json())["requests"].get(
                    "GET /_assets/{bucket}/{key}", 0) < 5:
                assert time.monotonic() < deadline, f"the answers go on after the hang-up: {stats}"
                time.sleep(0.05)
            time.sleep(0.5)
            sent = control.get("/_sandbox/stats").json()["bytes_sent"]
    finally:
        server.terminate()
        server.wait(10)
    assert sent < 5 * 64 * MiB, f"{sent} bytes sent for five 1 MB reads"
    assert sent < GiB // 4
    assert "socket.send() raised exception" not in errors.read_text()
