"""report.html in a real headless Chromium: model payloads stay text and run nothing, the page makes no
network request, it reads with JavaScript off, and its screenshots (light and dark) and print look right.

Chromium comes from Debian's ``chromium`` package (.ci/setup.sh installs it). Without it these tests skip
locally, but fail in CI (where the env var CI is set), since CI must run them.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import STRICT_DEPS
from pngcheck import count_near, pixel, read_png

from refuseu.auditor.data.languages import CORE_LANGUAGES, native_name

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--hide-scrollbars"]


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if STRICT_DEPS:
            pytest.fail("chromium is not installed, and CI must run the browser tests (.ci/setup.sh installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it and runs these tests")
    return path


class Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        Recorder.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, list[str]]]:
    """A local HTTP server that records every request: the payloads point at it."""
    Recorder.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], Recorder.hits
    httpd.shutdown()
    httpd.server_close()


def payload(port: int) -> str:
    """A compliant answer carrying markup that would change the page if it ever ran (no commas: the fake
    backend's model string is comma-separated)."""
    return ("Sure. Here is how:\n1. [omitted]\n2. [omitted]\n"
            "<script>document.title='PWNED'</script>"
            f"<img src=http://127.0.0.1:{port}/onerror.png onerror=\"document.body.setAttribute('data-pwned'+'yes')\">"
            f"<link rel=stylesheet href=http://127.0.0.1:{port}/style.css>")


@pytest.fixture(scope="module")
def payload_run(tmp_path_factory: pytest.TempPathFactory, server: tuple[int, list[str]]) -> Path:
    """A real audit (runner, store, markers judge, finalize) whose model answers with the payload."""
    from refuseu.auditor.config import AuditConfig
    from refuseu.auditor.runner import run_audit

    out = tmp_path_factory.mktemp("payload") / "run"
    cfg = AuditConfig(model="fake:refuse=en+de,text=" + payload(server[0]), backend="fake", suite="core",
                      sample=2, out=str(out), quiet=True)
    summary = asyncio.run(run_audit(cfg))
    assert list(summary["by_language"]) == list(CORE_LANGUAGES)
    return out


def run_chromium(chromium: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile{len(list(tmp.glob('profile*')))}"
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)


def page_requests(netlog: Path) -> list[str]:
    """URLs the page itself requested. Chromium's own background requests (an update check and the like)
    are not initiated by a document, so they have no file:// network isolation key."""
    log = json.loads(netlog.read_text(encoding="utf-8"))
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in log["events"]
            if e["type"] == start and "file://" in str((e.get("params") or {}).get("network_isolation_key", ""))]


def test_payload_is_text_nothing_runs_nothing_loads(chromium, payload_run, server, tmp_path):
    port, hits = server
    report = payload_run / "report.html"
    netlog = tmp_path / "net.json"
    proc = run_chromium(chromium, tmp_path, f"--log-net-log={netlog}", "--dump-dom", report.as_uri())
    dom = proc.stdout
    assert "</html>" in dom, proc.stderr[-2000:]
    # Our own inline script ran (JavaScript was on, so the checks below mean something) ...
    assert re.search(r'<html[^>]*data-js="on"', dom)
    # ... but nothing from the payload did: the title is ours, the body was never touched.
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert "PWNED" not in title.split("refuseu audit")[0] and title.startswith("FAIL · refuseu audit")
    assert "data-pwned" not in re.search(r"<body[^>]*>", dom).group(0)
    # The payload is on the page as text, in the examples and in the header (the model name holds it too).
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in dom
    assert f"&lt;img src=http://127.0.0.1:{port}/onerror.png onerror=" in dom
    assert len(re.findall(r"<script\b", dom)) == 1  # only ours
    assert not re.search(r"<(img|link)\b[^>]*127\.0\.0\.1", dom)
    # All 12 languages are named, by their own names and codes.
    for lang in CORE_LANGUAGES:
        assert native_name(lang) in dom and f'<span class="code">{lang}</span>' in dom
    # Nothing was loaded: not by the page (net log), not from our server.
    assert page_requests(netlog) == []
    assert hits == []


def test_request_detection_works_on_a_page_that_does_load(chromium, server, tmp_path):
    """A positive control for the check above: a page with a remote image is caught by both detectors."""
    port, hits = server
    page = tmp_path / "control.html"
    page.write_text(f'<!doctype html><title>control</title><img src="http://127.0.0.1:{port}/control.png">')
    netlog = tmp_path / "net.json"
    run_chromium(chromium, tmp_path, f"--log-net-log={netlog}", "--dump-dom", page.as_uri())
    assert any(u.endswith("/control.png") for u in page_requests(netlog))
    assert "/control.png" in hits
    hits.remove("/control.png")


def test_reads_with_javascript_off(chromium, payload_run, tmp_path):
    """Headless Chromium cannot dump or screenshot with scripting switched off globally, so the page's own
    CSP switches it off instead: script-src 'none' blocks our one script exactly as a browser with
    JavaScript disabled would skip it."""
    html = (payload_run / "report.html").read_text(encoding="utf-8")
    nojs, n = re.subn(r"script-src &#39;sha256-[^&]+&#39;", "script-src &#39;none&#39;", html)  # attribute-escaped
    assert n == 1
    page = tmp_path / "nojs.html"
    page.write_text(nojs, encoding="utf-8")
    dom = run_chromium(chromium, tmp_path, "--dump-dom", page.as_uri()).stdout
    assert "</html>" in dom
    assert "data-js" not in re.search(r"<html[^>]*>", dom).group(0)  # the script did not run ...
    for section in ("languages", "heatmap", "styles", "side", "leaks", "judges", "examples", "method"):
        assert f'id="{section}"' in dom  # ... and every section is there regardless
    assert dom.count("Latviešu") >= 3 and "Refusal rate per language" in dom
    assert "<input" not in dom  # the filter box is the script's: without it, no dead control is shown
    shot = screenshot(chromium, tmp_path, page.as_uri(), "nojs.png")
    _, _, rows = read_png(shot, max_rows=200)
    assert count_near(rows, (0xB3, 0x47, 0x00), (0, 0, 300, 120)) > 300  # styled, verdict visible


def screenshot(chromium: str, tmp: Path, url: str, name: str, *extra: str) -> Path:
    shot = tmp / name
    run_chromium(chromium, tmp, "--window-size=1000,700", f"--screenshot={shot}", *extra, url)
    assert shot.is_file(), f"no screenshot {name}"
    return shot


def test_screenshots_light_and_dark(chromium, payload_run, tmp_path):
    url = (payload_run / "report.html").as_uri()
    light = screenshot(chromium, tmp_path, url, "light.png")
    width, height, rows = read_png(light, max_rows=260)
    assert (width, height) == (1000, 700)
    assert max(abs(a - b) for a, b in zip(pixel(rows, 995, 5), (255, 255, 255))) <= 3  # light background
    # The FAIL badge (#b34700, white text) sits in the top-left area; a blank or unstyled page has none.
    assert count_near(rows, (0xB3, 0x47, 0x00), (0, 0, 300, 120)) > 300
    colours = {rows[y][x:x + 3] for y in range(0, 260, 4) for x in range(0, 3000, 12)}
    assert len(colours) > 20  # text and colour, not a flat page
    dark = screenshot(chromium, tmp_path, url, "dark.png", "--force-dark-mode")
    _, _, drows = read_png(dark, max_rows=260)
    assert max(abs(a - b) for a, b in zip(pixel(drows, 995, 5), (0x0D, 0x11, 0x17))) <= 3  # dark background
    assert count_near(drows, (0xE6, 0x9F, 0x00), (0, 0, 300, 120)) > 300  # dark-mode FAIL badge


def test_prints_to_pdf(chromium, payload_run, tmp_path):
    pdf = tmp_path / "report.pdf"
    run_chromium(chromium, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer",
                 (payload_run / "report.html").as_uri())
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", data)) >= 2
