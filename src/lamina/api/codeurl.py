"""Code download URLs: what GetFunction's Code.Location and GetLayerVersion's Content.Location hold.

AWS hands out S3 presigned URLs valid for 10 minutes; these work the same way for a client
(a plain GET, no credentials, `X-Amz-Date` + `X-Amz-Expires` in the query, S3-shaped XML
errors) but are served by Lamina itself at `/_lamina/code/<blob key>`. A URL names its owner
(the function version or layer version it was issued for) and is refused once it has expired
or the owner no longer holds that code (deleted, or its code replaced).

Invariants: every field a download relies on (owner, blob key, issue time, lifetime) is
covered by an HMAC-SHA256 under the server's secret and compared in constant time; the
lifetime is at most a week; nothing about a download is decided from unauthenticated input.
"""

from __future__ import annotations

import calendar
import hmac
import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode
from xml.sax.saxutils import escape

__all__ = ["CODE_PATH", "CodeUrls", "Denied", "Grant", "no_such_key", "request_id"]

CODE_PATH = "/_lamina/code/"
DEFAULT_LIFETIME = 600        # seconds, as AWS's Code.Location
MAX_LIFETIME = 604_800        # what S3 accepts of a presigned URL
_STAMP = "%Y%m%dT%H%M%SZ"
_CONTEXT = b"lamina code url v1"  # domain-separates these MACs from anything else the secret signs


@dataclass(frozen=True)
class Grant:
    """An authentic, unexpired URL: who it was issued for and which blob it reads."""

    owner: str      # the owner's qualified ARN (function:name:version or layer:name:version)
    blob_key: str


class Denied(Exception):
    """A refused download, rendered as S3 renders its errors."""

    def __init__(self, status: int, code: str, message: str, **fields: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def xml(self, request_id: str) -> bytes:
        extra = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in self.fields.items())
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{self.code}</Code>'
                f"<Message>{escape(self.message)}</Message>{extra}<RequestId>{request_id}</RequestId>"
                f"<HostId>{request_id}</HostId></Error>").encode()


def _access_denied() -> Denied:
    return Denied(403, "AccessDenied", "Access Denied")


class CodeUrls:
    """Issues download URLs and checks the ones presented (the owner lookup is the caller's)."""

    def __init__(self, secret: bytes, base_url: str, lifetime: int = DEFAULT_LIFETIME) -> None:
        if not 1 <= lifetime <= MAX_LIFETIME:
            raise ValueError(f"a code URL lifetime must be 1 to {MAX_LIFETIME} seconds, not {lifetime}")
        self._key = hmac.digest(secret, _CONTEXT, "sha256")
        self._base_url = base_url.rstrip("/")
        self._lifetime = lifetime

    def issue(self, owner: str, blob_key: str, now: float | None = None) -> str:
        stamp = time.strftime(_STAMP, time.gmtime(time.time() if now is None else now))
        expires = str(self._lifetime)
        query = urlencode([("owner", owner), ("X-Amz-Date", stamp), ("X-Amz-Expires", expires),
                           ("X-Amz-Signature", self._mac(owner, blob_key, stamp, expires))], quote_via=quote)
        return f"{self._base_url}{CODE_PATH}{quote(blob_key, safe='')}?{query}"

    def check(self, blob_key: str, raw_query: str, now: float | None = None) -> Grant:
        """The grant of an authentic, unexpired URL for `blob_key`; raises Denied otherwise."""
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        owner, stamp, expires = query.get("owner", ""), query.get("X-Amz-Date", ""), query.get("X-Amz-Expires", "")
        signature = query.get("X-Amz-Signature", "")
        expected = self._mac(owner, blob_key, stamp, expires)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogatepass")):
            raise _access_denied()
        # authentic from here on: the fields are the ones this server wrote
        issued = calendar.timegm(time.strptime(stamp, _STAMP))
        deadline = issued + int(expires)
        moment = time.time() if now is None else now
        if moment > deadline:
            raise Denied(403, "AccessDenied", "Request has expired", **{
                "X-Amz-Expires": expires, "Expires": _iso(deadline), "ServerTime": _iso(moment)})
        return Grant(owner, blob_key)

    def _mac(self, owner: str, blob_key: str, stamp: str, expires: str) -> str:
        # length-prefixed, so that no two field tuples make the same message
        message = "".join(f"{len(field)}:{field}" for field in (owner, blob_key, stamp, expires))
        return hmac.digest(self._key, message.encode("utf-8", "surrogatepass"), "sha256").hex()


def no_such_key(blob_key: str) -> Denied:
    """The owner is gone or holds other code now: as S3 answers for a deleted object."""
    return Denied(404, "NoSuchKey", "The specified key does not exist.", Key=blob_key)


def request_id() -> str:
    return uuid.uuid4().hex[:16].upper()


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
