"""Every source yields the canonical schema; malformed files are rejected, named and quarantined."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from atft_dagster.landing import land_days, next_days_to_land
from atft_dagster.sources import FileRejected, JQuantsSource, LandingFileSource, SyntheticSource
from atft_dagster.sources.jquants import JQuantsError, RetryPolicy
from atft_dagster.sources.schema import (
    QUOTE_COLUMNS,
    DailyQuotes,
    IndexBars,
    SectorMaster,
    TradingCalendar,
    validate,
)
from atft_dagster_tests.jquants_fake import recorded_client

D1, D2, D3 = date(2024, 6, 27), date(2024, 6, 28), date(2024, 7, 1)


def _canonical(source, start, end):
    q = source.daily_quotes(start, end)
    assert tuple(q.columns) == QUOTE_COLUMNS
    validate(q, DailyQuotes)
    validate(source.sector_master(end), SectorMaster)
    validate(source.topix(start, end), IndexBars)
    validate(source.calendar(start, end), TradingCalendar)
    return q


# ---- synthetic ---------------------------------------------------------------------------------
def test_synthetic_source_is_canonical(small_config):
    src = SyntheticSource(small_config)
    days = src.history_days()
    q = _canonical(src, days[0], days[-1])
    assert q["date"].n_unique() == len(days)


def test_synthetic_source_serves_days_past_its_history(small_config):
    src = SyntheticSource(small_config)
    last = src.history_days()[-1]
    later = src.daily_quotes(date(last.year + 1, 1, 1), date(last.year + 1, 1, 31))
    assert later.height > 0 and later["date"].min() > last


# ---- J-Quants (recorded responses, no network) -------------------------------------------------
def _jq(failures=None):
    client, adapter = recorded_client(failures)
    return JQuantsSource(client=client, retry=RetryPolicy(sleep=lambda s: None)), adapter


def test_jquants_source_is_canonical_and_pages():
    src, adapter = _jq()
    q = _canonical(src, D1, D3)
    bars = [r.url for r in adapter.requests if "/equities/bars/daily" in r.url]
    assert (
        len(bars) == 6
    )  # one query per session (the API takes the whole market only by date), two pages each
    assert all("date=" in u for u in bars) and not any("from=" in u for u in bars)
    assert set(q["code"]) == {"7203", "6758"}  # 5-char codes -> 4; the no-trade row of 130A0 is dropped
    split = q.filter((pl.col("code") == "6758") & (pl.col("date") == D2))
    assert split["adj_factor"].item() == pytest.approx(0.2)
    assert all("x-api-key" in r.headers for r in adapter.requests)


def test_jquants_master_history_becomes_intervals():
    src, _ = _jq()
    m = src.sector_master(date(2024, 7, 1)).filter(pl.col("code") == "6758").sort("valid_from")
    assert m["sector33_code"].to_list() == ["3650", "5250"]
    assert m["valid_to"][0] == m["valid_from"][1] and m["valid_to"][1] is None
    assert m["sector17_code"].to_list() == ["9", "10"]


def test_jquants_calendar_uses_holdiv():
    src, _ = _jq()
    cal = src.calendar(D1, date(2024, 7, 1))
    assert cal.filter("is_trading_day")["date"].to_list() == [D1, D2, D3]


@pytest.mark.parametrize("failures", [[429], [503, 500], ["timeout"]])
def test_jquants_retries_with_backoff(failures):
    client, adapter = recorded_client(failures)
    sleeps: list[float] = []
    src = JQuantsSource(client=client, retry=RetryPolicy(sleep=sleeps.append, base_delay_s=0.5, jitter=0.0))
    assert src.topix(D1, D3).height == 3
    assert sleeps == [0.5 * 2**k for k in range(len(failures))]


def test_jquants_gives_up_and_never_shows_the_key():
    client, _ = recorded_client([429] * 5)
    src = JQuantsSource(client=client, retry=RetryPolicy(attempts=3, sleep=lambda s: None))
    with pytest.raises(JQuantsError, match="HTTP 429") as err:
        src.topix(D1, D3)
    assert "test-key-not-real" not in str(err.value)


def test_jquants_client_error_is_not_retried():
    client, adapter = recorded_client([401])
    with pytest.raises(JQuantsError, match="HTTP 401"):
        JQuantsSource(client=client, retry=RetryPolicy(sleep=lambda s: None)).topix(D1, D3)
    assert len(adapter.requests) == 1


def test_jquants_adjusted_returns_match_point_in_time_adjustment():
    from atft_dagster.sources.base import adjust_point_in_time

    src, _ = _jq()
    pit = adjust_point_in_time(src.daily_quotes(D1, D3)).filter(pl.col("code") == "6758").sort("date")
    r = (pit["adj_close"] / pit["adj_close"].shift(1) - 1).drop_nulls().to_list()
    assert r == pytest.approx([2650 / 2620 - 1, 2690 / 2650 - 1])  # AdjC series of the recorded response


# ---- landing files ---------------------------------------------------------------------------
@pytest.fixture()
def landed(tmp_path, small_config) -> tuple[LandingFileSource, SyntheticSource, list[date]]:
    syn = SyntheticSource(small_config)
    days = next_days_to_land(syn, tmp_path, 3)
    land_days(syn, tmp_path, days)
    return LandingFileSource(tmp_path), syn, days


def test_landed_jquants_files_round_trip(landed):
    files, syn, days = landed
    q = _canonical(files, days[0], days[-1])
    expected = syn.daily_quotes(days[0], days[-1]).with_columns(
        pl.lit(None, pl.Float64).alias("shares_outstanding")
    )
    assert q.equals(expected.select(q.columns))
    assert days[0] > syn.history_days()[-1]


def test_shift_jis_files_are_decoded(landed, tmp_path):
    files, syn, days = landed
    master = next(tmp_path.glob("equity_master_*.csv"))
    frame = pl.read_csv(master, infer_schema=False)
    frame = frame.with_columns(pl.lit("トヨタ自動車").alias("CoName"))
    if "CoNameEn" in frame.columns:
        frame = frame.drop("CoNameEn")
    master.write_bytes(frame.write_csv().encode("cp932"))
    with pytest.raises(UnicodeDecodeError):
        master.read_bytes().decode("utf-8")
    landed_master = files.check(master)
    assert set(landed_master.frame["name"].to_list()) == {"トヨタ自動車"}
    q = _canonical(files, days[0], days[-1])  # the quotes beside it still read
    assert q.height > 0


def test_land_continues_after_the_last_landed_day(landed, tmp_path):
    _, syn, days = landed
    assert next_days_to_land(syn, tmp_path, 1)[0] > days[-1]


def test_kaggle_layout(tmp_path):
    prices = pl.DataFrame(
        {
            "RowId": ["a", "b", "c", "d"],
            "Date": ["2021-12-06", "2021-12-07", "2021-12-06", "2021-12-07"],
            "SecuritiesCode": [1301, 1301, 7203, 7203],
            "Open": [100.0, 51.0, 2000.0, 2010.0],
            "High": [102.0, 52.0, 2020.0, 2030.0],
            "Low": [99.0, 50.0, 1990.0, 2000.0],
            "Close": [101.0, 51.5, 2010.0, 2020.0],
            "Volume": [1000, 2100, 5000, 5100],
            "AdjustmentFactor": [0.5, 1.0, 1.0, 1.0],
            "ExpectedDividend": [None, None, None, None],
            "SupervisionFlag": [False] * 4,
            "Target": [0.01, 0.0, 0.0, 0.0],
        }
    )
    prices.write_csv(tmp_path / "stock_prices.csv")
    pl.DataFrame(
        {
            "SecuritiesCode": [1301, 7203],
            "EffectiveDate": [20211230, 20211230],
            "Name": ["KYOKUYO", "TOYOTA"],
            "NewMarketSegment": ["Prime Market", "Prime Market"],
            "33SectorCode": ["50", "3700"],
            "17SectorCode": ["1", "6"],
        }
    ).write_csv(tmp_path / "stock_list.csv")
    src = LandingFileSource(tmp_path)
    q = src.daily_quotes(date(2021, 12, 6), date(2021, 12, 7))
    assert set(q["code"]) == {"1301", "7203"}
    assert "Target" not in q.columns  # the label never enters
    # Kaggle puts the factor on the last pre-split row; canonical (J-Quants) on the ex-date
    f = q.filter(pl.col("code") == "1301").sort("date")["adj_factor"].to_list()
    assert f == [1.0, 0.5]
    m = src.sector_master(date(2022, 1, 1))
    assert m.filter(pl.col("code") == "1301")["sector33_code"].item() == "0050"


# ---- malformed files: error names file, line, column; quarantined; nothing ingested ----------
GOOD = {
    "Date": ["2024-06-27", "2024-06-27", "2024-06-28"],
    "Code": ["72030", "67580", "72030"],
    "O": ["3050", "2600", "3070"],
    "H": ["3080", "2640", "3100"],
    "L": ["3020", "2580", "3040"],
    "C": ["3070", "2620", "3090"],
    "Vo": ["100", "200", "300"],
    "Va": ["300000", "520000", "900000"],
    "AdjFactor": ["1", "1", "1"],
}


def _write(tmp_path: Path, name: str, **changes) -> Path:
    data = {k: list(v) for k, v in GOOD.items()}
    for col, (row, value) in changes.items():
        data[col][row] = value
    path = tmp_path / name
    pl.DataFrame(data).write_csv(path)
    return path


@pytest.mark.parametrize(
    ("changes", "drop", "line", "column", "text"),
    [
        ({}, "Vo", None, "Vo", "required column is missing"),
        ({"C": (1, "abc")}, None, 3, "C", "cannot parse as float"),
        ({"C": (2, "-5")}, None, 4, "C", "greater_than(0)"),
        ({"H": (0, "3000")}, None, 2, None, "high >= low"),
        ({"Date": (1, "2024-13-45")}, None, 3, "Date", "cannot parse as date"),
        ({"Date": (2, "2024-06-27")}, None, 2, None, "multiple_fields_uniqueness"),
        ({"Date": (0, "2024-06-29")}, None, 2, "Date", "not an XTKS trading day"),
        ({"C": (1, "inf")}, None, 3, "C", "not a finite number"),
        ({"O": (2, "1e300"), "H": (2, "1e300")}, None, 4, "O", "price above the bound"),
        ({"AdjFactor": (2, "")}, None, 4, "AdjFactor", "cut short"),
        ({"L": (0, ""), "C": (0, "")}, None, 2, "L", "row incomplete (missing L, C)"),
    ],
    ids=[
        "missing-column",
        "wrong-type",
        "non-positive-price",
        "high-below-low",
        "bad-date",
        "duplicate-key",
        "holiday",
        "infinite-price",
        "absurd-price",
        "cut-short-adjfactor",
        "cut-short-prices",
    ],
)
def test_malformed_quotes_file_is_rejected_and_quarantined(tmp_path, changes, drop, line, column, text):
    path = _write(tmp_path, "daily_quotes_bad.csv", **changes)
    if drop:
        pl.read_csv(path).drop(drop).write_csv(path)
    src = LandingFileSource(tmp_path)
    with pytest.raises(FileRejected) as err:
        src.daily_quotes(date(2024, 6, 27), date(2024, 6, 28))
    msg = str(err.value)
    assert "daily_quotes_bad.csv" in msg and text in msg
    if line is not None:
        assert f"line {line}" in msg
    if column is not None:
        assert f"column '{column}'" in msg
    assert not path.exists(), "the bad file left the landing directory"
    moved = tmp_path / "_quarantine" / "daily_quotes_bad.csv"
    assert moved.exists()
    assert text in (tmp_path / "_quarantine" / "daily_quotes_bad.csv.reason.txt").read_text()
    with pytest.raises(FileNotFoundError):  # nothing from it is ingested
        src.daily_quotes(date(2024, 6, 27), date(2024, 6, 28))


def test_unknown_sector_code_is_rejected(tmp_path):
    pl.DataFrame(
        {"Date": ["2024-06-03"], "Code": ["72030"], "S17": ["6"], "S33": ["3701"], "Mkt": ["0111"]}
    ).write_csv(tmp_path / "equity_master_x.csv")
    with pytest.raises(
        FileRejected, match=r"equity_master_x.csv: line 2, column 'S33': unknown TSE sector33 code"
    ):
        LandingFileSource(tmp_path).sector_master(date(2024, 7, 1))
    assert (tmp_path / "_quarantine" / "equity_master_x.csv.reason.txt").exists()


def test_unrecognised_file_layout(tmp_path):
    pl.DataFrame({"foo": [1]}).write_csv(tmp_path / "mystery.csv")
    with pytest.raises(FileRejected, match="unrecognised layout"):
        LandingFileSource(tmp_path).daily_quotes(D1, D3)


def test_parquet_rows_are_named_zero_based(tmp_path):
    data = {k: list(v) for k, v in GOOD.items()}
    data["L"][1] = "0"
    pl.DataFrame(data).write_parquet(tmp_path / "bars.parquet")
    with pytest.raises(FileRejected, match=r"bars.parquet: row 1, column 'L'"):
        LandingFileSource(tmp_path).daily_quotes(D1, D3)


def test_a_preferred_share_keeps_its_five_digit_code(tmp_path):
    """25930 (common) and 25935 (preferred) on one day are two stocks, not a duplicate; common stock
    keeps its 4-digit local code, as in the JPX/Kaggle layout."""
    pl.DataFrame({**GOOD, "Code": ["25930", "25935", "25930"]}).write_csv(tmp_path / "bars.csv")
    quotes = LandingFileSource(tmp_path).daily_quotes(D1, D3)
    assert sorted(quotes.filter(pl.col("date") == D1)["code"].to_list()) == ["2593", "25935"]


def test_duplicates_across_files_are_refused(tmp_path):
    _write(tmp_path, "a.csv")
    _write(tmp_path, "b.csv")
    with pytest.raises(ValueError, match="duplicate"):
        LandingFileSource(tmp_path).daily_quotes(D1, D3)


def test_quarantine_is_safe_when_another_process_moved_the_file_first(tmp_path):
    from atft_dagster.sources.files import FileRejected, quarantine

    bad = tmp_path / "daily_quotes_x.csv"
    bad.write_text("Date,Code\n")
    first = quarantine(bad, tmp_path / "_q", "reason one")
    assert first == tmp_path / "_q" / "daily_quotes_x.csv" and first.exists()
    assert quarantine(bad, tmp_path / "_q", "reason two") is None  # the loser of the race
    bad.write_text("again\n")  # same name lands again: kept beside the first, not over it
    second = quarantine(bad, tmp_path / "_q", "reason three")
    assert second != first and second.exists() and first.exists()
    assert "another process" in str(FileRejected(bad, "r", None))


def test_a_line_cut_mid_row_and_a_future_session_are_quarantined(tmp_path):
    from atft_dagster.sources.files import QuoteLimits

    path = _write(tmp_path, "daily_quotes_cut.csv")
    text = path.read_text().rstrip("\n")
    path.write_text(text[: text.rindex(",", 0, len(text) - 8)] + "\n")  # the last line loses its tail
    with pytest.raises(FileRejected, match=r"line 4.*cut short"):
        LandingFileSource(tmp_path).daily_quotes(date(2024, 6, 27), date(2024, 6, 28))
    future = _write(tmp_path, "daily_quotes_future.csv")
    src = LandingFileSource(tmp_path, limits=QuoteLimits(not_after=date(2024, 6, 27)))
    with pytest.raises(FileRejected, match=r"line 4, column 'Date': session after 2024-06-27"):
        src.daily_quotes(date(2024, 6, 27), date(2024, 6, 28))
    assert not future.exists()
    assert LandingFileSource(tmp_path).files() == []  # both quarantined


def test_every_codes_first_master_interval_is_open_to_the_past():
    from atft_dagster.sources.layouts import FIRST_INTERVAL_START, snapshots_to_intervals

    snaps = pl.DataFrame(
        {
            "snapshot": [date(2020, 1, 6), date(2021, 1, 4), date(2020, 1, 6), date(2020, 6, 1)],
            "code": ["1301", "1301", "7203", "9999"],
            "name": ["A", "A", "T", "N"],
            "sector33_code": ["0050", "0050", "3700", "9050"],
            "market_segment": ["Prime", "Standard", "Prime", "Prime"],
        }
    )
    iv = snapshots_to_intervals(snaps).sort("code", "valid_from")
    firsts = iv.group_by("code").agg(pl.col("valid_from").min())
    assert set(firsts["valid_from"].to_list()) == {FIRST_INTERVAL_START}  # the first code too
    a = iv.filter(pl.col("code") == "1301")
    assert a["valid_from"].to_list() == [FIRST_INTERVAL_START, date(2021, 1, 4)]
    assert a["valid_to"].to_list() == [date(2021, 1, 4), None]


# ---- J-Quants against a real HTTP server on 127.0.0.1 (the client's own HTTP stack runs) ---------
def _served(server, **retry) -> tuple[JQuantsSource, list[float]]:
    sleeps: list[float] = []
    policy = RetryPolicy(sleep=sleeps.append, **{"jitter": 0.0, **retry})
    return JQuantsSource.from_api_key("test-key-not-real", base_url=server.base_url, retry=policy), sleeps


def test_the_real_client_pages_and_parses_over_http():
    from atft_dagster_tests.jquants_server import FakeJQuants

    with FakeJQuants() as server:
        src, _ = _served(server)
        q = src.daily_quotes(D1, D3)
        assert set(q["code"]) == {"7203", "6758"}
        assert server.paths.count("/v2/equities/bars/daily") == 6  # 3 sessions x 2 pages over the wire
        assert src.topix(D1, D3).height == 3


@pytest.mark.parametrize("status", [429, 500, 503])
def test_persistent_server_errors_go_through_our_backoff_only(status):
    from atft_dagster_tests.jquants_server import FakeJQuants

    with FakeJQuants([status] * 10) as server:
        src, sleeps = _served(server, attempts=4, base_delay_s=0.5)
        with pytest.raises(JQuantsError, match=f"TOPIX bars {D1}..{D3} failed with HTTP {status}"):
            src.topix(D1, D3)
        assert len(server.paths) == 4  # one request per attempt: the library adds no retries of its own
        assert sleeps == [0.5, 1.0, 2.0]
    # the same holds for the real API's https: the library mounts a 3-retry urllib3 adapter there
    session = src.client._request_session()
    assert session.get_adapter("https://api.jquants.com/v2").max_retries.total == 0


def test_retry_after_is_honoured_and_jitter_stays_bounded():
    from atft_dagster_tests.jquants_server import FakeJQuants

    with FakeJQuants([(429, 7)]) as server:
        src, sleeps = _served(server, base_delay_s=0.5)
        assert src.topix(D1, D3).height == 3
        assert sleeps == [7.0] and len(server.paths) == 2
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0, jitter=0.5)
    waits = [policy.delay(a) for a in range(1, 8) for _ in range(20)]
    assert all(w <= 5.0 for w in waits) and len({round(w, 6) for w in waits}) > 5
    assert policy.delay(1, retry_after=60.0) == 5.0  # capped


@pytest.mark.parametrize(
    ("fault", "call", "message"),
    [
        ("bad-json", "topix", "/indices/bars/daily/topix .*not JSON"),
        ("empty", "topix", f"TOPIX bars {D1}..{D3}: no rows returned"),
        ("empty", "calendar", "market calendar .*no Date/HolDiv rows"),
        ("loop", "daily_quotes", "pagination_key 'same' repeated"),
    ],
)
def test_malformed_responses_are_clear_errors(fault, call, message):
    from atft_dagster_tests.jquants_server import FakeJQuants

    with FakeJQuants([fault]) as server:
        src, _ = _served(server)
        with pytest.raises(JQuantsError, match=message):
            getattr(src, call)(D1, D3)
        assert len(server.paths) <= 3  # neither retried nor followed for ever


def test_a_long_history_shows_a_bar_over_its_sessions(capsys):
    from atft_dagster_tests.jquants_server import FakeJQuants

    with FakeJQuants() as server:
        src = JQuantsSource.from_api_key("k", base_url=server.base_url, progress=True, workers=2)
        assert src.daily_quotes(D1, D3).height > 0
    err = capsys.readouterr().err
    assert "J-Quants daily bars: 100%" in err and "3/3" in err


def test_pagination_has_a_page_limit():
    from atft_dagster_tests.jquants_server import FakeJQuants

    with FakeJQuants() as server:
        src = JQuantsSource.from_api_key("k", base_url=server.base_url, max_pages=1)
        with pytest.raises(JQuantsError, match="more than 1 pages"):
            src.daily_quotes(D1, D3)
