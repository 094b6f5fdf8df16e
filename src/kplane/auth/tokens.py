"""Static bearer tokens read from a CSV file, as kube-apiserver's ``--token-auth-file``.

Operators and tests need a way to hand out long-lived credentials without minting client
certificates, and upstream's token file is the format people already have. Each record is
``token,user,uid[,"group1,group2"]``; this module parses the file exactly as upstream does
and turns a presented token into its :class:`~kplane.auth.authn.UserInfo`.

Upstream's rules, kept here: a record with fewer than three columns makes the whole file
invalid (we also name the line); blank lines are skipped; a record with an empty token is
skipped with a warning; a token listed twice is kept with its *last* record, with a
warning. Two deliberate differences: a UTF-8 byte-order mark is ignored (otherwise a file
saved by some Windows editor silently loses its first token), and empty group names
(``""`` or ``"a,,b"``) are dropped, because no RBAC binding can name the empty group.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path

from kplane.auth.authn import UserInfo

_log = logging.getLogger(__name__)

_MIN_COLUMNS = 3


class TokenFileError(ValueError):
    """The token file cannot be used; the message names the file and the line."""


class StaticTokenFile:
    """The users of a token file, looked up by token."""

    def __init__(self, users_by_digest: dict[bytes, UserInfo]) -> None:
        # Keyed by SHA-256 of the token rather than the token itself: a dict lookup
        # compares keys byte by byte, and timing that on the secret would let a caller
        # guess a token prefix by prefix. Timing on the digest tells them nothing usable.
        self._users_by_digest = users_by_digest

    @classmethod
    def load(cls, path: str | Path) -> StaticTokenFile:
        """Read a token file; raises :class:`TokenFileError` (a ``ValueError``) if malformed
        and ``OSError`` if unreadable."""
        source = str(path)
        text = Path(path).read_text(encoding="utf-8-sig")
        return cls.parse(text, source=source)

    @classmethod
    def parse(cls, text: str, *, source: str = "<string>") -> StaticTokenFile:
        """Parse token-file content; ``source`` only appears in messages."""
        users: dict[bytes, UserInfo] = {}
        for line, record_number, record in _records(text, source=source):
            token = record[0]
            if not token:
                _log.warning(
                    "empty token in token file %r, line %d (record %d): skipped",
                    source, line, record_number,
                )
                continue
            digest = _digest(token)
            if digest in users:
                _log.warning(
                    "duplicate token in token file %r, line %d (record %d): "
                    "the later record wins",
                    source, line, record_number,
                )
            users[digest] = _user_of(record)
        return cls(users)

    def __len__(self) -> int:
        return len(self._users_by_digest)

    async def authenticate(self, token: str) -> UserInfo | None:
        """The user the token belongs to (also in ``system:authenticated``), or ``None``."""
        user = self._users_by_digest.get(_digest(token))
        return None if user is None else user.with_authenticated_group()


def _records(text: str, *, source: str) -> Iterator[tuple[int, int, list[str]]]:
    """Yields (line number, record number, columns) for every non-blank record."""
    # strict=True makes malformed quoting an error, as Go's encoding/csv does.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    record_number = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise TokenFileError(
                f"token file {source!r}, line {reader.line_num}: {err}"
            ) from err
        if not record:
            continue
        if len(record) < _MIN_COLUMNS:
            raise TokenFileError(
                f"token file {source!r}, line {reader.line_num}: must have at least 3 "
                f"columns (token, user name, user uid), found {len(record)}"
            )
        record_number += 1
        yield reader.line_num, record_number, record


def _user_of(record: list[str]) -> UserInfo:
    groups: tuple[str, ...] = ()
    if len(record) > _MIN_COLUMNS:
        groups = tuple(group for group in record[3].split(",") if group)
    return UserInfo(name=record[1], uid=record[2], groups=groups)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
