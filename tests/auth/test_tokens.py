"""Tests of kplane.auth.tokens: parsing upstream's token file and authenticating with it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kplane.auth.authn import AUTHENTICATED, UserInfo, authenticate_request
from kplane.auth.tokens import StaticTokenFile, TokenFileError


async def test_plain_record_authenticates_with_authenticated_group() -> None:
    tokens = StaticTokenFile.parse("s3cret,alice,1001\n")

    assert await tokens.authenticate("s3cret") == UserInfo(
        name="alice", uid="1001", groups=(AUTHENTICATED,)
    )


async def test_unknown_and_empty_tokens_are_not_recognised() -> None:
    tokens = StaticTokenFile.parse("s3cret,alice,1001\n")

    assert await tokens.authenticate("s3cre") is None
    assert await tokens.authenticate("s3cret ") is None
    assert await tokens.authenticate("") is None


async def test_quoted_group_column_is_split_on_commas() -> None:
    tokens = StaticTokenFile.parse('tok,bob,42,"system:masters,devs"\n')

    user = await tokens.authenticate("tok")

    assert user is not None
    assert user.groups == ("system:masters", "devs", AUTHENTICATED)
    assert user.is_system_master


async def test_single_unquoted_group_and_extra_columns_ignored() -> None:
    tokens = StaticTokenFile.parse("tok,bob,42,ops,ignored,too\n")

    user = await tokens.authenticate("tok")

    assert user is not None
    assert user.groups == ("ops", AUTHENTICATED)


async def test_empty_group_names_are_dropped() -> None:
    tokens = StaticTokenFile.parse('a,ann,1,""\nb,ben,2,"x,,y"\n')

    ann, ben = await tokens.authenticate("a"), await tokens.authenticate("b")

    assert ann is not None and ann.groups == (AUTHENTICATED,)
    assert ben is not None and ben.groups == ("x", "y", AUTHENTICATED)


async def test_quoted_fields_may_contain_commas_and_quotes() -> None:
    tokens = StaticTokenFile.parse('"to,k","Smith, ""J""",7\n')

    user = await tokens.authenticate("to,k")

    assert user is not None
    assert user.name == 'Smith, "J"'


async def test_blank_lines_and_crlf_line_endings_are_accepted() -> None:
    tokens = StaticTokenFile.parse("\r\none,u1,1\r\n\r\n\ntwo,u2,2\r\n")

    assert len(tokens) == 2
    two = await tokens.authenticate("two")
    assert two is not None and two.uid == "2"


def test_record_with_too_few_columns_names_the_line() -> None:
    text = "good,alice,1\n\nbad,bob\n"

    with pytest.raises(TokenFileError) as caught:
        StaticTokenFile.parse(text, source="/etc/tokens.csv")

    message = str(caught.value)
    assert "'/etc/tokens.csv', line 3" in message
    assert "must have at least 3 columns (token, user name, user uid), found 2" in message


def test_whitespace_only_line_is_a_one_column_record() -> None:
    with pytest.raises(TokenFileError, match=r"line 2: .*found 1"):
        StaticTokenFile.parse("a,b,c\n   \n")


def test_malformed_quoting_is_an_error() -> None:
    with pytest.raises(TokenFileError, match="line 1"):
        StaticTokenFile.parse('"tok"x,alice,1\n')


async def test_duplicate_token_keeps_the_later_record_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="kplane.auth.tokens"):
        tokens = StaticTokenFile.parse("dup,first,1\ndup,second,2\n", source="f.csv")

    user = await tokens.authenticate("dup")
    assert user is not None and user.name == "second"
    assert len(tokens) == 1
    assert any("duplicate token" in r.getMessage() and "line 2" in r.getMessage()
               for r in caplog.records)


async def test_record_with_empty_token_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="kplane.auth.tokens"):
        tokens = StaticTokenFile.parse(",nobody,0\nreal,alice,1\n")

    assert len(tokens) == 1
    assert await tokens.authenticate("") is None
    assert any("empty token" in r.getMessage() for r in caplog.records)


async def test_load_reads_a_file_and_ignores_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_bytes(b'\xef\xbb\xbffirst,alice,1,"g1,g2"\nsecond,bob,2\n')

    tokens = StaticTokenFile.load(path)

    first = await tokens.authenticate("first")
    assert first is not None and first.groups == ("g1", "g2", AUTHENTICATED)
    assert await tokens.authenticate("\ufefffirst") is None
    assert StaticTokenFile.load(str(path)) is not None


def test_load_of_a_missing_file_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        StaticTokenFile.load(tmp_path / "absent.csv")


async def test_works_as_a_token_authenticator_in_the_request_chain() -> None:
    tokens = StaticTokenFile.parse("abc,carol,9,admins\n")

    user = await authenticate_request(
        certificate_user=None,
        headers=[(b"authorization", b"Bearer abc")],
        token_authenticators=[tokens.authenticate],
    )

    assert user == UserInfo(name="carol", uid="9", groups=("admins", AUTHENTICATED))
