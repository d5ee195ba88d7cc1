"""The three signature algorithms the simulator verifies, written from the documentation.

* RPC signature v1.0 (HMAC-SHA1): the ``Signature`` query parameter of the classic API.
* ACS3-HMAC-SHA256: the ``Authorization`` header the current SDK sends by default.
* OSS V1 presigned URLs: the ``Signature`` of a LogPath download URL.

The simulator does not reuse the SDK's signing code on purpose: an independent implementation is
what proves that the SDK's requests match the documented algorithms.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

ACS3_ALGORITHM = "ACS3-HMAC-SHA256"
#: SHA-256 of an empty body, the ``x-acs-content-sha256`` of a request without one.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def percent_encode(value: str) -> str:
    """Percent-encode per RFC 3986 as Alibaba Cloud signs: only ``A-Za-z0-9-_.~`` stay literal."""
    return quote(value, safe="~", encoding="utf-8")


def rpc_canonical_query(params: Mapping[str, str]) -> str:
    """The sorted ``name=value&...`` string of every parameter except ``Signature``."""
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)


def rpc_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """``METHOD&%2F&`` + the percent-encoded canonical query string."""
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(rpc_canonical_query(params))}"


def rpc_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    """Base64 HMAC-SHA1 of the string to sign, keyed with ``secret + "&"``."""
    digest = hmac.new(
        f"{secret}&".encode(), rpc_string_to_sign(method, params).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def acs3_canonical_query(query: Mapping[str, str], *, bare_empty: bool = False) -> str:
    """Sorted, RFC 3986 encoded query; ``bare_empty`` writes an empty value as ``name``.

    The documentation writes ``name=`` for an empty value, while the SDK's own test vector
    writes a bare ``name``; a verifier accepts either.
    """
    parts = []
    for key in sorted(query):
        value = query[key]
        if bare_empty and value == "":
            parts.append(percent_encode(key))
        else:
            parts.append(f"{percent_encode(key)}={percent_encode(value)}")
    return "&".join(parts)


def acs3_canonical_headers(headers: Iterable[tuple[str, str]], signed: Iterable[str]) -> str:
    """``name:value\\n`` lines of the signed headers; repeated values sorted, joined by ``,``."""
    wanted = {name.lower() for name in signed}
    values: dict[str, list[str]] = {}
    for name, value in headers:
        low = name.lower()
        if low in wanted:
            values.setdefault(low, []).append(value.strip())
    return "".join(f"{name}:{','.join(sorted(values[name]))}\n" for name in sorted(values))


def acs3_canonical_request(
    method: str,
    pathname: str,
    query: Mapping[str, str],
    headers: Iterable[tuple[str, str]],
    signed_headers: Iterable[str],
    payload_sha256: str,
    *,
    bare_empty: bool = False,
) -> str:
    """The six-line canonical request of the ACS3 algorithm."""
    signed = sorted({h.lower() for h in signed_headers})
    return "\n".join(
        [
            method.upper(),
            pathname,
            acs3_canonical_query(query, bare_empty=bare_empty),
            acs3_canonical_headers(headers, signed),
            ";".join(signed),
            payload_sha256,
        ]
    )


def acs3_signature(canonical_request: str, secret: str) -> str:
    """Hex HMAC-SHA256 (key = the secret, no ``&``) of ``ACS3-HMAC-SHA256\\nhex(sha256(cr))``."""
    hashed = hashlib.sha256(canonical_request.encode()).hexdigest()
    string_to_sign = f"{ACS3_ALGORITHM}\n{hashed}"
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def acs3_authorization(access_key_id: str, signed_headers: Iterable[str], signature: str) -> str:
    """The ``Authorization`` header value."""
    names = ";".join(sorted({h.lower() for h in signed_headers}))
    return (
        f"{ACS3_ALGORITHM} Credential={access_key_id},SignedHeaders={names},Signature={signature}"
    )


@dataclass(frozen=True)
class Acs3Authorization:
    """The parts of an ``Authorization: ACS3-HMAC-SHA256 ...`` header."""

    credential: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_acs3_authorization(value: str) -> Acs3Authorization | None:
    """Split an ACS3 ``Authorization`` header; ``None`` when it is not one."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ACS3_ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, val = item.strip().partition("=")
        if sep:
            fields[name] = val
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        return None
    signed = tuple(h for h in fields["SignedHeaders"].split(";") if h)
    return Acs3Authorization(fields["Credential"], signed, fields["Signature"])


def oss_url_signature(secret: str, expires: int, resource: str) -> str:
    """Base64 HMAC-SHA1 of an OSS V1 presigned GET: ``GET\\n\\n\\n<Expires>\\n<resource>``."""
    string_to_sign = f"GET\n\n\n{expires}\n{resource}"
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")
