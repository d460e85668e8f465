"""The HTTP API of ``elman serve`` (docs/serve.md), with an in-process client: every endpoint,
every limit and every error, batched answers equal to answers alone, and the command itself."""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from elman.cli import main  # noqa: E402
from elman.serve.app import Settings, create_app  # noqa: E402
from elman.serve.views import load_view  # noqa: E402
from elman.tasks.loading import load  # noqa: E402
from elman.tasks.scoring import build_scorer, score_lines  # noqa: E402


@pytest.fixture(scope="module")
def views(toy_models):
    return [load_view(name, str(path)) for name, path in toy_models.items()]


def client(views, **settings) -> TestClient:
    return TestClient(create_app(views, Settings(**settings)), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def api(views):
    with client(views) as c:
        yield c


def error_of(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    message = body["error"]["message"]
    assert message and "\n" not in message
    return message


# --- listing ---------------------------------------------------------------------------------
def test_health_and_the_model_list(api) -> None:
    assert api.get("/api/health").json()["status"] == "ok"
    listed = {m["name"]: m for m in api.get("/api/models").json()["models"]}
    assert listed["kn3"]["kind"] == "ngram" and listed["kn3"]["order"] == 3
    assert listed["kn3"]["abilities"] == ["score", "next"]
    assert listed["lstm"]["abilities"] == ["score", "next", "generate"]
    assert listed["upos"]["abilities"] == ["tag"] and "NOUN" in listed["upos"]["tags"]
    assert listed["de-en"]["abilities"] == ["translate"] and listed["de-en"]["attention"]
    limits = api.get("/api/models").json()["limits"]
    assert limits["max_chars"] == Settings().max_chars
    assert api.get("/openapi.json").json()["info"]["title"] == "elman serve"


# --- language models -------------------------------------------------------------------------
def test_score_equals_elman_score_and_mixes(api, toy_models) -> None:
    text = "the cat sat on the mat"
    body = api.post("/api/score", json={"text": text, "top_k": 4}).json()["results"]
    assert [r["model"] for r in body] == ["kn3", "lstm", "mixture"]
    for r, path in zip(body[:2], (toy_models["kn3"], toy_models["lstm"]), strict=True):
        expected = next(score_lines(build_scorer([str(path)], device="cpu"), [text]))
        assert r["logprob"] == pytest.approx(expected.logprob, rel=1e-6)
        assert r["tokens"] == expected.tokens and r["oovs"] == expected.oovs
        assert r["ppl"] == pytest.approx(expected.ppl, rel=1e-6)
        tokens = r["per_token"]
        assert [t["token"] for t in tokens] == [*text.split(), "</s>"]
        for t in tokens:
            assert t["surprisal"] == pytest.approx(-t["logprob"] / math.log(2))
            probs = [a["prob"] for a in t["top"]]
            assert len(probs) == 4 and probs == sorted(probs, reverse=True) and sum(probs) <= 1
    mixed = body[2]
    assert mixed["weights"] == [0.5, 0.5]
    for t, a, b in zip(mixed["per_token"], body[0]["per_token"], body[1]["per_token"], strict=True):
        p = 0.5 * math.exp(a["logprob"]) + 0.5 * math.exp(b["logprob"])
        assert t["logprob"] == pytest.approx(math.log(p), rel=1e-9)
        assert t["top"][0]["prob"] >= max(a["top"][0]["prob"], b["top"][0]["prob"]) / 2


def test_an_unknown_word_is_marked_and_weights_are_checked(api) -> None:
    body = api.post("/api/score", json={"text": "the zebra", "models": ["lstm"]}).json()
    (only,) = body["results"]
    assert [t["unknown"] for t in only["per_token"]] == [False, True, False]
    assert only["oovs"] == 1
    w = api.post("/api/score", json={"text": "the cat", "weights": [0.9, 0.1]}).json()
    assert w["results"][2]["weights"] == [0.9, 0.1]
    bad = api.post("/api/score", json={"text": "a", "weights": [0.9, 0.2]})
    assert "sum to" in error_of(bad, 422, "invalid")


def test_next_tokens_follow_the_prefix(api) -> None:
    for model in ("kn3", "lstm"):
        r = api.post("/api/next", json={"model": model, "prefix": "the cat", "k": 5}).json()
        assert r["prefix_tokens"] == ["the", "cat"] and len(r["next"]) == 5
        scored = api.post(
            "/api/score", json={"text": "the cat", "models": [model], "top_k": 5}
        ).json()["results"][0]["per_token"][-1]["top"]
        assert [n["token"] for n in r["next"]] == [a["token"] for a in scored]


def test_generate_is_seeded(api, toy_models) -> None:
    ask = {"model": "lstm", "prompt": "the", "tokens": 8, "seed": 3, "temperature": 0.8}
    first, again = (api.post("/api/generate", json=ask).json() for _ in range(2))
    assert first == again and first["text"].startswith("the")
    expected = load(toy_models["lstm"], "cpu").generate("the", 8, temperature=0.8, seed=3)
    assert first["text"] == expected
    fresh = api.post("/api/generate", json={**ask, "seed": None}).json()
    assert isinstance(fresh["seed"], int)
    no = api.post("/api/generate", json={**ask, "model": "kn3"})
    assert "cannot generate" in error_of(no, 404, "not_found")


# --- translation and tagging -----------------------------------------------------------------
def test_translate_gives_the_n_best_and_the_attention(api) -> None:
    ask = {"model": "de-en", "text": "1 2 3 4", "n_best": 3, "beam": 4, "attention": True}
    r = api.post("/api/translate", json=ask).json()
    scores = [t["score"] for t in r["translations"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    best = r["translations"][0]
    attention = np.array(r["attention"])
    assert attention.shape == (len(best["pieces"]), len(r["source_pieces"]))
    assert np.allclose(attention.sum(axis=1), 1.0, atol=1e-5)
    plain = api.post("/api/translate", json={"model": "de-en", "text": "1 2 3 4"}).json()
    assert "attention" not in plain and len(plain["translations"]) == 1
    assert "n_best" in error_of(api.post("/api/translate", json={**ask, "beam": 2}), 422, "invalid")
    assert "nothing to translate" in error_of(
        api.post("/api/translate", json={**ask, "text": "  "}), 400, "bad_request"
    )


def test_tag_gives_distributions_and_marks_unseen_words(api, toy_models) -> None:
    tagger = load(toy_models["upos"], "cpu")
    words = tagger.vocab.words.itos[-3:] + ["qqqzzz"]
    r = api.post("/api/tag", json={"model": "upos", "tokens": words}).json()["tokens"]
    assert [t["word"] for t in r] == words
    assert [t["tag"] for t in r] == tagger.tag([words])[0]
    assert [t["unknown"] for t in r] == [False, False, False, True]
    for t in r:
        assert t["top"][0] == {"tag": t["tag"], "prob": t["prob"]}
    same = api.post("/api/tag", json={"model": "upos", "text": " ".join(words)}).json()["tokens"]
    assert same == r
    both = api.post("/api/tag", json={"model": "upos", "text": "a", "tokens": ["a"]})
    assert "not both" in error_of(both, 422, "invalid")


# --- batching ----------------------------------------------------------------------------------
def test_concurrent_requests_are_batched_and_answered_as_alone(views) -> None:
    app = create_app(views, Settings())
    texts = [" ".join(["the", "cat", "sat"][: 1 + i % 3] + ["on"] * (i % 5)) for i in range(24)]
    tag_words = [["the", "dog"] * (1 + i % 4) for i in range(12)]

    async def run() -> tuple[list, list, list, list]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:

            async def score(t):
                r = await c.post("/api/score", json={"text": t, "models": ["lstm", "kn3"]})
                return r.json()

            async def tag(w):
                return (await c.post("/api/tag", json={"model": "upos", "tokens": w})).json()

            together = await asyncio.gather(*map(score, texts), *map(tag, tag_words))
            alone_scores = [await score(t) for t in texts]
            alone_tags = [await tag(w) for w in tag_words]
        return together[: len(texts)], together[len(texts) :], alone_scores, alone_tags

    batches_before = app.state.server.worker.batches
    scores, tags, alone_scores, alone_tags = asyncio.run(run())
    assert scores == alone_scores  # identical, bit for bit, to each request served alone
    for t, a in zip(tags, alone_tags, strict=True):
        assert [x["tag"] for x in t["tokens"]] == [x["tag"] for x in a["tokens"]]
        for x, y in zip(t["tokens"], a["tokens"], strict=True):
            assert x["prob"] == pytest.approx(y["prob"], abs=1e-6)
    batches = app.state.server.worker.batches - batches_before
    served = 2 * (2 * len(texts)) + 2 * len(tag_words)  # two LMs per score request
    assert batches < served - len(texts)  # requests shared forward passes


# --- limits and errors -----------------------------------------------------------------------
def test_every_limit_answers_with_a_json_error_naming_it(views) -> None:
    with client(views, max_chars=40, max_tokens=6, max_body_bytes=600, max_top_k=5,
                max_generate_tokens=10, max_beam=4) as c:  # fmt: skip
        cases = [
            ("/api/score", {"text": "a" * 41}, 413, "max_chars"),
            ("/api/score", {"text": "a b c d e f g"}, 413, "max_tokens"),
            ("/api/score", {"text": "a", "top_k": 6}, 422, "max_top_k"),
            ("/api/next", {"model": "lstm", "k": 6}, 422, "max_top_k"),
            ("/api/generate", {"model": "lstm", "tokens": 11}, 422, "max_generate_tokens"),
            ("/api/translate", {"model": "de-en", "text": "1", "beam": 5}, 422, "max_beam"),
            ("/api/tag", {"model": "upos", "tokens": ["a"] * 7}, 413, "max_tokens"),
            ("/api/score", {"text": "a " * 300}, 413, "max_body_bytes"),
        ]
        for path, body, status, limit in cases:
            r = c.post(path, json=body)
            assert limit in error_of(r, status, "too_large" if status == 413 else "invalid")
        chunked = c.post(
            "/api/score", content=iter([b'{"text": "', b"a" * 700, b'"}']),
            headers={"content-type": "application/json"},
        )  # fmt: skip
        assert "max_body_bytes" in error_of(chunked, 413, "too_large")


def test_bad_requests_are_json_errors(api) -> None:
    assert "kn9" in error_of(api.post("/api/score", json={"text": "a", "models": ["kn9"]}), 404,
                             "not_found")  # fmt: skip
    assert "cannot tag" in error_of(
        api.post("/api/tag", json={"model": "lstm", "text": "a"}), 404, "not_found"
    )
    assert "path" in error_of(api.post("/api/score", json={"text": "a", "path": "/etc"}), 422,
                              "invalid")  # fmt: skip
    assert "text" in error_of(api.post("/api/score", json={}), 422, "invalid")
    assert "temperature" in error_of(
        api.post("/api/generate", json={"model": "lstm", "temperature": -1}), 422, "invalid"
    )
    json_type = {"content-type": "application/json"}
    broken = api.post("/api/score", content=b"{not json", headers=json_type)
    error_of(broken, 422, "invalid")
    error_of(api.get("/api/nothing"), 404, "not_found")
    error_of(api.get("/api/score"), 405, "bad_request")
    cross = api.get("/api/health", headers={"origin": "http://x"})
    assert "access-control-allow-origin" not in cross.headers  # CORS is off


def test_cors_only_for_the_origins_given(views) -> None:
    with client(views, cors=("http://class.example",)) as c:
        ok = c.get("/api/health", headers={"origin": "http://class.example"})
        assert ok.headers["access-control-allow-origin"] == "http://class.example"
        other = c.get("/api/health", headers={"origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_a_full_queue_answers_503_and_a_slow_request_504(views, monkeypatch) -> None:
    gate = threading.Event()
    lm = next(v for v in views if v.name == "lstm")
    original = lm.generate

    def slow(*args):
        gate.wait(10)
        return original(*args)

    monkeypatch.setattr(lm, "generate", slow)
    app = create_app(views, Settings(max_queue=1, timeout_s=0.3))

    async def run() -> tuple[int, int, dict]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            ask = {"model": "lstm", "tokens": 2, "seed": 1}
            first = asyncio.create_task(c.post("/api/generate", json=ask))
            await asyncio.sleep(0.1)
            second = await c.post("/api/score", json={"text": "a"})
            timed_out = await first
            gate.set()
            await asyncio.sleep(0.2)
            health = (await c.get("/api/health")).json()
        return second, timed_out, health

    second, timed_out, health = asyncio.run(run())
    assert "busy" in error_of(second, 503, "busy")
    assert "time limit" in error_of(timed_out, 504, "timeout")
    assert health["queue"] == 0  # the slots are given back


# --- the page and the results ------------------------------------------------------------------
def test_results_and_plots_are_served_and_nothing_else(views, tmp_path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "ptb-kn5.json").write_text(json.dumps(
        {"recipe": "ptb-kn5", "task": "ngram", "metrics": {"test": {"ppl": 141.2}}}
    ))  # fmt: skip
    (tmp_path / "r" / "broken.json").write_text("{")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "adding.png").write_bytes(b"\x89PNG\r\n")
    (tmp_path / "secret.png").write_bytes(b"\x89PNG\r\n")
    with client(views, results_dir=str(tmp_path / "r"), plots_dir=str(tmp_path / "p")) as c:
        body = c.get("/api/results").json()
        assert [r["recipe"] for r in body["results"]] == ["ptb-kn5"]
        assert body["results"][0]["metrics"]["test"]["ppl"] == 141.2
        assert body["plots"] == ["adding.png"]
        assert c.get("/api/plots/adding.png").content == b"\x89PNG\r\n"
        for name in ("..%2Fsecret.png", "secret.png"):
            assert c.get(f"/api/plots/{name}").status_code == 404
        page = c.get("/")
        if page.status_code == 200:  # the playground's files are installed
            assert "<html" in page.text.lower()


# --- the command -------------------------------------------------------------------------------
def test_a_model_that_fails_to_load_stops_the_server_in_one_line(tmp_path, capsys) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 not a checkpoint")
    for spec, says in ((f"x={tmp_path / 'none'}", "no such file"), (f"b={broken}", "broken.pt"),
                       ("bad name=x", "model name")):  # fmt: skip
        assert main(["serve", spec, "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1 and "Traceback" not in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_elman_serve_answers_over_http(toy_models) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    models = [f"{n}={p}" for n, p in toy_models.items() if n in ("kn3", "lstm")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "elman", "serve", *models, "--port", str(port)],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                with urllib.request.urlopen(base + "/api/health", timeout=1) as r:
                    assert json.load(r)["models"] == 2
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        request = urllib.request.Request(
            base + "/api/score", data=json.dumps({"text": "the cat"}).encode(),
            headers={"content-type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as r:
            assert [x["model"] for x in json.load(r)["results"]] == ["kn3", "lstm", "mixture"]
    finally:
        proc.terminate()
        proc.wait(10)
    assert "serving 2 models at http://127.0.0.1" in (proc.stderr.read() if proc.stderr else "")


def test_model_names_default_to_the_file(tmp_path) -> None:
    from elman.cli.serve import parse_models

    assert parse_models(["runs/ptb-small-lstm/", "kn=x.arpa", "m/kn5.arpa"]) == [
        ("ptb-small-lstm", "runs/ptb-small-lstm/"), ("kn", "x.arpa"), ("kn5", "m/kn5.arpa")
    ]  # fmt: skip
    assert Path("x").name == "x"


def test_a_probability_of_zero_is_written_null() -> None:
    from elman.serve.app import sentence_json
    from elman.serve.views import ScoredSentence, ScoredToken

    zero = ScoredSentence([ScoredToken("a", -math.inf, False), ScoredToken("</s>", -1.0, False)])
    body = sentence_json("m", zero)
    assert body["logprob"] is None and body["per_token"][0]["surprisal"] is None
    json.dumps(body, allow_nan=False)  # what the response writes
