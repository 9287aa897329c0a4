"""rl.market.download download: checksum-verified, resumable archive downloads (HTTP mocked with responses)."""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
import requests
import responses

from rl.errors import ChecksumMismatch, NotPublished
from rl.market.archive import load_archive
from rl.market.download import archive_url, download, download_month, main, month_range

BASE = "https://data.binance.vision"
LAYOUT = Path("binance/futures/um/monthly/klines/FILUSDT/1m")


def zip_bytes(month: str, bars: int = 30) -> bytes:
    """A real-shaped archive zip: one CSV with Binance's header and 1m rows."""
    import pandas as pd

    t0 = int(pd.Timestamp(f"{month}-01", tz="UTC").value // 1_000_000)
    lines = ["open_time,open,high,low,close,volume,close_time,quote_volume,count,"
             "taker_buy_volume,taker_buy_quote_volume,ignore"]
    for i in range(bars):
        t = t0 + i * 60_000
        lines.append(f"{t},3.2,3.3,3.1,3.25,100.0,{t + 59_999},325.0,7,50.0,162.5,0")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"FILUSDT-1m-{month}.csv", "\n".join(lines) + "\n")
    return buf.getvalue()


def publish(month: str, body: bytes, checksum_of: bytes | None = None) -> str:
    url = archive_url(BASE, "FILUSDT", "1m", month)
    digest = hashlib.sha256(checksum_of if checksum_of is not None else body).hexdigest()
    responses.get(url + ".CHECKSUM", body=f"{digest}  FILUSDT-1m-{month}.zip\n")
    responses.get(url, body=body)
    return url


def test_month_range_and_url():
    assert month_range("2023-11", "2024-02") == ["2023-11", "2023-12", "2024-01", "2024-02"]
    with pytest.raises(ValueError, match="--from='2023-13' is invalid"):
        month_range("2023-13", "2024-01")
    with pytest.raises(ValueError, match="must not be after"):
        month_range("2024-02", "2024-01")
    assert archive_url(BASE, "BTCUSDT", "1m", "2024-01") == (
        "https://data.binance.vision/data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip")


@responses.activate
def test_download_verifies_places_and_skips_on_rerun(tmp_path):
    bodies = {m: zip_bytes(m) for m in ("2023-09", "2023-10")}
    for m, b in bodies.items():
        publish(m, b)
    done, failed = download("filusdt", "1m", "2023-09", "2023-10", tmp_path, BASE, out=lambda s: None)
    assert failed == [] and [r.status for r in done] == ["downloaded", "downloaded"]
    for m, b in bodies.items():
        target = tmp_path / LAYOUT / f"FILUSDT-1m-{m}.zip"
        assert target.read_bytes() == b
        assert (tmp_path / LAYOUT / f"FILUSDT-1m-{m}.zip.CHECKSUM").is_file()
        assert not (tmp_path / LAYOUT / f"FILUSDT-1m-{m}.zip.part").exists()
    data = load_archive(tmp_path, symbol="FILUSDT")                  # the loader finds them
    assert len(data.frame) == 60 and data.frame["close"].iloc[0] == 3.25

    calls = len(responses.calls)
    done, failed = download("FILUSDT", "1m", "2023-09", "2023-10", tmp_path, BASE, out=lambda s: None)
    assert [r.status for r in done] == ["skipped", "skipped"] and failed == []
    assert len(responses.calls) == calls                             # verified offline


@responses.activate
def test_partial_download_resumes_with_range(tmp_path):
    body = zip_bytes("2023-11", bars=200)
    cut = len(body) // 3
    url = archive_url(BASE, "FILUSDT", "1m", "2023-11")
    responses.get(url + ".CHECKSUM",
                  body=f"{hashlib.sha256(body).hexdigest()}  FILUSDT-1m-2023-11.zip\n")
    seen = []

    def ranged(request):
        seen.append(request.headers.get("Range"))
        start = int(request.headers["Range"].split("=")[1].rstrip("-"))
        return 206, {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}, body[start:]

    responses.add_callback(responses.GET, url, callback=ranged)
    part = tmp_path / LAYOUT / "FILUSDT-1m-2023-11.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(body[:cut])
    result = download_month(requests.Session(), "FILUSDT", "1m", "2023-11", tmp_path, BASE)
    assert result.status == "resumed" and seen == [f"bytes={cut}-"]
    assert result.path.read_bytes() == body and not part.exists()


@responses.activate
def test_server_ignoring_range_restarts_cleanly(tmp_path):
    body = zip_bytes("2023-11")
    publish("2023-11", body)
    part = tmp_path / LAYOUT / "FILUSDT-1m-2023-11.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes from another file")
    result = download_month(requests.Session(), "FILUSDT", "1m", "2023-11", tmp_path, BASE)
    assert result.status == "downloaded" and result.path.read_bytes() == body


@responses.activate
def test_checksum_mismatch_keeps_nothing(tmp_path):
    publish("2023-09", zip_bytes("2023-09"), checksum_of=b"something else")
    with pytest.raises(ChecksumMismatch, match="sha256 mismatch for FILUSDT-1m-2023-09.zip.*not kept"):
        download_month(requests.Session(), "FILUSDT", "1m", "2023-09", tmp_path, BASE)
    folder = tmp_path / LAYOUT
    assert not (folder / "FILUSDT-1m-2023-09.zip").exists()
    assert not (folder / "FILUSDT-1m-2023-09.zip.part").exists()


@responses.activate
def test_corrupt_existing_file_is_replaced(tmp_path):
    body = zip_bytes("2023-09")
    publish("2023-09", body)
    target = tmp_path / LAYOUT / "FILUSDT-1m-2023-09.zip"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    result = download_month(requests.Session(), "FILUSDT", "1m", "2023-09", tmp_path, BASE)
    assert result.status == "downloaded" and target.read_bytes() == body


@responses.activate
def test_unpublished_month_is_a_clear_error_and_others_still_download(tmp_path, capsys):
    publish("2023-09", zip_bytes("2023-09"))
    missing = archive_url(BASE, "FILUSDT", "1m", "2023-10")
    responses.get(missing + ".CHECKSUM", status=404, body="<Error><Code>NoSuchKey</Code></Error>")
    with pytest.raises(NotPublished, match="FILUSDT 1m 2023-10 is not published: HTTP 404"):
        download_month(requests.Session(), "FILUSDT", "1m", "2023-10", tmp_path, BASE)
    code = main(["download", "--symbol", "FILUSDT", "--interval", "1m", "--from", "2023-09",
                 "--to", "2023-10", "--dest", str(tmp_path), "--base-url", BASE])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED" in out and "2023-10 is not published" in out and "1 failed" in out
    assert (tmp_path / LAYOUT / "FILUSDT-1m-2023-09.zip").is_file()


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    assert main(["download", "--symbol", "FILUSDT", "--from", "2023-9", "--to", "2023-10",
                 "--dest", str(tmp_path)]) == 2
    assert "--from='2023-9' is invalid" in capsys.readouterr().err
    assert main(["download", "--symbol", "FIL/USDT", "--from", "2023-09", "--to", "2023-10",
                 "--dest", str(tmp_path)]) == 2
    assert "--symbol='FIL/USDT' is invalid" in capsys.readouterr().err
    assert main(["download", "--symbol", "FILUSDT", "--interval", "1x", "--from", "2023-09",
                 "--to", "2023-10", "--dest", str(tmp_path)]) == 2
    assert "--interval='1x' is invalid" in capsys.readouterr().err


@responses.activate
def test_network_failure_is_reported_and_rerun_resumes(tmp_path):
    url = archive_url(BASE, "FILUSDT", "1m", "2023-09")
    responses.get(url + ".CHECKSUM", body=requests.exceptions.ConnectionError("no route to host"))
    done, failed = download("FILUSDT", "1m", "2023-09", "2023-09", tmp_path, BASE, out=lambda s: None)
    assert done == [] and len(failed) == 1
    assert "unreachable" in str(failed[0]) and "run the same command again" in str(failed[0])
