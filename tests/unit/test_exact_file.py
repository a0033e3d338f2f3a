"""The one-command fact behind `exact_file`, read from what a host printed (untrusted)."""

from __future__ import annotations

import hashlib

from deploys.exact_file import FileDigest, FoundFile


def test_a_regular_file_is_read_with_its_owner_mode_and_digest() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    found = FileDigest().process(["file", "root ollama 640", f"{digest}  /etc/x.conf"])
    assert found == FoundFile("file", "root", "ollama", 0o640, digest)


def test_absent_link_and_anything_else_are_told_apart() -> None:
    assert FileDigest().process(["absent"]).kind == "absent"
    assert FileDigest().process(["link"]).kind == "link"  # replaced by the rename, not followed
    assert FileDigest().process(["other"]).kind == "other"


def test_a_garbled_answer_is_never_taken_for_the_wanted_file() -> None:
    for output in ([], ["file"], ["file", "root root rwx", "abc  /x"], ["$(id)"], ["file", ""]):
        found = FileDigest().process(output)
        assert found.kind == "other" or found.sha256 == ""


def test_the_command_quotes_the_path() -> None:
    command = FileDigest().command("/etc/a b;$(id)")
    assert "'/etc/a b;$(id)'" in command and " $(id)" not in command.replace("'/etc/a b;$(id)'", "")
