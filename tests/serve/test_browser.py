"""The playground page in a real browser: ``elman serve`` over tiny models, driven by Chromium.

The server runs in a thread (uvicorn on a free port); Playwright drives the system's Chromium
(``$ELMAN_CHROMIUM`` or ``chromium`` on PATH: Playwright cannot download a browser here).
Without Playwright or Chromium every test is skipped, saying which is missing.

The page is checked against the API it calls, not against golden numbers: the perplexity
shown is the one the API returns, the heat map has one cell per (target, source) piece pair.
``ELMAN_SCREENSHOTS=1`` also saves docs/img/playground.png and docs/img/playground-translate.png.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (elman[dev])")
uvicorn = pytest.importorskip("uvicorn", reason="needs the serve extra (elman[serve])")

from elman.serve.app import Settings, create_app  # noqa: E402
from elman.serve.views import load_view  # noqa: E402

CHROMIUM = os.environ.get("ELMAN_CHROMIUM") or shutil.which("chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no Chromium: apt-get install chromium, or set ELMAN_CHROMIUM"
    ),
]

REPO = Path(__file__).resolve().parents[2]
SENTENCE = "the cat sat on zorblax mat"  # zorblax: unknown to both LMs


@pytest.fixture(scope="module")
def server(toy_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of ``elman serve``'s app over the toy models, one results record and one plot."""
    results = tmp_path_factory.mktemp("results")
    record = {"recipe": "toy-lm", "task": "lm", "dataset": "toy", "metrics": {"test": {"ppl": 9.5}}}
    (results / "toy-lm.json").write_text(json.dumps(record))
    shutil.copy(REPO / "docs" / "img" / "adding.png", results / "adding.png")
    views = [load_view(name, str(path)) for name, path in toy_models.items()]
    settings = Settings(results_dir=str(results), plots_dir=str(results))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # a free port, held until uvicorn takes it over
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(views, settings), log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as pw:
        # --no-sandbox: Chromium refuses to run as root (containers, CI) with its sandbox on
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: sync_api.Browser, server: str) -> Iterator[sync_api.Page]:
    """The playground, its models listed; any uncaught script error fails the test."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(server)
    page.wait_for_selector("body[data-ready]")
    yield page
    page.close()
    assert not errors, errors


def screenshot(page: sync_api.Page, name: str) -> None:
    if os.environ.get("ELMAN_SCREENSHOTS") == "1":
        page.screenshot(path=str(REPO / "docs" / "img" / name), full_page=True)


def api(page: sync_api.Page, path: str, body: dict | None = None) -> dict:
    """What the API itself answers (the page's own requests are not intercepted)."""
    url = urljoin(page.url, path)
    answer = page.request.get(url) if body is None else page.request.post(url, data=body)
    return answer.json()


def score(page: sync_api.Page, text: str) -> None:
    page.fill("#lm-input", text)
    page.press("#lm-input", "Enter")  # Enter submits


def test_each_lm_and_their_mixture_colour_every_token_and_show_the_api_perplexity(page):
    score(page, SENTENCE)
    cards = page.locator(".card")
    sync_api.expect(cards).to_have_count(3)
    answer = api(page, "api/score", {"text": SENTENCE, "top_k": 5})
    assert [r["model"] for r in answer["results"]] == ["kn3", "lstm", "mixture"]
    for result in answer["results"]:
        name = result["model"]
        shown = float(page.locator(f"[id='lm-ppl-{name}']").inner_text())
        assert shown == pytest.approx(result["ppl"], rel=1e-3)
        tokens = page.locator(f".card[data-model='{name}'] .token")
        assert tokens.all_inner_texts() == [*SENTENCE.split(), "</s>"]
        colours = {t.evaluate("t => getComputedStyle(t).backgroundColor") for t in tokens.all()}
        assert "rgba(0, 0, 0, 0)" not in colours and len(colours) > 1
        unknown = page.locator(f".card[data-model='{name}'] .token.unknown")
        assert unknown.all_inner_texts() == ["zorblax"]
    sync_api.expect(page.locator("#lm-legend")).to_be_visible()


def test_a_token_shows_its_top_five_on_hover_and_on_keyboard_focus(page):
    score(page, SENTENCE)
    token = page.locator(".card[data-model='lstm'] .token").nth(1)
    tip = page.locator("#tooltip")
    token.hover()
    sync_api.expect(tip).to_be_visible()
    sync_api.expect(tip.locator(".top li")).to_have_count(5)
    sync_api.expect(tip).to_contain_text("cat")
    screenshot(page, "playground.png")
    page.mouse.move(0, 0)
    sync_api.expect(tip).to_be_hidden()
    token.focus()
    sync_api.expect(tip).to_be_visible()
    assert token.get_attribute("aria-describedby") == "tooltip"
    page.keyboard.press("Escape")
    sync_api.expect(tip).to_be_hidden()


def test_sampling_with_a_seed_repeats_itself(page):
    assert page.locator("#gen-model option").all_inner_texts() == ["lstm"]  # the ARPA cannot
    page.fill("#gen-prompt", "the cat")
    page.fill("#gen-seed", "7")
    texts = []
    for _ in range(2):
        page.click("#gen-submit")
        sync_api.expect(page.locator("#gen-output strong")).to_have_text("the cat")
        page.wait_for_function("!document.querySelector('#gen-submit').disabled")
        texts.append(page.inner_text("#gen-output"))
    assert texts[0] == texts[1] and len(texts[0].split()) > 2


def test_translation_shows_the_n_best_list_and_an_attention_cell_per_piece_pair(page):
    page.click("#tab-translate")
    page.fill("#tr-input", "1 2 3 4")
    page.press("#tr-input", "Enter")
    sync_api.expect(page.locator("#tr-heatmap svg")).to_be_visible()
    body = {"model": "de-en", "text": "1 2 3 4", "beam": 5, "n_best": 5, "attention": True}
    answer = api(page, "api/translate", body)
    items = page.locator("#tr-nbest-list li")
    assert items.locator(".text").all_inner_texts() == [t["text"] for t in answer["translations"]]
    rows, cols = len(answer["translations"][0]["pieces"]), len(answer["source_pieces"])
    sync_api.expect(page.locator("#tr-heatmap rect.cell")).to_have_count(rows * cols)
    labels = page.locator("#tr-heatmap text").evaluate_all("ns => ns.map(n => n.textContent)")
    assert labels == answer["source_pieces"] + answer["translations"][0]["pieces"]
    screenshot(page, "playground-translate.png")


def test_tagging_shows_a_tag_and_probability_per_word_and_marks_unseen_words(page):
    tags = api(page, "api/models")["models"][2]["tags"]
    page.click("#tab-tag")
    page.fill("#tag-input", "the big zorblax sat .")
    page.press("#tag-input", "Enter")
    words = page.locator(".tagged-word")
    sync_api.expect(words).to_have_count(5)
    assert set(words.locator(".tag").all_inner_texts()) <= set(tags)
    assert page.locator("#tag-output .word.unseen").all_inner_texts() == ["zorblax"]
    for bar in words.locator(".bar span").all():
        assert 0 < bar.evaluate("b => b.getBoundingClientRect().width")
    sync_api.expect(page.locator("#tag-legend")).to_contain_text("unseen in training")


def test_results_tab_shows_the_table_and_the_plots(page):
    page.click("#tab-results")
    sync_api.expect(page.locator("#results-table tbody tr")).to_have_count(1)
    cells = page.locator("#results-table tbody td").all_inner_texts()
    assert cells == ["toy-lm", "lm", "toy", "ppl 9.50"]
    img = page.locator("#plots img")
    sync_api.expect(img).to_have_attribute("src", "api/plots/adding.png")
    page.wait_for_function("document.querySelector('#plots img').naturalWidth > 0")


def test_api_and_network_errors_are_shown_and_cleared_by_the_next_success(page):
    limit = api(page, "api/models")["limits"]["max_chars"]
    error = page.locator("#error")
    score(page, "a " * limit)
    sync_api.expect(error).to_be_visible()
    sync_api.expect(error).to_have_attribute("role", "alert")
    sync_api.expect(error).to_contain_text("max_chars")
    score(page, SENTENCE)
    sync_api.expect(error).to_be_hidden()
    page.click("#tab-tag")
    page.fill("#tag-input", "")
    page.press("#tag-input", "Enter")  # no words: 422
    sync_api.expect(error).to_contain_text("invalid")
    page.route("**/api/score", lambda route: route.abort())
    page.click("#tab-lm")
    score(page, SENTENCE)
    sync_api.expect(error).to_contain_text("Network error")
    sync_api.expect(page.locator(".card")).to_have_count(3)  # the last result stays


def test_a_view_no_loaded_model_can_serve_says_so(browser, server):
    page = browser.new_page()
    lm = {"name": "kn3", "kind": "ngram", "level": "word", "abilities": ["score", "next"]}
    listing = json.dumps({"models": [lm], "limits": {}})
    fake = {"body": listing, "content_type": "application/json"}
    page.route("**/api/models", lambda route: route.fulfill(**fake))
    page.goto(server + "#translate")
    page.wait_for_selector("body[data-ready]")
    sync_api.expect(page.locator("#view-translate .unavailable")).to_be_visible()
    sync_api.expect(page.locator("#tr-submit")).to_be_disabled()
    sync_api.expect(page.locator("#gen-submit")).to_be_disabled()
    sync_api.expect(page.locator("#lm-submit")).to_be_enabled()
    page.close()


def test_nothing_overflows_sideways_on_a_375px_phone(page):
    page.set_viewport_size({"width": 375, "height": 740})
    width = "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    score(page, SENTENCE + " and a much longer sentence to wrap over several lines")
    sync_api.expect(page.locator(".card")).to_have_count(3)
    page.locator(".card .token").last.hover()  # the tooltip stays inside the screen too
    scroll, client = page.evaluate(width)
    assert scroll <= client == 375
    views = (("translate", "#tr-input", "#tr-heatmap svg"), ("tag", "#tag-input", ".tagged-word"),
             ("results", None, "#plots img"))  # fmt: skip
    for tab, field, ready in views:
        page.click(f"#tab-{tab}")
        if field:
            page.press(field, "Enter")
        page.wait_for_selector(ready)
        scroll, client = page.evaluate(width)
        assert scroll <= client, tab
