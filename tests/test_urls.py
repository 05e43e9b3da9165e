"""``wheelstream._urls``: the URL forms that guard secrets (DESIGN §2, "Secrets").

``redact`` is what the journal, logs, errors and ``direct_url.json`` see; ``cache_key`` names a download's files
in the cache, so two spellings of one file must share it and two files must not; ``split_hash_fragment`` reads
the ``#sha256=`` a caller pinned. (The wheel file name rules are in ``test_wheel_filename.py``.)
"""

from __future__ import annotations

import hashlib
import string
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wheelstream._urls import cache_key, redact, shown_text, shown_url, split_hash_fragment
from wheelstream.errors import UsageError

HEX = hashlib.sha256(b"demo").hexdigest()

# -- redact -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://alice:s3cret@host/demo.whl", "https://host/demo.whl"),
        ("https://tok3n@host/demo.whl", "https://host/demo.whl"),  # a token alone in the userinfo
        ("https://alice:@host:8443/demo.whl", "https://host:8443/demo.whl"),
        ("https://alice:p@ss@host/demo.whl", "https://host/demo.whl"),  # an unencoded @ in the password
        ("https://alice:p%40ss@host/demo.whl", "https://host/demo.whl"),
        ("https://host/demo.whl", "https://host/demo.whl"),  # nothing to hide: unchanged
        ("https://host/simple/demo/", "https://host/simple/demo/"),
    ],
)
def test_redact_drops_the_userinfo(url: str, redacted: str) -> None:
    assert redact(url) == redacted


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("token=hunter2", "token=***"),
        ("access_token=hunter2&v=2", "access_token=***&v=2"),
        ("api_key=hunter2", "api_key=***"),
        ("X-Amz-Signature=hunter2&X-Amz-Date=20261206", "X-Amz-Signature=***&X-Amz-Date=20261206"),
        ("sig=hunter2", "sig=***"),
        ("Password=hunter2", "Password=***"),  # any case
        ("passwd=hunter2", "passwd=***"),
        ("auth=hunter2", "auth=***"),
        ("credential=hunter2", "credential=***"),
        ("secret=hunter2%2Fwith%20escapes", "secret=***"),  # the whole value, escapes and all
        ("token=", "token=***"),
        ("name=demo&version=1.0", "name=demo&version=1.0"),  # not secret-looking: kept
    ],
)
def test_redact_masks_the_values_of_secret_looking_query_keys(query: str, shown: str) -> None:
    redacted = redact(f"https://host/demo.whl?{query}")
    assert redacted == f"https://host/demo.whl?{shown}"
    assert "hunter2" not in redacted


def test_redact_keeps_the_fragment_the_caller_pinned() -> None:
    url = f"https://alice:s3cret@host/demo.whl?token=hunter2#sha256={HEX}"
    assert redact(url) == f"https://host/demo.whl?token=***#sha256={HEX}"
    assert split_hash_fragment(redact(url))[1] == HEX


_USERINFO = st.text(
    alphabet=string.ascii_letters + string.digits + "-._~!$&'()*+,;=", min_size=1, max_size=20
)


@given(user=_USERINFO, password=_USERINFO, token=st.text(min_size=1, max_size=20))
def test_no_credential_survives_redaction(user: str, password: str, token: str) -> None:
    """Whatever the credentials hold (marked so that a hit is theirs, not the host's; the token percent-encoded
    as a query value is), none is in the redacted form, nor in the form errors print; redacting again changes
    nothing."""
    user, password, token = f"U{user}U", f"P{password}P", f"T{token}T"
    encoded = urllib.parse.quote(token, safe="")
    url = f"https://{user}:{password}@files.example/p/demo-1.0-py3-none-any.whl?token={encoded}&v=1"
    for shown in (redact(url), shown_url(url)):
        assert shown == "https://files.example/p/demo-1.0-py3-none-any.whl?token=***&v=1", shown
    assert redact(redact(url)) == redact(url)


def test_shown_url_is_one_printable_line() -> None:
    shown = shown_url("https://alice:s3cret@host/a b\x1b[31m\u202e.whl?token=hunter2")
    assert shown == "https://host/a%20b%1B[31m%E2%80%AE.whl?token=***"
    assert shown.isprintable()
    assert " " not in shown


# -- split_hash_fragment ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "split"),
    [
        (f"https://host/demo.whl#sha256={HEX}", ("https://host/demo.whl", HEX, ())),
        (f"https://host/demo.whl#sha256={HEX.upper()}", ("https://host/demo.whl", HEX, ())),  # lower-cased
        ("https://host/demo.whl", ("https://host/demo.whl", None, ())),
        (
            f"https://host/demo.whl#sha256={HEX}&egg=demo",
            ("https://host/demo.whl", HEX, ()),
        ),  # anywhere, as pip
        (f"https://host/demo.whl#egg=demo&sha256={HEX}", ("https://host/demo.whl", HEX, ())),
        (
            f"https://host/demo.whl#sha256={HEX}&md5={HEX[:32].upper()}",
            ("https://host/demo.whl", HEX, (("md5", HEX[:32]),)),
        ),
        (f"https://host/demo.whl#sha256={HEX}&sha256={HEX.upper()}", ("https://host/demo.whl", HEX, ())),
        (  # a pin by other hashes alone: checked on the finished file, as pip and uv check it
            f"https://host/demo.whl#egg=demo&sha512={HEX}{HEX}&sha384={HEX}{HEX[:32]}&sha1={HEX[:40]}",
            (
                "https://host/demo.whl",
                None,
                (("sha512", HEX + HEX), ("sha384", HEX + HEX[:32]), ("sha1", HEX[:40])),
            ),
        ),
        (
            f"https://host/demo.whl#sha224={HEX[:56]}&egg=x",
            ("https://host/demo.whl", None, (("sha224", HEX[:56]),)),
        ),
        (
            "https://host/demo.whl#egg=demo",
            ("https://host/demo.whl", None, ()),
        ),  # the base never keeps a fragment
        (f"https://host/demo.whl?v=1#sha256={HEX}", ("https://host/demo.whl?v=1", HEX, ())),
    ],
)
def test_split_hash_fragment(url: str, split: tuple[str, str | None, tuple[tuple[str, str], ...]]) -> None:
    assert split_hash_fragment(url) == split


@pytest.mark.parametrize(
    ("fragment", "says"),
    [
        ("sha256=abc", "must be 64 hex digits"),  # too short
        (f"sha256={HEX}0", "must be 64 hex digits"),  # too long
        (f"sha256={HEX[:-1]}g", "must be 64 hex digits"),
        (f"egg=demo&sha256={HEX[:63]}", "must be 64 hex digits"),
        (f"sha256={HEX}&sha256={'0' * 64}", "two different sha256"),
        (f"md5={HEX[:31]}", "#md5= must be 32 hex digits"),
        (f"egg=demo&sha512={HEX}", "#sha512= must be 128 hex digits"),
        (f"sha384={HEX}{HEX[:31]}z", "#sha384= must be 96 hex digits"),
        (f"sha1={HEX[:40]}&sha1={'0' * 40}", "two different sha1"),
    ],
)
def test_a_pin_that_cannot_be_checked_is_refused_not_dropped(fragment: str, says: str) -> None:
    with pytest.raises(UsageError, match=says) as caught:
        split_hash_fragment(f"https://user:secret@host/demo-1.0-py3-none-any.whl#{fragment}")
    assert "secret" not in str(caught.value)


# -- cache_key -----------------------------------------------------------------------------------------------

BASE = "https://files.example/packages/demo-1.0-py3-none-any.whl"


@pytest.mark.parametrize(
    "same",
    [
        "https://alice:s3cret@files.example/packages/demo-1.0-py3-none-any.whl",
        "https://bob:other@files.example/packages/demo-1.0-py3-none-any.whl",  # another user: the same file
        f"{BASE}#sha256={HEX}",
        f"{BASE}#egg=demo",
        "HTTPS://Files.Example/packages/demo-1.0-py3-none-any.whl",  # scheme and host are case-insensitive
        f"https://alice:s3cret@FILES.example/packages/demo-1.0-py3-none-any.whl#sha256={HEX}",
    ],
)
def test_cache_key_is_the_same_for_the_same_file(same: str) -> None:
    assert cache_key(same) == cache_key(BASE)


def test_cache_key_ignores_the_values_of_secret_query_keys() -> None:
    """A rotated token names the same download: its partial file is resumed, not started again."""
    assert cache_key(f"{BASE}?token=old&v=1") == cache_key(f"{BASE}?token=new&v=1")
    assert cache_key("https://host/") == cache_key("https://host")  # an empty path is "/"


@pytest.mark.parametrize(
    "other",
    [
        "https://files.example/packages/demo-2.0-py3-none-any.whl",
        "https://files.example/packages/Demo-1.0-py3-none-any.whl",  # paths are case-sensitive
        "https://files.example/mirror/demo-1.0-py3-none-any.whl",
        "http://files.example/packages/demo-1.0-py3-none-any.whl",
        "https://files.example:8443/packages/demo-1.0-py3-none-any.whl",
        "https://cdn.example/packages/demo-1.0-py3-none-any.whl",
        f"{BASE}?v=1",
        f"{BASE}?v=2",
    ],
)
def test_cache_key_differs_for_another_file(other: str) -> None:
    assert cache_key(other) != cache_key(BASE)


def test_cache_key_is_a_file_name() -> None:
    key = cache_key(f"https://alice:s3cret@host/../x/demo.whl?token=hunter2#sha256={HEX}")
    assert len(key) == 64
    assert set(key) <= set("0123456789abcdef")


@pytest.mark.parametrize("key", ["tok", "pwd", "session", "X-Amz-Credential", "jwt", "access_token"])
def test_more_secret_looking_query_keys_are_masked(key: str) -> None:
    assert redact(f"https://h/x.whl?{key}=s3cr3t&v=1") == f"https://h/x.whl?{key}=***&v=1"


@pytest.mark.parametrize(
    "text",
    [
        "demo @ https://alice:pa'ss@host/x.whl",  # a quote is legal in userinfo: it ended the URL's match
        '--extra-index-url="https://alice:s3cret@host/simple/"',
        "r.txt:1: 'demo @ http://alice:s3cret%40x@127.0.0.1:9/demo-1.0-py3-none-any.whl'",
    ],
)
def test_shown_text_drops_every_url_userinfo(text: str) -> None:
    shown = shown_text(text)
    assert "alice" not in shown
    assert "host" in shown or "127.0.0.1" in shown


@pytest.mark.parametrize("url", ["http://user:p@ss@host/x.whl", "http://user:p@ss@[::1/simple/"])
def test_a_password_holding_an_at_sign_is_dropped_whole(url: str) -> None:
    """The fallback for a URL urlsplit cannot read stopped at the first "@": ``http://ss@…`` was shown."""
    assert "ss@" not in shown_text(url)
    assert "ss@" not in redact(url)
