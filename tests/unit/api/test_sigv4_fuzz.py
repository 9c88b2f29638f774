"""Fuzzing the SigV4 verifier with hostile headers, query strings, paths and bodies.

Three generators: Authorization headers and presigned query strings assembled from the
parts a parser trips on (missing and repeated fields, odd separators, non-ASCII, huge or
negative numbers, malformed dates); correctly signed requests with one part replaced by
noise; and plain noise. Whatever the input, `verify` returns a Caller or raises an
ApiError (AWS-shaped), never another exception, and never accepts a request it did not
see signed.
"""

from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from lamina import errors
from lamina.api.sigv4 import Caller, SigV4Verifier
from tests.fuzzing import fuzz, fuzz_settings

pytestmark = fuzz

ENDPOINT = "http://127.0.0.1:3001"
VERIFIER = SigV4Verifier({"test": "test", "AKID": "secret"})
NOW = time.time()

# what the server hands the verifier: header values and the query decoded as latin-1
latin1 = st.text(alphabet=st.characters(max_codepoint=255), max_size=80)
noise = latin1 | st.sampled_from(["", " ", "=", ",", "/", ";", "\x00", "é", "\u00ff" * 3, "%", "%zz", "%ED%A0%80"])
stamps = st.sampled_from(["20240101T000000Z", "20991231T235959Z", "19700101T000000Z", "2024-01-01T00:00:00Z",
                          "20241301T000000Z", "20240132T250000Z", "99999999T999999Z", "0", ""]) | latin1
numbers = st.sampled_from(["600", "0", "-1", "604800", "604801", "1000000000", "9" * 5000, "1e3", "0x10",
                           " 60", "+60", "", "abc", "٣"]) | st.integers().map(str)
credentials = st.builds(lambda *parts: "/".join(parts),
                        st.sampled_from(["test", "AKID", "nobody", ""]) | noise,
                        st.sampled_from(["20240101", ""]) | noise,
                        st.sampled_from(["us-east-1", ""]) | noise,
                        st.sampled_from(["lambda", "s3"]) | noise,
                        st.sampled_from(["aws4_request"]) | noise) | noise


@st.composite
def authorization(draw: st.DrawFn) -> str:
    fields = draw(st.lists(st.sampled_from(["Credential", "SignedHeaders", "Signature", "Junk", ""]), max_size=5))
    values = {"Credential": credentials,
              "SignedHeaders": st.sampled_from(["host", "host;x-amz-date", ";;", ""]) | noise,
              "Signature": st.sampled_from(["0" * 64, "é" * 64, ""]) | noise}
    parts = [f"{name}={draw(values.get(name, noise))}" if draw(st.booleans()) else draw(noise) for name in fields]
    algorithm = draw(st.sampled_from(["AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512", ""]) | noise)
    return algorithm + draw(st.sampled_from([" ", "  ", ""])) + draw(st.sampled_from([",", ", ", ";"])).join(parts)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, str]:
    out = {"host": draw(st.sampled_from(["127.0.0.1:3001", ""]) | noise)}
    if draw(st.booleans()):
        out["authorization"] = draw(authorization())
    if draw(st.booleans()):
        out["x-amz-date"] = draw(stamps)
    if draw(st.booleans()):
        out["date"] = draw(st.sampled_from(["Mon, 01 Jan 2024 00:00:00 GMT", "Mon, 01 Jan 99999 00:00:00 GMT",
                                            "Mon, 01 Jan 0001 00:00:00 +2359", "yesterday"]) | latin1)
    if draw(st.booleans()):
        out["x-amz-content-sha256"] = draw(st.sampled_from(["UNSIGNED-PAYLOAD", "é" * 64, "0" * 64]) | noise)
    return out


@st.composite
def presigned_query(draw: st.DrawFn) -> str:
    params = {"X-Amz-Algorithm": st.sampled_from(["AWS4-HMAC-SHA256"]) | noise, "X-Amz-Credential": credentials,
              "X-Amz-Date": stamps, "X-Amz-Expires": numbers, "X-Amz-SignedHeaders": st.just("host") | noise,
              "X-Amz-Signature": st.sampled_from(["0" * 64, "é"]) | noise, "Qualifier": noise}
    names = draw(st.lists(st.sampled_from(sorted(params)), max_size=8))
    encode = draw(st.booleans())
    pairs = [(name, draw(params[name])) for name in names]
    return "&".join(f"{k}={quote(v, safe='') if encode else v}" for k, v in pairs)


paths = st.sampled_from(["/2015-03-31/functions/", "/a/./b/../c", "//", "/%", "/é", "", "/" + "a/" * 200]) | latin1
bodies = st.binary(max_size=64)


def _outcome(method: str, path: str, query: str, hdrs: dict[str, str], body: bytes,
             now: float = NOW) -> Caller | errors.ApiError:
    try:
        return VERIFIER.verify(method, path, query, hdrs, body, now=now)
    except errors.ApiError as exc:
        return exc


@fuzz
@fuzz_settings
@given(method=st.sampled_from(["GET", "POST", "get", ""]), path=paths, query=presigned_query() | latin1,
       hdrs=headers(), body=bodies)
def test_hostile_requests_get_aws_errors(method: str, path: str, query: str, hdrs: dict[str, str],
                                         body: bytes) -> None:
    outcome = _outcome(method, path, query, hdrs, body)
    assert isinstance(outcome, errors.ApiError), "nothing here was signed with a known secret"
    assert outcome.status in (400, 403)


def _signed(presigned: bool, body: bytes) -> tuple[str, str, str, dict[str, str], bytes]:
    """A POST signed in the Authorization header, or a presigned GET (whose signer takes no body)."""
    method, body = ("GET", b"") if presigned else ("POST", body)
    request = AWSRequest(method=method, url=ENDPOINT + "/2015-03-31/functions/f/invocations?Qualifier=1", data=body)
    auth = SigV4QueryAuth(Credentials("test", "test"), "lambda", "us-east-1", expires=300) if presigned \
        else SigV4Auth(Credentials("test", "test"), "lambda", "us-east-1")
    auth.add_auth(request)  # signed now: verified below at the current time
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    hdrs = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in prepared.headers.items()}
    hdrs.setdefault("host", parts.netloc)
    return method, parts.path, parts.query, hdrs, body


@fuzz
@fuzz_settings
@given(presigned=st.booleans(), body=bodies, target=st.sampled_from(["header", "query", "path", "body"]),
       name=st.sampled_from(["authorization", "x-amz-date", "host", "x-amz-content-sha256", "X-Amz-Expires",
                             "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Date", "Qualifier"]),
       replacement=noise | numbers | stamps)
def test_signed_requests_with_one_part_replaced(presigned: bool, body: bytes, target: str, name: str,
                                                replacement: str) -> None:
    method, path, query, hdrs, data = _signed(presigned, body)
    now = time.time()
    assert _outcome(method, path, query, hdrs, data, now) == Caller("test", "us-east-1", "lambda")
    if target == "header":
        hdrs[name.lower()] = replacement
    elif target == "query":
        pairs = [p.split("=", 1) for p in query.split("&") if p]
        query = "&".join(f"{k}={quote(replacement, safe='') if k == name else v}" for k, v in pairs)
    elif target == "path":
        path = path + replacement
    else:
        data = body + replacement.encode()
    outcome = _outcome(method, path, query, hdrs, data, now)
    assert isinstance(outcome, (Caller, errors.ApiError))
    if isinstance(outcome, Caller):  # only when the replacement changed nothing that was signed
        assert outcome == Caller("test", "us-east-1", "lambda")
