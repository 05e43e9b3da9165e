"""Proof that a directory in a target is wheelstream's own bookkeeping, not a wheel's content.

A wheel is attacker-controlled data, and an installer other than wheelstream (pip, uv) will happily install a
wheel that ships a top-level directory named ``.wheelstream-tmp-x`` with a lock file and a commit plan in it.
If recovery (:func:`._recovery.finish_interrupted`) acted on every directory that merely *looks* like a killed
install's, the next ``wheelstream install`` into that target would move the planted "plan" into place or
delete what the wheel named ``.wheelstream-gone-*`` — content the user never asked to touch (DESIGN §5, "The
installer's own names are not the wheel's").

So every temporary home carries a token a wheel cannot know: its lock file holds
``HMAC-SHA256(key, name suffix)``, where ``key`` is 32 random bytes kept owner-only in the user's state
directory (``$WHEELSTREAM_STATE_DIR``, else platformdirs' ``user_state_path("wheelstream")``) — not in the
cache, which ``cache clean`` or a different ``--cache-dir`` would take away while a killed commit still
waits to be finished. Recovery acts only on a directory whose token verifies; anything else is left alone
(and named in a warning when it has a plan). When the key cannot be stored (a read-only home), this process
uses a key of its own: its installs still work, but a kill -9 of one can only be finished by hand.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import filelock

from wheelstream.errors import Interrupted

__all__ = ["destination_lock", "home_token", "owner_key", "state_dir", "token_matches"]

_LOCK_QUIET = 0.5  # seconds another command may hold a destination before a waiting one says so
_CANCEL_POLL = 0.1  # seconds: how soon a cancel ends the wait for another command's lock
_KEY_FILE = "owner.key"
_KEY_BYTES = 32
_DOMAIN = b"wheelstream temporary home\0"


def state_dir() -> Path:
    """Where wheelstream keeps what must outlive the cache: ``$WHEELSTREAM_STATE_DIR`` or the platform's."""
    env = os.environ.get("WHEELSTREAM_STATE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return platformdirs.user_state_path("wheelstream")


_PROCESS_KEY = secrets.token_bytes(_KEY_BYTES)  # when none can be stored: this process's installs only


def _key_at(directory: Path) -> bytes:
    """The stored key, or this process's own while none can be stored (the module docstring). The fallback is
    not remembered: a failure that passes (a full disk, a moment's EMFILE) left the process signing with a key
    no other process could check for the rest of its life, and every killed install it met stayed unfinished."""
    try:
        return _stored_key(directory)
    except (OSError, ValueError):
        return _PROCESS_KEY


@functools.lru_cache(maxsize=8)
def _stored_key(directory: Path) -> bytes:
    """The key kept in ``directory``, made if missing; raises when it can be neither read nor made (not cached)."""
    path = directory / _KEY_FILE
    with contextlib.suppress(OSError, ValueError):
        return _read_key(path)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    _create_key(path)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) != _KEY_BYTES:
        raise ValueError(f"{path} is not a wheelstream key")
    return key


def _create_key(path: Path) -> None:
    """Write a new key under a temporary name and ``link`` it into place: two processes creating it at once
    both end up reading the one that won, never a half-written file."""
    tmp = path.with_name(f"{_KEY_FILE}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(secrets.token_bytes(_KEY_BYTES))
            stream.flush()
            os.fsync(stream.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def owner_key() -> bytes:
    """This user's key (created on first use)."""
    return _key_at(state_dir())


def home_token(suffix: str) -> bytes:
    """The token a temporary home named ``<prefix><suffix>`` keeps in its lock file."""
    return (
        hmac.new(owner_key(), _DOMAIN + suffix.encode("utf-8", "surrogateescape"), hashlib.sha256)
        .hexdigest()
        .encode("ascii")
    )


def token_matches(suffix: str, found: bytes) -> bool:
    """Whether ``found`` (a lock file's content) proves the directory ``<prefix><suffix>`` is ours."""
    return hmac.compare_digest(home_token(suffix), found.strip())


@contextlib.contextmanager
def destination_lock(
    root: Path, warn: Callable[[str], None], cancelled: Callable[[], bool] | None = None
) -> Iterator[None]:
    """One wheelstream command at a time changes a destination — an environment (as uv locks a venv) or a
    ``--target`` directory: from reading what is there to the last rename, so no plan is made on a state another
    process is changing. Two installs into one target at once lost files: one's rollback took back paths the
    other had just moved in. The lock file lives in the user's state directory, named after the root's real
    path — nothing is added to the destination. When another command holds it past ``_LOCK_QUIET`` seconds (its
    commit, its bytecode), ``warn`` says what this one waits for, so the wait does not look like a hang;
    ``cancelled()`` true ends the wait (a library caller's ``cancel``) as Ctrl-C does, nothing changed."""
    locks = state_dir() / "environment-locks"  # (the name from when only environments had one)
    try:
        locks.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:  # a read-only home: the command runs unlocked, as it did before there was a lock
        yield
        return
    key = hashlib.sha256(os.fsencode(os.path.realpath(root))).hexdigest()[:32]
    lock = filelock.FileLock(locks / f"{key}.lock")
    try:
        try:
            lock.acquire(timeout=_LOCK_QUIET)
        except filelock.Timeout:
            warn(f"waiting for another wheelstream command to finish with {root}")
            while True:
                if cancelled is not None and cancelled():
                    raise KeyboardInterrupt from None
                try:
                    lock.acquire(timeout=_CANCEL_POLL)
                    break
                except filelock.Timeout:
                    continue
        if cancelled is not None and cancelled():
            lock.release()
            raise KeyboardInterrupt
    except KeyboardInterrupt:  # as every other Ctrl-C of a call: the error, with its exit code
        raise Interrupted(f"interrupted before anything in {root} was changed") from None
    try:
        yield
    finally:
        lock.release()
