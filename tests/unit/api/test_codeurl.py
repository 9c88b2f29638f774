"""Code download URLs: issued for one owner and blob, valid 10 minutes, refused as S3 refuses.

The end-to-end attacks (expired and post-delete URLs against a real server) are in
tests/security/test_api_edge.py; here, what the token binds and how refusals read.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from lamina.api.codeurl import CodeUrls, Denied, Grant

OWNER = "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST"
BLOB = "ab" * 32
T0 = 1_700_000_000.0


@pytest.fixture
def urls() -> CodeUrls:
    return CodeUrls(b"k" * 32, "http://127.0.0.1:3001/", lifetime=600)


def _parts(url: str) -> tuple[str, dict[str, str]]:
    split = urlsplit(url)
    return split.path.rsplit("/", 1)[1], dict(parse_qsl(split.query))


def test_shape_is_an_s3_presigned_urls(urls: CodeUrls) -> None:
    url = urls.issue(OWNER, BLOB, now=T0)
    assert url.startswith(f"http://127.0.0.1:3001/_lamina/code/{BLOB}?")
    key, query = _parts(url)
    assert query["X-Amz-Date"] == "20231114T221320Z"
    assert query["X-Amz-Expires"] == "600"
    assert query["owner"] == OWNER
    assert urls.check(key, urlsplit(url).query, now=T0 + 600) == Grant(OWNER, BLOB)


def test_expired_after_its_lifetime(urls: CodeUrls) -> None:
    url = urls.issue(OWNER, BLOB, now=T0)
    with pytest.raises(Denied) as caught:
        urls.check(BLOB, urlsplit(url).query, now=T0 + 601)
    assert (caught.value.status, caught.value.code, caught.value.message) == (403, "AccessDenied",
                                                                              "Request has expired")
    xml = caught.value.xml("REQ1").decode()
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>')
    assert ("<X-Amz-Expires>600</X-Amz-Expires><Expires>2023-11-14T22:23:20Z</Expires>"
            "<ServerTime>2023-11-14T22:23:21Z</ServerTime><RequestId>REQ1</RequestId>") in xml


@pytest.mark.parametrize("field", ["owner", "X-Amz-Date", "X-Amz-Expires", "X-Amz-Signature", "blob"])
def test_every_field_is_bound(urls: CodeUrls, field: str) -> None:
    key, query = _parts(urls.issue(OWNER, BLOB, now=T0))
    if field == "blob":
        key = "cd" * 32
    else:
        query[field] = {"owner": OWNER.replace("function:f", "function:g"), "X-Amz-Date": "20991231T000000Z",
                        "X-Amz-Expires": "604800", "X-Amz-Signature": "0" * 64}[field]
    with pytest.raises(Denied) as caught:
        urls.check(key, urlencode(query), now=T0)
    assert (caught.value.status, caught.value.code, caught.value.message) == (403, "AccessDenied", "Access Denied")


@pytest.mark.parametrize("query", ["", "owner=x", "X-Amz-Signature=%E9", "a=b&&&=", "X-Amz-Date=%00"])
def test_malformed_queries_are_denied(urls: CodeUrls, query: str) -> None:
    with pytest.raises(Denied):
        urls.check(BLOB, query, now=T0)


def test_another_servers_secret_does_not_verify(urls: CodeUrls) -> None:
    url = CodeUrls(b"other" * 8, "http://h").issue(OWNER, BLOB, now=T0)
    with pytest.raises(Denied):
        urls.check(BLOB, urlsplit(url).query, now=T0)


def test_lifetime_is_bounded() -> None:
    with pytest.raises(ValueError):
        CodeUrls(b"k", "http://h", lifetime=604_801)
