"""Go glob matching, durations, time specs and the artefact filter (pure, no Redis)."""

from __future__ import annotations

import pytest

from holt_core.artefact_filter import ArtefactFilter
from holt_core.errors import InvalidInput
from holt_core.globmatch import go_match, is_valid_pattern
from holt_core.models import Artefact, StructuralType, new_id
from holt_core.timespec import parse_duration, parse_time_range, parse_time_spec

# (pattern, name, expected); None = malformed pattern (never matches)
GLOB_CASES = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("a[/]b", "a/b", True),  # a class may match the separator, unlike ? and *
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[z-a]", "m", False),  # inverted range: valid, matches nothing
    ("[^z-a]", "m", True),
    ("[*]", "*", True),
    ("Code*", "CodeCommit", True),
    ("*Result", "TestResult", True),
    ("*Result", "ResultSet", False),
    ("Goal?efined", "GoalDefined", True),
    ("*x", "xxx", True),
    ("[]a]", "]", None),
    ("[-]", "-", None),
    ("[x-]", "x", None),
    ("[-x]", "x", None),
    ("\\", "a", None),
    ("[a-b-c]", "a", None),
    ("[", "a", None),
    ("[^", "a", None),
    ("[^bc", "a", None),
    ("a[", "a", None),
    ("*x[", "x", None),
    ("[]", "", None),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), GLOB_CASES)
def test_go_match(pattern: str, name: str, expected: bool | None) -> None:
    assert go_match(pattern, name) is bool(expected)
    assert is_valid_pattern(pattern) is (expected is not None)


def test_go_match_commits_like_go_instead_of_backtracking() -> None:
    # Go places "[^x]" at the first fitting spot ("b") and never revisits it; a backtracking regex
    # would let the class take the "/" and report a match.
    assert not go_match("*[^x]*c", "b/c")
    assert go_match("*[^x]*c", "bc")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("1m30.5s", 90.5),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("-2m", -120.0),
        ("+1h", 3600.0),
        ("0", 0.0),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("10ns", 1e-8),
        ("90", 90.0),
        ("2.5", 2.5),
        (45, 45.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "h", "1d", "1 h", "1h 30m", "s1", "--1s", "1.2.3s", "1hh", "ms"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InvalidInput, match="invalid duration"):
        parse_duration(text)


def test_bare_numbers_can_be_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_duration("90", bare_seconds=False)
    with pytest.raises(InvalidInput):
        parse_duration(90, bare_seconds=False)


NOW = 1_761_742_800_000  # 2025-10-29T13:00:00Z


def test_time_spec_rfc3339() -> None:
    assert parse_time_spec("2025-10-29T13:00:00Z", 0) == NOW
    assert parse_time_spec("2025-10-29T14:00:00+01:00", 0) == NOW
    assert parse_time_spec("2025-10-29T08:30:00-04:30", 0) == NOW
    assert parse_time_spec("2025-10-29T13:00:00.25Z", 0) == NOW + 250
    assert parse_time_spec("2025-10-29T13:00:00.123456789Z", 0) == NOW + 123


def test_time_spec_duration_means_ago() -> None:
    assert parse_time_spec("1h30m", NOW) == NOW - 5_400_000
    assert parse_time_spec("500ms", NOW) == NOW - 500
    assert parse_time_spec("-1m", NOW) == NOW + 60_000


@pytest.mark.parametrize("text", ["yesterday", "90", "2025-10-29", "2025-10-29 13:00:00Z", "2025-13-29T13:00:00Z"])
def test_time_spec_errors(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_time_spec(text, NOW, flag="--until")
    assert err.value.message == (
        f"invalid --until: invalid time specification: {text} "
        "(use duration like '1h30m' or RFC3339 like '2025-10-29T13:00:00Z')"
    )


def test_time_range() -> None:
    assert parse_time_range(None, None, NOW) == (None, None)
    assert parse_time_range("2h", "1h", NOW) == (NOW - 7_200_000, NOW - 3_600_000)
    with pytest.raises(InvalidInput, match=r"^--since must be before --until$"):
        parse_time_range("1h", "2h", NOW)
    with pytest.raises(InvalidInput, match=r"^--since must be before --until$"):
        parse_time_range("1h", "1h", NOW)
    with pytest.raises(InvalidInput, match="invalid --since"):
        parse_time_range("nope", None, NOW)


def _artefact(type_: str = "CodeCommit", by: str = "Coder", created: int = NOW) -> Artefact:
    ident = new_id()
    return Artefact(
        id=ident,
        logical_id=ident,
        version=1,
        structural_type=StructuralType.STANDARD,
        type=type_,
        payload="x",
        produced_by_role=by,
        created_at_ms=created,
    )


def test_filter_conditions_are_anded() -> None:
    filt = ArtefactFilter(type_glob="Code*", agent="Coder", since_ms=NOW - 10, until_ms=NOW + 10)
    assert filt.is_active
    assert filt.matches(_artefact(), keep_zero_time=False)
    assert not filt.matches(_artefact(type_="GoalDefined"), keep_zero_time=False)
    assert not filt.matches(_artefact(by="coder"), keep_zero_time=False)  # exact, case-sensitive
    assert not filt.matches(_artefact(created=NOW - 11), keep_zero_time=False)
    assert not filt.matches(_artefact(created=NOW + 11), keep_zero_time=False)
    # bounds are inclusive
    assert filt.matches(_artefact(created=NOW - 10), keep_zero_time=False)
    assert filt.matches(_artefact(created=NOW + 10), keep_zero_time=False)


def test_filter_zero_time_artefacts() -> None:
    old = _artefact(created=0)
    timed = ArtefactFilter(since_ms=NOW - 10)
    assert not timed.matches(old, keep_zero_time=False)  # hoard
    assert timed.matches(old, keep_zero_time=True)  # watch
    # without a time bound they always pass
    assert ArtefactFilter(agent="Coder").matches(old, keep_zero_time=False)
    assert not ArtefactFilter().is_active


def test_filter_from_flags_treats_empty_as_unset() -> None:
    filt = ArtefactFilter.from_flags(type_glob="", agent="", since="", until=None, now_ms=NOW)
    assert filt == ArtefactFilter()
    filt = ArtefactFilter.from_flags(type_glob="[", agent=None, since="1h", until=None, now_ms=NOW)
    assert filt.since_ms == NOW - 3_600_000
    assert not filt.matches(_artefact(), keep_zero_time=False)  # a malformed glob matches nothing
