"""Which row keeps an address listed twice: the one the state saw first, else file order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hypothesis import given
from hypothesis import strategies as st

from statement_feeds.domain.duplicates import Deduplicator
from statement_feeds.domain.problems import Problem
from statement_feeds.domain.subscribers import Subscriber, parse_subscribers


class RecordedSightings:
    """A :class:`Sightings` from a dict (email key → source → time); now is "9"."""

    def __init__(self, times: dict[str, dict[str, str]], *, record: bool = True) -> None:
        self.times = times
        self.record = record
        self.calls: list[int] = []

    def first_seen(self, pairs: Sequence[tuple[str, str]]) -> Mapping[str, Mapping[str, str]]:
        self.calls.append(len(pairs))
        found = {key: dict(self.times.get(key, {})) for key, _ in pairs}
        for key, source in pairs:
            found[key].setdefault(source, "9")
            if self.record:
                self.times.setdefault(key, {}).setdefault(source, "9")
        return found


def read(dedup: Deduplicator, files: dict[str, str]) -> list[tuple[str, int, str]]:
    """(source, line, name or problem) of everything, in the order it came out."""
    out: list[Subscriber | Problem] = []
    for source, text in files.items():
        out += dedup.filter(parse_subscribers(source, text, "en"), source)
    out += dedup.finish()
    return [(i.source, i.line, i.name if isinstance(i, Subscriber) else i.message) for i in out]


FILES = {
    "a.csv": "email,name\nann@x.org,A\nbob@x.org,Bob\n",
    "b.csv": "email,name\nANN@x.org,B\n",
    "c.csv": "email,name\nann@x.org,C\ncid@x.org,Cid\n",
}


def test_without_sightings_the_first_file_in_order_keeps_the_address() -> None:
    assert read(Deduplicator(sources=list(FILES)), FILES) == [
        ("a.csv", 2, "A"),
        ("a.csv", 3, "Bob"),
        ("b.csv", 2, "duplicate address 'ANN@x.org': already listed at a.csv:2"),
        ("c.csv", 2, "duplicate address 'ann@x.org': already listed at a.csv:2"),
        ("c.csv", 3, "Cid"),
    ]


def test_the_row_seen_first_keeps_it_and_every_loser_names_that_row() -> None:
    # c.csv listed Ann first (time 1), then b.csv (2); a.csv's row is new.
    sightings = RecordedSightings({"ann@x.org": {"c.csv": "1", "b.csv": "2"}})
    dedup = Deduplicator(sightings=sightings, sources=list(FILES))
    assert read(dedup, FILES) == [
        ("a.csv", 3, "Bob"),  # Ann's row of a.csv waits for c.csv, and so does b.csv's
        ("c.csv", 2, "C"),  # ... then the rows it beat:
        ("a.csv", 2, "duplicate address 'ann@x.org': c.csv:2 listed it first"),
        ("b.csv", 2, "duplicate address 'ANN@x.org': c.csv:2 listed it first"),
        ("c.csv", 3, "Cid"),
    ]
    assert len(dedup) == 3
    assert sightings.times["ann@x.org"] == {"c.csv": "1", "b.csv": "2", "a.csv": "9"}


def test_a_row_waiting_for_a_file_that_no_longer_lists_the_address_is_kept() -> None:
    sightings = RecordedSightings({"ann@x.org": {"c.csv": "1", "gone.csv": "0"}}, record=False)
    files = {"a.csv": FILES["a.csv"], "c.csv": "email,name\ncid@x.org,Cid\n"}
    dedup = Deduplicator(sightings=sightings, sources=list(files))
    assert read(dedup, files) == [
        ("a.csv", 3, "Bob"),
        ("c.csv", 2, "Cid"),
        ("a.csv", 2, "A"),  # after c.csv: only then is it known that c.csv dropped Ann
    ]
    assert sightings.times == {"ann@x.org": {"c.csv": "1", "gone.csv": "0"}}  # read only


def test_a_waiting_row_is_released_by_finish_when_its_file_is_not_read() -> None:
    sightings = RecordedSightings({"ann@x.org": {"c.csv": "1"}})
    dedup = Deduplicator(sightings=sightings, sources=["a.csv", "c.csv"])
    out = list(dedup.filter(parse_subscribers("a.csv", FILES["a.csv"], "en"), "a.csv"))
    assert [i.name for i in out if isinstance(i, Subscriber)] == ["Bob"]
    # c.csv could not be read (not UTF-8, say): its rows count as absent.
    assert [i.name for i in dedup.finish() if isinstance(i, Subscriber)] == ["A"]


def test_a_row_kept_earlier_beats_a_waiting_one() -> None:
    # a.csv kept Ann (first seen together with c.csv: file order); b.csv's row waits for
    # c.csv, which saw her before b.csv did, and then loses to a.csv's row.
    sightings = RecordedSightings({"ann@x.org": {"a.csv": "1", "c.csv": "1", "b.csv": "2"}})
    dedup = Deduplicator(sightings=sightings, sources=list(FILES))
    assert [r for r in read(dedup, FILES) if r[2].startswith("duplicate")] == [
        ("c.csv", 2, "duplicate address 'ann@x.org': already listed at a.csv:2"),
        ("b.csv", 2, "duplicate address 'ANN@x.org': already listed at a.csv:2"),
    ]


def test_sightings_are_asked_once_per_batch() -> None:
    sightings = RecordedSightings({})
    dedup = Deduplicator(sightings=sightings, sources=list(FILES), batch=1)
    read(dedup, FILES)
    assert sightings.calls == [1, 1, 1, 1, 1]


_KEYS = st.sampled_from(["a", "b", "c", "d"])
_SOURCES = ["f0.csv", "f1.csv", "f2.csv", "f3.csv"]


@given(
    files=st.lists(st.lists(_KEYS, max_size=4), min_size=1, max_size=4),
    times=st.dictionaries(
        st.tuples(_KEYS, st.sampled_from([*_SOURCES, "gone.csv"])),
        st.sampled_from(["1", "2", "3"]),
    ),
    batch=st.integers(1, 3),
)
def test_the_earliest_seen_row_keeps_every_address_and_each_row_comes_out_once(
    files: list[list[str]], times: dict[tuple[str, str], str], batch: int
) -> None:
    sources = _SOURCES[: len(files)]
    recorded: dict[str, dict[str, str]] = {}
    for (key, source), time in times.items():
        recorded.setdefault(f"{key}@x.org", {})[source] = time
    texts = {
        source: "email,name\n"
        + "".join(f"{key}@x.org,{source}:{n}\n" for n, key in enumerate(rows))
        for source, rows in zip(sources, files, strict=True)
    }
    dedup = Deduplicator(sightings=RecordedSightings(recorded), sources=sources, batch=batch)
    out = read(dedup, texts)

    def rank(source: str, line: int, key: str) -> tuple[str, int, int]:
        return (times.get((key, source), "9"), sources.index(source), line)

    rows = [
        (s, n + 2, k) for s, keys in zip(sources, files, strict=True) for n, k in enumerate(keys)
    ]
    keepers = {k: min((r for r in rows if r[2] == k), key=lambda r: rank(*r)) for _, _, k in rows}
    assert sorted((s, n) for s, n, _ in out) == sorted((s, n) for s, n, _ in rows)
    for source, line, text in out:
        key = files[sources.index(source)][line - 2]
        keeper = keepers[key]
        if (source, line) == keeper[:2]:
            assert text == f"{source}:{line - 2}"
        else:
            assert text.startswith("duplicate") and f"{keeper[0]}:{keeper[1]}" in text
    assert len(dedup) == len(keepers)
