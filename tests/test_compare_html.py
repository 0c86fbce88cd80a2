"""``bench compare --html DIR``: a self-contained page whose first screen gives the verdict
(what regressed, by how much, with p and the rule), then each counted change's rounds and
distributions side by side, the unchanged metrics folded; strings from the results files
are escaped; it opens in headless Chromium without errors."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path
from typing import Any

from bench.cli import main
from tests.test_compare import BASE, gen, slow_asyncio  # noqa: F401  (fixtures)
from tests.test_report import DevToolsPipe, chromium_profile, needs_chromium  # noqa: F401

FIRST_SCREEN = """(() => {
  const v = document.querySelector('#verdict .verdict');
  const box = v ? v.getBoundingClientRect().toJSON() : null;
  const rows = [...document.querySelectorAll('#verdict tbody tr')].map(r => r.textContent);
  return JSON.stringify({verdict: v && v.textContent, box, height: window.innerHeight, rows,
    figures: document.querySelectorAll('#changes figure svg').length,
    unchanged_open: document.querySelector('#unchanged').open});
})()"""


def _page(base: Path, new: Path, out: Path) -> tuple[int, str]:
    status = main(["compare", str(base), str(new), "--html", str(out)])
    return status, (out / "index.html").read_text()


def test_a_regression_is_the_page_s_first_word_with_its_rounds_drawn(
    slow_asyncio: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    status, html = _page(BASE, slow_asyncio, tmp_path / "page")
    assert status == 1
    verdict = re.search(r'<p class="verdict ([a-z]+)">([^<]*)</p>', html)
    assert verdict and verdict.group(1) == "regressed" and "regression" in verdict.group(2)
    assert html.index('id="verdict"') < html.index('id="changes"') < html.index('id="unchanged"')
    table = html[html.index('id="verdict"') : html.index('id="changes"')]
    assert "asyncio-py" in table and "regression" in table and "rule" in table
    changes = html[html.index('id="changes"') : html.index('id="unchanged"')]
    assert changes.count("<svg") >= 2  # rounds, and for a round trip its distribution
    assert "<script" not in html and "http" not in html.split("</style>")[1].split("xmlns")[0]


def test_identical_runs_say_so_and_fold_every_metric(tmp_path: Path) -> None:
    status, html = _page(BASE, BASE, tmp_path / "page")
    assert status == 0
    assert '<p class="verdict clean">0 regressions, 0 improvements' in html
    assert 'id="changes"' not in html
    assert re.search(r"<summary>\d+ metric\(s\) unchanged</summary>", html)


def test_strings_from_the_results_files_are_escaped(tmp_path: Path) -> None:
    data: dict[str, Any] = json.loads((BASE / "results.json").read_text())
    text = json.dumps(data).replace('"asyncio-py"', json.dumps("<b>asyncio-py</b>"))
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / "results.json").write_text(text)
    _, html = _page(hostile, hostile, tmp_path / "page")
    assert "<b>asyncio-py</b>" not in html
    assert "&lt;b&gt;asyncio-py&lt;/b&gt;" in html


@needs_chromium
def test_the_first_screen_shows_the_verdict_in_chromium(
    slow_asyncio: Path,  # noqa: F811
    tmp_path: Path,
    chromium_profile: Path,  # noqa: F811
) -> None:
    _page(BASE, slow_asyncio, tmp_path / "page")
    index = tmp_path / "page" / "index.html"
    tools = DevToolsPipe(chromium_profile)
    try:
        target = tools.call("Target.createTarget", url="about:blank")["targetId"]
        session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            tools.call(f"{domain}.enable", session)
        tools.call(
            "Emulation.setDeviceMetricsOverride",
            session, width=1366, height=768, deviceScaleFactor=1, mobile=False,
        )  # fmt: skip
        tools.call("Page.navigate", session, url=index.resolve().as_uri())
        tools.wait_event("Page.loadEventFired")
        shot = tmp_path / "compare-top.png"
        png = tools.call("Page.captureScreenshot", session, format="png")["data"]
        shot.write_bytes(base64.b64decode(png))
        value = tools.call("Runtime.evaluate", session, expression=FIRST_SCREEN)
        where = json.loads(value["result"]["value"])
        errors = [
            e for e in tools.events
            if e.get("sessionId") == session
            and (e.get("method") == "Runtime.exceptionThrown"
                 or (e.get("method") == "Log.entryAdded"
                     and e["params"]["entry"].get("level") == "error"))
        ]  # fmt: skip
    finally:
        tools.close()
    print(f"\nscreenshot of the comparison's first screen: {shot}", file=sys.stderr)
    assert not errors, errors
    assert where["verdict"].startswith("1 regression") or "regression" in where["verdict"]
    assert where["box"]["bottom"] <= where["height"]  # seen without scrolling
    assert any("asyncio-py" in row and "regression" in row for row in where["rows"])
    assert where["figures"] >= 2
    assert where["unchanged_open"] is False
