"""Which entry names are refused, before any of them reaches a file system (DESIGN §4).

A name is the one field every reader interprets for itself: these rules keep it inside the extraction root
and make pip's zipfile, uv and a scanner land on the same path. Sections relied on (PKWARE APPNOTE 6.3.10):

* 4.4.17 file name — a relative path with forward slashes, no drive or device letter, no leading slash.
* 4.6.9  Info-ZIP Unicode Path extra field (id 0x7075): version (1 byte, 1), CRC-32 of the header's name
  field (4 bytes), the name in UTF-8. See :func:`check_unicode_path` for why it must repeat the name.
"""

from __future__ import annotations

import re

from wheelstream.errors import MalformedRecord, UnsafePath

__all__ = [
    "MAX_COMPONENT_BYTES",
    "MAX_NAME_BYTES",
    "MAX_NAME_COMPONENTS",
    "check_safe_name",
    "check_unicode_path",
]

_DRIVE = re.compile(r"^[A-Za-z]:")

# Hardening limits on entry names (DESIGN §4 spirit: refuse what no real wheel has before it reaches a file
# system). Real wheels nest a few dozen directories at most, in names of a few hundred bytes; these limits are
# far above that and far below what breaks: NAME_MAX (255 bytes per component on every common Unix file
# system), PATH_MAX (4096 bytes for the whole staged path, cache directory included) and the recursion of tools
# that walk a tree with one frame per level (Python 3.11's ``os.walk`` and ``shutil.rmtree``). With them the
# outcome does not depend on the cache directory's own path, unless that path alone nears PATH_MAX.
MAX_NAME_BYTES = 1024
MAX_NAME_COMPONENTS = 128
MAX_COMPONENT_BYTES = 255
# A name of at most this many characters cannot break a limit above (UTF-8 spends at most 4 bytes on one).
_SHORT_NAME = MAX_COMPONENT_BYTES // 4


def check_safe_name(name: str, offset: int) -> None:
    """Reject every name that could land outside the extraction root or be read two ways (DESIGN §4), and
    names past the length limits above."""
    reason = None
    if not name:
        reason = "empty entry name"
    elif "\x00" in name:
        reason = "entry name contains NUL"
    elif "\\" in name:
        reason = "entry name contains a backslash"
    elif name.startswith("/"):
        reason = "absolute entry name"
    elif _DRIVE.match(name):
        reason = "entry name starts with a drive letter"
    else:
        parts = name[:-1].split("/") if name.endswith("/") else name.split("/")
        if ".." in parts:  # even one that stays inside (a/../b): a name is read one way only
            reason = (
                "entry name climbs out with '..'" if _climbs(parts) else "entry name has a '..' component"
            )
        elif "" in parts or "." in parts:
            reason = "entry name is not canonical (empty or '.' component)"
        elif len(parts) > MAX_NAME_COMPONENTS:
            reason = f"entry name has {len(parts)} components, more than the {MAX_NAME_COMPONENTS} allowed"
        elif len(name) > _SHORT_NAME:
            reason = _too_long(name, parts)
    if reason is not None:
        raise UnsafePath(reason, entry=name, offset=offset)


def _climbs(parts: list[str]) -> bool:
    """Whether the ``..`` components take the name above the root at some point (a/../../b does)."""
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else (0 if part in ("", ".") else 1)  # a/./.. and a//.. stay at a
        if depth < 0:
            return True
    return False


def _too_long(name: str, parts: list[str]) -> str | None:
    """Why a long name breaks a byte limit (UTF-8, as it is written to disk), or ``None``."""
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        return f"entry name is {size} bytes long, more than the {MAX_NAME_BYTES} allowed"
    for part in parts:
        if len(part) > _SHORT_NAME:
            part_size = len(part.encode("utf-8", "surrogatepass"))
            if part_size > MAX_COMPONENT_BYTES:
                return f"entry name has a {part_size}-byte component, more than the {MAX_COMPONENT_BYTES} allowed"
    return None


def check_unicode_path(body: bytes, name: str, offset: int) -> None:
    """An Info-ZIP Unicode Path extra field (4.6.9) must name exactly the header's name.

    Readers disagree about it: CPython's zipfile (3.12+, so pip there) extracts to the field's name when its
    version is 1 and its CRC matches the name field, whatever bit 11 says; uv's reader takes it only when bit 11
    is clear; older zipfile, and this parser, use the name field. A field naming another path would put a file
    in one place for one installer and elsewhere for another (or for a scanner), so it is refused — even with a
    stale CRC that today's readers ignore, since a reader that does not check the CRC would not. One that names
    the same path is harmless to every reader and accepted. A field zipfile cannot read (shorter than 5 bytes)
    or would refuse (invalid UTF-8), or one of an unknown version, is refused as malformed.
    """
    if len(body) < 5 or body[0] != 1:
        what = "too short" if len(body) < 5 else f"version {body[0]}"
        raise MalformedRecord(
            f"malformed Info-ZIP Unicode Path extra field (0x7075): {what}", entry=name, offset=offset
        )
    try:
        unicode_name = body[5:].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRecord(
            "Info-ZIP Unicode Path extra field (0x7075) is not valid UTF-8", entry=name, offset=offset
        ) from None
    if unicode_name != name:
        shown = unicode_name if len(unicode_name) <= 200 else unicode_name[:200] + "..."
        raise UnsafePath(
            f"Info-ZIP Unicode Path extra field (0x7075) names another path, {shown!r}, where readers that "
            "honour it (zipfile on Python 3.12+, uv) may install this entry",
            entry=name,
            offset=offset,
        )
