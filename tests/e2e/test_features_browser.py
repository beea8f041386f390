"""Feature space page in a real browser: the scatter renders with one mark per image, hovering
a point shows its thumbnail, and a click on a point opens that image in the annotator.

Drives Debian's Chromium against `streamlit run app/main.py` on a workspace holding 6 real
X-rays, a tiny trained version, its predictions and its embedding (the job run beforehand).
Each point is one SVG symbol; the test hovers and clicks it with the mouse, where a reader
would.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core import jobs
from core.review.features import read_embedding, submit_embedding
from core.workspace import Workspace

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("torch_one_thread")]

CHART = '[data-testid="stVegaLiteChart"]'

MARKS = f"{CHART} svg g.mark-symbol.role-mark path"  # SVG; legend symbols excluded


def _train_predict_embed(train_and_predict):
    def setup(ws: Workspace) -> None:
        version = train_and_predict(ws)
        done = jobs.run_job(ws, submit_embedding(ws, version, "tester"))
        assert done.state == "succeeded", done.error

    return setup


@pytest.fixture(scope="module")
def prepared(prepared_workspace, train_and_predict) -> Path:
    return prepared_workspace("features_e2e", 6, _train_predict_embed(train_and_predict))


def _marks(page, n: int):
    marks = page.locator(MARKS)
    expect(marks).to_have_count(n, timeout=30_000)
    return marks


def test_the_scatter_renders_and_a_click_opens_the_annotator(
    prepared, workspace_copy, app_server, page, settle, artifacts
):
    ws = workspace_copy(prepared)
    ids = set(read_embedding(ws, 1).image_ids.tolist())
    url = app_server(ws.root)
    page.goto(f"{url}/features")
    settle(page)
    chart = page.locator(CHART)
    expect(chart.locator("svg").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("6 images of version 1")).to_be_visible()
    chart.scroll_into_view_if_needed()
    box = _marks(page, len(ids)).first.bounding_box()
    assert box is not None and box["width"] > 0
    mark = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
    page.screenshot(path=str(artifacts / "features.png"))

    page.mouse.move(mark["x"], mark["y"])
    tooltip = page.locator("#vg-tooltip-element")
    expect(tooltip).to_be_visible(timeout=10_000)
    expect(tooltip).to_contain_text("IMG-")
    expect(tooltip.locator("img")).to_have_attribute("src", re.compile(r"^data:image/png"))
    page.screenshot(path=str(artifacts / "tooltip.png"))

    page.mouse.click(mark["x"], mark["y"])
    page.wait_for_url(re.compile(r"/annotate\?image=\d+"), timeout=30_000)
    settle(page)
    opened = int(re.search(r"image=(\d+)", page.url).group(1))
    assert opened in ids
    expect(page.get_by_role("heading", name=re.compile("Annotate"))).to_be_visible()
    page.screenshot(path=str(artifacts / "annotate.png"))
