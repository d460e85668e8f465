"""The ASGI application of ``elman serve``: the JSON API (docs/serve.md) and the playground.

    from elman.serve.app import Settings, create_app
    from elman.serve.views import load_view

    app = create_app([load_view("kn5", "runs/ptb-kn5.arpa")], Settings())
    # uvicorn.run(app)  — or any ASGI server; tests use httpx / starlette's TestClient

Requests name models by the names given at the start and never a file, a module or a pickle.
Every limit of :class:`Settings` answers with a JSON error naming the limit
(``{"error": {"code", "message"}}``), and so does every other failure.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from elman.errors import ElmanError
from elman.serve.batching import Busy, ModelWorker, TimedOut
from elman.serve.views import (
    LanguageModelView,
    ScoredSentence,
    TaggerView,
    TranslatorView,
    View,
    mixture,
)

STATIC = Path(__file__).resolve().parent / "static"


@dataclass(frozen=True)
class Settings:
    """The server's limits (each a ``elman serve`` option) and where the results table is."""

    max_body_bytes: int = 65_536  # a request's JSON body
    max_chars: int = 2_000  # characters of text per request
    max_tokens: int = 200  # tokens (words, characters or pieces) per request
    max_generate_tokens: int = 200
    max_beam: int = 20
    max_top_k: int = 50
    timeout_s: float = 30.0  # per request
    max_queue: int = 64  # requests admitted at once (waiting or running); more: 503
    max_batch: int = 32  # requests in one forward pass
    results_dir: str | None = None  # the results/ folder shown by GET /api/results
    plots_dir: str | None = None  # its plots (PNG)
    cors: tuple[str, ...] = ()  # origins allowed to call the API from a browser; none: off

    def limits(self) -> dict[str, float]:
        keep = ("max_body_bytes", "max_chars", "max_tokens", "max_generate_tokens", "max_beam",
                "max_top_k", "timeout_s", "max_queue")  # fmt: skip
        return {k: v for k, v in asdict(self).items() if k in keep}


class ApiError(Exception):
    """An answer other than 200: its status, code and one-line message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


# --- requests --------------------------------------------------------------------------------
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoreRequest(Strict):
    text: str
    models: list[str] | None = None
    mix: bool = True
    weights: list[float] | None = None
    top_k: int = Field(5, ge=0)


class NextRequest(Strict):
    model: str
    prefix: str = ""
    k: int = Field(10, ge=1)


class GenerateRequest(Strict):
    model: str
    prompt: str = ""
    tokens: int = Field(30, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=100.0)
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)


class TranslateRequest(Strict):
    model: str
    text: str
    beam: int | None = Field(None, ge=1)
    n_best: int = Field(1, ge=1)
    attention: bool = False


class TagRequest(Strict):
    model: str
    text: str | None = None
    tokens: list[str] | None = None
    top_k: int = Field(3, ge=1)


# --- the body-size limit ---------------------------------------------------------------------
class BodyLimit:
    """Refuse a body over ``limit`` bytes with 413 before the app reads it (also when it comes
    without a Content-Length, in chunks)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = (
            f"the request body is over the limit of {self.limit} bytes (max_body_bytes); "
            "send less text"
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await error(413, "too_large", message)(scope, receive, send)
                return
        # Read the whole body here (at most limit + one chunk), then hand it on: the app never
        # sees a body over the limit, whatever its transfer encoding.
        chunks, seen, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                await self.app(scope, receive, send)  # a disconnect: nothing to limit
                return
            chunks.append(msg.get("body", b""))
            seen += len(chunks[-1])
            more = msg.get("more_body", False)
            if seen > self.limit:
                await error(413, "too_large", message)(scope, receive, send)
                return
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


# --- the application -------------------------------------------------------------------------
class Server:
    """What the endpoints share: the models by name, the limits and the model thread."""

    def __init__(self, views: Sequence[View], settings: Settings) -> None:
        self.models = {v.name: v for v in views}
        self.settings = settings
        self.worker = ModelWorker(
            max_queue=settings.max_queue, timeout_s=settings.timeout_s,
            max_batch=settings.max_batch,
        )  # fmt: skip
        self.started = time.monotonic()

    def view(self, name: str, ability: str) -> Any:
        """The model ``name`` if it can do ``ability`` (404 otherwise)."""
        if name not in self.models:
            known = ", ".join(self.models) or "none"
            raise ApiError(404, "not_found", f"model {name!r}: no such model (loaded: {known})")
        v = self.models[name]
        if ability not in v.abilities:
            raise ApiError(
                404, "not_found", f"model {name!r} is a {v.kind} model; it cannot {ability}"
            )
        return v

    def check_text(self, text: str, field: str = "text") -> None:
        if len(text) > self.settings.max_chars:
            raise ApiError(
                413, "too_large",
                f"{field}: {len(text)} characters, over the limit of {self.settings.max_chars} "
                "(max_chars)",
            )  # fmt: skip

    def check_tokens(self, count: int, field: str = "text") -> None:
        if count > self.settings.max_tokens:
            raise ApiError(
                413, "too_large",
                f"{field}: {count} tokens, over the limit of {self.settings.max_tokens} "
                "(max_tokens)",
            )  # fmt: skip

    @staticmethod
    def check_range(field: str, value: int, high: int, limit: str) -> None:
        if value > high:
            raise ApiError(
                422, "invalid", f"{field}: {value} is over the limit of {high} ({limit})"
            )

    def language_models(self, names: list[str] | None) -> list[LanguageModelView]:
        """The LMs a score request names (default: every word-level LM)."""
        if names is None:
            names = [
                n
                for n, v in self.models.items()
                if isinstance(v, LanguageModelView) and v.level == "word"
            ]
            if not names:
                raise ApiError(404, "not_found", "no word-level language model is loaded")
        if len(set(names)) != len(names):
            raise ApiError(422, "invalid", "models: a model is named twice")
        return [self.view(n, "score") for n in names]


def check_weights(weights: list[float] | None, models: int) -> None:
    if weights is None:
        return
    if len(weights) != models or not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ApiError(422, "invalid", f"weights: give {models} numbers ≥ 0, one per model")
    if abs(sum(weights) - 1) > 1e-6:
        raise ApiError(422, "invalid", f"weights: they sum to {sum(weights):g}, not 1")


def create_app(views: Sequence[View], settings: Settings | None = None) -> FastAPI:
    """The API over ``views`` (loaded by :func:`elman.serve.views.load_view`) and the page."""
    server = Server(views, settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        server.worker.close()

    app = FastAPI(
        lifespan=lifespan,
        title="elman serve",
        description="Language models, taggers and translators of elman over HTTP (docs/serve.md).",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.server = server
    add_error_handlers(app)
    add_lm_routes(app, server)
    add_task_routes(app, server)
    add_page_routes(app, server.settings)
    if server.settings.cors:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(server.settings.cors),
            allow_methods=["GET", "POST"], allow_headers=["content-type"],
        )  # fmt: skip
    app.add_middleware(BodyLimit, limit=server.settings.max_body_bytes)
    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every failure is ``{"error": {"code", "message"}}`` with its status."""

    async def api_error(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, ApiError)
        return error(err.status, err.code, err.message)

    async def invalid(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, RequestValidationError)
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return error(422, "invalid", f"{where}: {first.get('msg', 'invalid')}")

    async def http(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, StarletteHTTPException)
        code = "not_found" if err.status_code == 404 else "bad_request"
        return error(err.status_code, code, str(err.detail))

    async def known(request: Request, err: Exception) -> JSONResponse:
        status, code = {Busy: (503, "busy"), TimedOut: (504, "timeout")}.get(
            type(err), (400, "bad_request")
        )
        return error(status, code, str(err))

    async def internal(request: Request, err: Exception) -> JSONResponse:
        return error(500, "internal", f"{type(err).__name__}: {err}".splitlines()[0])

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http)
    for kind in (ElmanError, Busy, TimedOut):
        app.add_exception_handler(kind, known)
    app.add_exception_handler(Exception, internal)


def add_lm_routes(app: FastAPI, server: Server) -> None:
    """Health, the model list, and the language models' questions."""
    worker, settings = server.worker, server.settings

    @app.get("/api/health")
    async def health() -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "models": len(server.models),
                "queue": worker.admitted,
                "uptime_s": round(time.monotonic() - server.started, 1),
            }
        )

    @app.get("/api/models")
    async def list_models() -> JSONResponse:
        described = [v.describe() for v in server.models.values()]
        return JSONResponse({"models": described, "limits": settings.limits()})

    @app.post("/api/score")
    async def score(req: ScoreRequest) -> JSONResponse:
        server.check_text(req.text)
        server.check_range("top_k", req.top_k, settings.max_top_k, "max_top_k")
        lms = server.language_models(req.models)
        for lm in lms:
            server.check_tokens(len(lm.tokens(req.text)) + 1)
        mix = req.mix and len(lms) > 1
        check_weights(req.weights, len(lms))
        if mix and len({lm.level for lm in lms}) > 1:
            raise ApiError(422, "invalid", "models: word and character models cannot be mixed")
        results: list[ScoredSentence] = []
        for lm in lms:
            key = (lm.name, f"score/{req.top_k}/{mix}")
            ask = partial(score_batch, lm, req.top_k, mix)
            results.append(await worker.batched(key, ask, req.text))
        answer = [sentence_json(lm.name, s) for lm, s in zip(lms, results, strict=True)]
        if mix:
            w = req.weights or [1.0 / len(lms)] * len(lms)
            mixed = await worker.run(mixture, lms, results, w, req.top_k)
            answer.append({**sentence_json("mixture", mixed), "weights": w})
        return JSONResponse({"results": answer})

    @app.post("/api/next")
    async def next_tokens(req: NextRequest) -> JSONResponse:
        lm = server.view(req.model, "next")
        server.check_text(req.prefix, "prefix")
        server.check_range("k", req.k, settings.max_top_k, "max_top_k")
        server.check_tokens(len(lm.tokens(req.prefix)) + 1, "prefix")
        tokens, top = await worker.run(lm.next, req.prefix, req.k)
        ranked = [
            {"token": a.token, "prob": a.prob, "logprob": math.log(a.prob) if a.prob > 0 else None}
            for a in top
        ]
        return JSONResponse({"model": lm.name, "prefix_tokens": tokens, "next": ranked})

    @app.post("/api/generate")
    async def generate(req: GenerateRequest) -> JSONResponse:
        lm = server.view(req.model, "generate")
        server.check_text(req.prompt, "prompt")
        limit = settings.max_generate_tokens
        server.check_range("tokens", req.tokens, limit, "max_generate_tokens")
        text, seed = await worker.run(
            lm.generate, req.prompt, req.tokens, req.temperature, req.top_k, req.top_p, req.seed
        )
        return JSONResponse({"model": lm.name, "prompt": req.prompt, "text": text, "seed": seed})


def score_batch(lm: LanguageModelView, top_k: int, keep: bool, texts: Sequence[str]) -> list:
    return lm.score(texts, top_k, keep)


def tag_batch(tagger: TaggerView, top_k: int, sentences: Sequence[list[str]]) -> list:
    return tagger.tag(sentences, top_k)


def add_task_routes(app: FastAPI, server: Server) -> None:
    """Translation and tagging."""
    worker, settings = server.worker, server.settings

    @app.post("/api/translate")
    async def translate(req: TranslateRequest) -> JSONResponse:
        tr: TranslatorView = server.view(req.model, "translate")
        server.check_text(req.text)
        beam = req.beam or max(tr.loaded.recipe.decode.beam, req.n_best)
        server.check_range("beam", beam, settings.max_beam, "max_beam")
        if req.n_best > beam:
            raise ApiError(422, "invalid", f"n_best: {req.n_best} is more than the beam ({beam})")
        server.check_tokens(len(req.text.split()), "text")
        return JSONResponse(
            await worker.run(tr.translate, req.text, beam, req.n_best, req.attention)
        )

    @app.post("/api/tag")
    async def tag(req: TagRequest) -> JSONResponse:
        tg: TaggerView = server.view(req.model, "tag")
        if (req.text is None) == (req.tokens is None):
            raise ApiError(422, "invalid", "give text (a sentence) or tokens (its words), not both")
        words = req.tokens if req.tokens is not None else (req.text or "").split()
        server.check_text(req.text if req.text is not None else " ".join(words))
        server.check_tokens(len(words))
        server.check_range("top_k", req.top_k, settings.max_top_k, "max_top_k")
        if not words or any(not w or w != w.strip() or " " in w for w in words):
            raise ApiError(
                422, "invalid", "tokens: give one or more words, none empty or with spaces"
            )
        rows = await worker.batched(
            (tg.name, f"tag/{req.top_k}"), partial(tag_batch, tg, req.top_k), words
        )
        return JSONResponse({"model": tg.name, "tokens": rows})


def add_page_routes(app: FastAPI, settings: Settings) -> None:
    """The playground page, its files, and the results table it shows."""

    @app.get("/api/results")
    async def results() -> dict[str, Any]:
        return {"results": read_results(settings.results_dir), "plots": plots(settings.plots_dir)}

    @app.get("/api/plots/{name}")
    async def plot(name: str) -> FileResponse:
        if name not in plots(settings.plots_dir):  # only the listed files, never a path
            raise ApiError(404, "not_found", f"plot {name!r}: no such plot")
        return FileResponse(Path(settings.plots_dir or "") / name, media_type="image/png")

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        index = STATIC / "index.html"
        if not index.is_file():
            raise ApiError(404, "not_found", "the playground page is not installed")
        return FileResponse(index)


def finite(x: float) -> float | None:
    """JSON has no infinities: a probability of 0 (log P = −inf) is written null."""
    return x if math.isfinite(x) else None


def sentence_json(name: str, s: ScoredSentence) -> dict[str, Any]:
    logprob = s.logprob
    return {
        "model": name, "logprob": finite(logprob), "log10prob": finite(logprob / math.log(10)),
        "ppl": finite(s.ppl), "tokens": len(s.tokens), "oovs": s.oovs,
        "per_token": [
            {"token": t.token, "logprob": finite(t.logprob), "surprisal": finite(t.surprisal),
             "unknown": t.unknown, "top": [{"token": a.token, "prob": a.prob} for a in t.top]}
            for t in s.tokens
        ],
    }  # fmt: skip


def read_results(folder: str | None) -> list[dict[str, Any]]:
    """The committed results records: their identity, metrics and provenance."""
    if not folder or not Path(folder).is_dir():
        return []
    keep = ("recipe", "task", "dataset", "metrics", "aim", "commit", "date", "command")
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a file that is no record is not shown
        if isinstance(record, dict):
            out.append({"file": path.name, **{k: record.get(k) for k in keep}})
    return out


def plots(folder: str | None) -> list[str]:
    if not folder or not Path(folder).is_dir():
        return []
    return sorted(p.name for p in Path(folder).glob("*.png") if p.is_file())
