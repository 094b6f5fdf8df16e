"""UIDs are canonical version-4 UUIDs and do not repeat; random suffixes are uniform."""

from __future__ import annotations

import uuid
from collections import Counter

from kplane.apimachinery.random_ids import new_uid, random_chars


def test_uids_are_canonical_version_4_uuids() -> None:
    for _ in range(600):  # more than one 4 KiB block of randomness
        text = new_uid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_uids_do_not_repeat_across_blocks() -> None:
    uids = [new_uid() for _ in range(5000)]
    assert len(set(uids)) == len(uids)


def test_random_chars_use_every_letter_of_the_alphabet_evenly() -> None:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    drawn = random_chars(alphabet, 27_000)
    assert len(drawn) == 27_000 and set(drawn) <= set(alphabet)
    counts = Counter(drawn)
    # 1,000 expected per letter; a biased draw (256 % 27 != 0) would skew the low letters.
    assert all(850 < counts[letter] < 1150 for letter in alphabet), counts
