"""The simulator's signature code against the provider's published test vectors."""

from __future__ import annotations

import hashlib

import pytest

from cdnlogs.simulator import signing

DOC_PARAMS = {
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "Format": "XML",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "SignatureVersion": "1.0",
    "Timestamp": "2016-02-23T12:46:24Z",
    "Version": "2014-05-26",
}


def test_rpc_string_to_sign_matches_the_documented_one():
    assert signing.rpc_string_to_sign("GET", DOC_PARAMS) == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML"
        "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"
        "%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z"
        "%26Version%3D2014-05-26"
    )


def test_rpc_signature_official_vector():
    assert signing.rpc_signature("GET", DOC_PARAMS, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_rpc_signature_legacy_timestamp_spelling_vector():
    params = dict(DOC_PARAMS)
    params["TimeStamp"] = params.pop("Timestamp")
    assert signing.rpc_signature("GET", params, "testsecret") == "CT9X0VtwR86fNWSnsc6v8YGOjuE="


def test_rpc_signature_sdk_vector():
    params = {"query": "test", "body": "test"}
    assert signing.rpc_signature("GET", params, "secret") == "XlUyV4sXjOuX5FnjUz9IF9tm5rU="


def test_rpc_signature_ignores_the_signature_parameter_and_depends_on_method():
    with_sig = {**DOC_PARAMS, "Signature": "whatever"}
    assert signing.rpc_signature("GET", with_sig, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    assert signing.rpc_signature("POST", DOC_PARAMS, "testsecret") != (
        "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    )


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [("a b", "a%20b"), ("a*b", "a%2Ab"), ("a~b", "a~b"), ("é", "%C3%A9"), ("a/b+c", "a%2Fb%2Bc")],
)
def test_percent_encode_is_rfc3986(raw, encoded):
    assert signing.percent_encode(raw) == encoded


def test_acs3_sdk_vector():
    canonical = signing.acs3_canonical_request(
        "GET",
        "",
        {"test": "ok", "empty": ""},
        [("x-acs-test", "http"), ("x-acs-TEST", "https")],
        ["x-acs-test"],
        "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23",
        bare_empty=True,
    )
    signature = signing.acs3_signature(canonical, "secret")
    assert signing.acs3_authorization("acesskey", ["x-acs-test"], signature) == (
        "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,"
        "Signature=da772425f29289d3460d5fc961455d40c5e8c6afd0888b78a910c991e6a14846"
    )


def test_acs3_canonical_request_layout():
    canonical = signing.acs3_canonical_request(
        "POST",
        "/",
        {"b": "2", "a": "x y"},
        [("Host", "h:1"), ("x-acs-action", " A "), ("user-agent", "not signed")],
        ["host", "x-acs-action"],
        signing.EMPTY_SHA256,
    )
    assert canonical == (
        "POST\n/\na=x%20y&b=2\nhost:h:1\nx-acs-action:A\n\nhost;x-acs-action\n"
        + hashlib.sha256(b"").hexdigest()
    )


def test_parse_acs3_authorization():
    parsed = signing.parse_acs3_authorization(
        "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host;x-acs-date,Signature=abc"
    )
    assert parsed == signing.Acs3Authorization("ak", ("host", "x-acs-date"), "abc")
    assert signing.parse_acs3_authorization("Bearer xyz") is None
    assert signing.parse_acs3_authorization("ACS3-HMAC-SHA256 Credential=ak") is None


def test_oss_url_signature_covers_expires_and_resource():
    base = signing.oss_url_signature("s", 1700000000, "/v1.l1cache/1/d/2024_01_01/f.gz")
    assert base != signing.oss_url_signature("s", 1700000001, "/v1.l1cache/1/d/2024_01_01/f.gz")
    assert base != signing.oss_url_signature("s", 1700000000, "/v1.l1cache/1/d/2024_01_01/g.gz")
    assert base != signing.oss_url_signature("t", 1700000000, "/v1.l1cache/1/d/2024_01_01/f.gz")
