"""Ingest of event logs and item catalogues: formats, detection, bad rows, dedupe."""

import json
import time
from datetime import datetime, timezone

import pytest

from edgerec.errors import InputError
from edgerec.ingest import IngestReport, ingest_events, ingest_items
from edgerec.store import Store, snapshots

pytestmark = pytest.mark.runtime


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "s.db")
    yield s
    s.close()


@pytest.fixture
def not_utc(monkeypatch):
    """A local time zone far from UTC, so that "naive means UTC" is actually tested."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def events(store):
    """All events as sorted (user, item, event, weight, ts) tuples."""
    a = snapshots.events_array(store)
    ts = [None if t != t else float(t) for t in a["ts"]]  # NaN means no timestamp
    return sorted(zip(a["user_id"], a["item_id"], a["event"], a["weight"].tolist(), ts))


def metadata(store, item_id):
    row = store.db.execute("SELECT metadata FROM items WHERE item_id = ?", [item_id]).fetchone()
    return json.loads(row[0])


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc).timestamp()


# -- event formats --------------------------------------------------------------------------


def test_movielens_u_data(store, tmp_path):
    path = write(tmp_path, "u.data", "196\t242\t3\t881250949\n186\t302\t4\t891717742\n")
    report = ingest_events(store, path)
    assert (report.format, report.rows, report.added, report.duplicates) == ("movielens", 2, 2, 0)
    assert events(store) == [("186", "302", "rating", 4.0, 891717742.0),
                             ("196", "242", "rating", 3.0, 881250949.0)]


def test_movielens_ratings_dat(store, tmp_path):
    path = write(tmp_path, "ratings.dat", "1::1193::5::978300760\r\n2::661::3::978302109\r\n")
    report = ingest_events(store, path)
    assert (report.format, report.added) == ("movielens", 2)
    assert events(store) == [("1", "1193", "rating", 5.0, 978300760.0),
                             ("2", "661", "rating", 3.0, 978302109.0)]


def test_movielens_ratings_csv_guesses_columns(store, tmp_path):
    path = write(tmp_path, "ratings.csv",
                 "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n")
    report = ingest_events(store, path)
    assert (report.format, report.rows, report.added) == ("csv", 2, 2)
    assert events(store) == [("1", "1029", "rating", 3.0, 1260759179.0),
                             ("1", "31", "rating", 2.5, 1260759144.0)]


def test_generic_csv_with_column_options(store, tmp_path, not_utc):
    path = write(tmp_path, "log.csv",
                 "who,what,when,how_much,kind,note\n"
                 'a,x1,2024-01-02T03:04:05,2,click,"hello, world"\n'
                 "b,x2,2024-01-02 03:04:05+01:00,0.5,,\n")
    report = ingest_events(store, path, user_col="who", item_col="WHAT", time_col="when",
                           weight_col="how_much", event_col="kind", default_event="view")
    assert (report.format, report.added, report.malformed) == ("csv", 2, [])
    assert events(store) == [("a", "x1", "click", 2.0, utc(2024, 1, 2, 3, 4, 5)),
                             ("b", "x2", "view", 0.5, utc(2024, 1, 2, 2, 4, 5))]


def test_generic_csv_defaults_to_interaction_without_rating_column(store, tmp_path):
    path = write(tmp_path, "plays.csv", "customer_id,SKU,plays\nc1,s1,7\nc2,s2,\n")
    ingest_events(store, path)
    assert events(store) == [("c1", "s1", "interaction", 7.0, None),
                             ("c2", "s2", "interaction", 1.0, None)]


def test_tsv_with_header_and_event_column(store, tmp_path):
    path = write(tmp_path, "events.tsv",
                 "user_id\titem_id\tevent_type\tts\nu1\ti1\tpurchase\t1700000000000\n")
    report = ingest_events(store, path)
    assert report.format == "tsv"
    # 1.7e12 is beyond 1e11, so it is read as milliseconds.
    assert events(store) == [("u1", "i1", "purchase", 1.0, 1700000000.0)]


def test_jsonl_iso_and_millisecond_timestamps(store, tmp_path, not_utc):
    lines = [
        {"user": 7, "item": "a", "time": "2024-03-01T12:00:00Z", "rating": 4},
        {"user": "7", "item": 8.0, "time": "2024-03-01T12:00:00", "rating": "5"},
        {"user": "8", "item": "b", "time": 1709294400123},
        {"user": "8", "item": "c", "time": "2024-03-01T14:00:00+02:00"},
    ]
    path = write(tmp_path, "e.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    report = ingest_events(store, path)
    noon = utc(2024, 3, 1, 12)
    assert (report.format, report.added, report.malformed) == ("jsonl", 4, [])
    assert events(store) == [("7", "8", "rating", 5.0, noon),
                             ("7", "a", "rating", 4.0, noon),
                             ("8", "b", "rating", 1.0, pytest.approx(1709294400.123)),
                             ("8", "c", "rating", 1.0, noon)]


@pytest.mark.parametrize("name, text, fmt, expected", [
    ("ratings.txt", "1\t2\t3\t100\n", "auto", "movielens"),      # numeric tabs, no header
    ("dump", "1::2::3::100\n", "auto", "movielens"),
    ("events.log", '{"user_id": "1", "item_id": "2"}\n', "auto", "jsonl"),
    ("events.ndjson", '{"user_id": "1", "item_id": "2"}\n', "auto", "jsonl"),
    ("export", "user_id\titem_id\n1\t2\n", "auto", "tsv"),
    ("export", "user_id,item_id\n1,2\n", "auto", "csv"),
    ("whatever.csv", "1::2::3::100\n", "movielens", "movielens"),  # explicit: content decides
    ("r.csv", "userId,movieId,rating,timestamp\n1,2,3,100\n", "movielens", "movielens"),
])
def test_format_detection(store, tmp_path, name, text, fmt, expected):
    report = ingest_events(store, write(tmp_path, name, text), format=fmt)
    assert (report.format, report.added) == (expected, 1)
    assert store.history("1") == ["2"]


def test_unknown_format_is_an_input_error(store, tmp_path):
    path = write(tmp_path, "a.csv", "user,item\n1,2\n")
    with pytest.raises(InputError, match="unknown format 'xml'"):
        ingest_events(store, path, format="xml")


# -- bad rows ---------------------------------------------------------------------------------


def test_malformed_rows_are_reported_with_line_and_field(store, tmp_path):
    path = write(tmp_path, "bad.csv",
                 "user,item,rating,ts\n"        # line 1
                 "u1,i1,5,100\n"                # 2 ok
                 "\n"                           # 3 blank: skipped silently
                 "u2,i2,5,abc\n"                # 4 bad timestamp
                 ",i3,5,100\n"                  # 5 missing user
                 "u4,,5,100\n"                  # 6 missing item
                 "u5,i5,lots,100\n"             # 7 bad weight
                 "u6,i6,inf,100\n"              # 8 non-finite weight
                 "u7,i7,5\n"                    # 9 too few fields
                 'u8,"i8\nstill i8",5,200\n'    # 10-11 quoted newline: one record, ok
                 "u9,i9,5,100\n"                # 12 ok
                 "u10,i10,5,1e400\n")           # 13 infinite timestamp
    report = ingest_events(store, path)
    assert report.rows == 10
    assert report.added == 3
    assert report.duplicates == 0
    assert report.malformed == [
        (4, "bad timestamp 'abc' in column 'ts'"),
        (5, "missing user id in column 'user'"),
        (6, "missing item id in column 'item'"),
        (7, "bad weight 'lots' in column 'rating'"),
        (8, "bad weight 'inf' (not finite, or beyond +-1e+09) in column 'rating'"),
        (9, "wrong number of fields: expected 4, found 3"),
        (13, "bad timestamp '1e400' in column 'ts' (outside 1970-01-01..2100-01-01)"),
    ]
    assert store.history("u9") == ["i9"]
    summary = report.summary()
    assert "\n" not in summary
    assert summary.startswith(f"{path} (csv): 10 rows, 3 added, 0 duplicates, 7 malformed (")
    assert "line 4: bad timestamp 'abc' in column 'ts'" in summary
    assert "line 9" not in summary and summary.endswith("...first 5 shown)")


def test_malformed_json_lines(store, tmp_path):
    path = write(tmp_path, "e.jsonl",
                 '{"user_id": "u", "item_id": "i"}\n'
                 "{not json\n"
                 "\n"
                 "[1, 2]\n"
                 '{"user_id": "u", "item_id": {"nested": 1}}\n'
                 '{"user_id": "v", "item_id": "j", "ts": true}\n')
    report = ingest_events(store, path)
    assert report.added == 1
    assert [n for n, _ in report.malformed] == [2, 4, 5, 6]
    reasons = [r for _, r in report.malformed]
    assert reasons[0].startswith("invalid JSON (")
    assert reasons[1:] == ["not a JSON object", "bad item id {'nested': 1} (not a string or an integer) in column 'item_id'",
                           "bad timestamp True in column 'ts'"]


def test_strict_mode_raises_and_writes_nothing(store, tmp_path):
    good = write(tmp_path, "good.csv", "user,item\nold,1\n")
    ingest_events(store, good)
    before = store.summary()["events"]
    assert before == 1
    bad = write(tmp_path, "bad.csv", "user,item,ts\nu,1,10\nu,2,20\nu,3,oops\nu,4,40\n")
    with pytest.raises(InputError) as info:
        ingest_events(store, bad, strict=True)
    assert str(info.value) == f"{bad}, line 4: bad timestamp 'oops' in column 'ts'"
    assert store.summary()["events"] == before
    assert store.history("u") == []


def test_strict_mode_on_an_empty_store(store, tmp_path):
    bad = write(tmp_path, "u.data", "1\t2\t3\t4\n1\t2\t3\n")
    with pytest.raises(InputError, match=r"line 2: wrong number of fields"):
        ingest_events(store, bad, strict=True)
    assert store.summary()["events"] == 0


def test_reingest_adds_nothing_and_reports_duplicates(store, tmp_path):
    path = write(tmp_path, "r.csv", "user,item,ts\na,1,10\na,2,20\nb,1,\nb,1,\n")
    first = ingest_events(store, path)
    assert (first.rows, first.added, first.duplicates) == (4, 3, 1)  # b,1 without ts twice
    again = ingest_events(store, path)
    assert (again.rows, again.added, again.duplicates, again.malformed) == (4, 0, 4, [])
    assert store.summary()["events"] == 3


def test_history_newest_first(store, tmp_path):
    path = write(tmp_path, "h.csv", "user,item,timestamp\nu,mid,200\nu,old,100\nu,new,300\n")
    ingest_events(store, path)
    assert store.history("u") == ["new", "mid", "old"]


def test_rows_are_streamed_into_one_write(tmp_path, monkeypatch):
    """25M-line files must not be collected into a list before the write: the one write
    starts receiving rows before the reader has reached the file's end (a strict ingest's
    bad last line is only found while the write consumes the rows), and nothing lands."""
    s = Store.open(tmp_path / "s.db")
    received, calls = [], []
    original = s.add_events

    def spy(rows):
        calls.append(rows)

        def watched():
            for row in rows:
                received.append(row)
                yield row
        return original(watched())

    monkeypatch.setattr(s, "add_events", spy)
    good = "".join(f"1\t{i}\t3\t{i}\n" for i in range(1, 200))
    with pytest.raises(InputError, match="line 200: wrong number of fields"):
        ingest_events(s, write(tmp_path, "u.data", good + "1\t2\t3\n"), strict=True)
    assert len(calls) == 1 and len(received) == 199  # the good rows went to the one write first
    assert s.summary()["events"] == 0
    report = ingest_events(s, write(tmp_path, "ok.data", good))
    assert report.added == 199 and len(received) == 2 * 199
    s.close()


# -- file and column errors -----------------------------------------------------------------


def test_missing_required_column_names_file_and_columns(store, tmp_path):
    path = write(tmp_path, "x.csv", "person,thing\n1,2\n")
    with pytest.raises(InputError) as info:
        ingest_events(store, path)
    message = str(info.value)
    assert str(path) in message and "user column" in message and "person, thing" in message
    assert "\n" not in message


def test_header_less_file_given_as_csv_gets_a_hint(store, tmp_path):
    path = write(tmp_path, "r.tsv", "1\t2\t3\t4\n")
    with pytest.raises(InputError, match="looks like data"):
        ingest_events(store, path)


def test_named_column_that_does_not_exist(store, tmp_path):
    path = write(tmp_path, "x.csv", "user,item\n1,2\n")
    with pytest.raises(InputError, match=r"no column 'when' for the time \(columns: user, item\)"):
        ingest_events(store, path, time_col="when")


@pytest.mark.parametrize("make, expected", [
    (lambda p: p / "nope.csv", "cannot read file"),
    (lambda p: p, "cannot read file"),                                   # a directory
    (lambda p: write(p, "z.csv", ""), "file is empty"),
    (lambda p: write(p, "z.csv", "\n\n"), "file is empty"),
    (lambda p: write(p, "z.csv.gz", "\x1f\x8b\x08\x00\x00"), "not a text file"),
])
def test_unreadable_files(store, tmp_path, make, expected):
    path = make(tmp_path)
    with pytest.raises(InputError) as info:
        ingest_events(store, path)
    assert expected in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_utf8_bom_and_latin1_are_read(store, tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes("user,item\n".encode("utf-8") + "jos\u00e9,caf\u00e9\n".encode("latin-1"))
    assert ingest_events(store, path).added == 1
    assert store.history("jos\u00e9") == ["caf\u00e9"]
    bom = write(tmp_path, "u.data", "\ufeff196\t242\t3\t881250949\n")
    assert ingest_events(store, bom).added == 1
    assert store.history("196") == ["242"]


# -- item catalogues ------------------------------------------------------------------------


U_ITEM = (
    "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)"
    "|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
    "2|Cit\u00e9 des enfants perdus, La (1995)|01-Jan-1995|||0|0|0|0|0|0|0|0|1|0|0|0|0|0|0"
    "|1|0|0|0\n"
    '3|"Quoted" Title (1996)||||0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n'
)


def test_movielens_u_item_latin1(store, tmp_path):
    path = write(tmp_path, "u.item", U_ITEM, encoding="latin-1")
    report = ingest_items(store, path)
    assert (report.format, report.rows, report.added, report.malformed) == ("movielens", 3, 3, [])
    assert store.item_titles(["1", "2", "3"]) == {
        "1": "Toy Story (1995)", "2": "Cit\u00e9 des enfants perdus, La (1995)",
        "3": '"Quoted" Title (1996)'}
    assert metadata(store, "1") == {
        "categories": ["Animation", "Children's", "Comedy"], "release_date": "01-Jan-1995",
        "url": "http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)"}
    assert metadata(store, "2") == {"categories": ["Drama", "Sci-Fi"],
                                    "release_date": "01-Jan-1995"}
    assert metadata(store, "3") == {"categories": []}


def test_movielens_movies_csv_and_dat(store, tmp_path):
    csv_path = write(tmp_path, "movies.csv",
                     "movieId,title,genres\n"
                     '11,"American President, The (1995)",Comedy|Drama|Romance\n'
                     "12,Nameless (2020),(no genres listed)\n")
    dat_path = write(tmp_path, "movies.dat", "21::Get Shorty (1995)::Action|Comedy|Drama\n")
    assert ingest_items(store, csv_path).added == 2
    assert ingest_items(store, dat_path).format == "movielens"
    assert store.item_titles(["11", "12", "21"]) == {
        "11": "American President, The (1995)", "12": "Nameless (2020)",
        "21": "Get Shorty (1995)"}
    assert metadata(store, "11") == {"categories": ["Comedy", "Drama", "Romance"]}
    assert metadata(store, "12") == {"categories": []}
    assert metadata(store, "21") == {"categories": ["Action", "Comedy", "Drama"]}


def test_generic_item_catalogues(store, tmp_path):
    csv_path = write(tmp_path, "items.csv",
                     "sku,name,price,category,empty\nA1,Mug,4.50,\"kitchen, gifts\",\n,NoId,1,x,\n")
    report = ingest_items(store, csv_path)
    assert (report.added, report.malformed) == (1, [(3, "missing item id in column 'sku'")])
    assert metadata(store, "A1") == {"price": "4.50", "categories": ["kitchen", "gifts"]}
    jsonl_path = write(tmp_path, "items.jsonl",
                       '{"id": 5, "title": "Lamp", "price": 9.5, "tags": ["a"], "genres": "x|y"}\n'
                       '{"id": "6", "stock": null, "new": true}\n')
    ingest_items(store, jsonl_path, id_col="id", title_col="title")
    assert store.item_titles(["A1", "5", "6"]) == {"A1": "Mug", "5": "Lamp"}
    assert metadata(store, "5") == {"price": 9.5, "tags": ["a"], "categories": ["x", "y"]}
    assert metadata(store, "6") == {"new": True, "categories": []}


def test_item_catalogue_updates_in_place(store, tmp_path):
    ingest_items(store, write(tmp_path, "a.csv", "id,title\n1,Old\n"))
    report = ingest_items(store, write(tmp_path, "b.csv", "id,title\n1,New\n"))
    assert (report.added, report.duplicates) == (1, 0)
    assert store.item_titles(["1"]) == {"1": "New"}
    assert store.summary()["catalogue_items"] == 1


def test_report_summary_without_malformed():
    report = IngestReport("r.csv", "csv", 3, 2, 1, [])
    assert report.summary() == "r.csv (csv): 3 rows, 2 added, 1 duplicates, 0 malformed"
