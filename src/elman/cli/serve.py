"""``elman serve [NAME=]MODEL … [--host 127.0.0.1] [--port 8000]``: the models behind an HTTP
API and a browser playground (docs/serve.md).

MODEL is a run folder, a checkpoint (.pt) or an ARPA file; NAME (default: the folder's or
file's name without its suffix) is how requests and the page name it. Every model is loaded and
checked before the server starts; one that fails stops it with one line naming the file. Then
open http://127.0.0.1:8000 for the playground; the API is described at /docs and
/openapi.json.

The server listens on 127.0.0.1 (this machine only) unless --host says otherwise, and answers
browsers of other origins only for the origins given with --cors. Requests name only the models
loaded here: never a file, a module or a pickle. Each limit below answers with a JSON error
naming it; a full queue answers 503 at once. Needs the serve extra: pip install 'elman[serve]'.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from pathlib import Path

from elman.cli.options import add_threads, device, integer, real, use_threads
from elman.errors import ElmanError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="an HTTP API and a browser playground over models", description=__doc__
    )
    p.add_argument("models", nargs="+", metavar="[NAME=]MODEL", help="the models to serve")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=integer(0, 65535), default=8000, help="port (default 8000)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    add_threads(p)
    limits = p.add_argument_group("limits (each answered with a JSON error naming it)")
    limits.add_argument(
        "--max-body-bytes", type=integer(256), default=65_536, help="bytes of a request body"
    )
    limits.add_argument("--max-chars", type=integer(1), default=2_000, help="characters per text")
    limits.add_argument("--max-tokens", type=integer(1), default=200, help="tokens per text")
    limits.add_argument(
        "--max-generate-tokens", type=integer(1), default=200, help="tokens one request samples"
    )
    limits.add_argument("--max-beam", type=integer(1, 100), default=20, help="beam size")
    limits.add_argument(
        "--max-top-k", type=integer(1, 1000), default=50, help="alternatives per position"
    )
    limits.add_argument(
        "--timeout", type=real(0, above=True), default=30.0, help="seconds per request"
    )
    limits.add_argument(
        "--max-queue", type=integer(1), default=64, help="requests admitted at once; more: 503"
    )
    limits.add_argument(
        "--max-batch", type=integer(1), default=32, help="requests in one forward pass"
    )
    p.add_argument("--results", help="the results folder the page shows (default: ./results)")
    p.add_argument("--plots", help="the plots (PNG) the page shows (default: ./docs/img)")
    p.add_argument(
        "--cors", action="append", default=[], metavar="ORIGIN",
        help="let pages of this origin call the API (repeat; default: none)",
    )  # fmt: skip
    p.set_defaults(func=run)


def parse_models(specs: list[str]) -> list[tuple[str, str]]:
    """``NAME=PATH`` or ``PATH`` (named after the folder or file) → (name, path) pairs."""
    pairs: list[tuple[str, str]] = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            path, name = spec, Path(spec.rstrip("/")).stem
        if not NAME.fullmatch(name):
            raise ElmanError(
                f"{spec}: model name {name!r}: use letters, digits, '.', '_' or '-' "
                "(give NAME=MODEL)"
            )
        if name in dict(pairs):
            raise ElmanError(f"{spec}: the name {name!r} is given twice; give NAME=MODEL")
        pairs.append((name, path))
    return pairs


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from elman.serve.app import Settings, create_app
    except ImportError as err:
        raise ElmanError(f"elman serve needs {err.name}: pip install 'elman[serve]'") from None
    from elman.serve.views import load_view

    use_threads(args.threads)
    pairs = parse_models(args.models)
    views = []
    for name, path in pairs:
        views.append(load_view(name, path, args.device))
        print(f"loaded {name} = {path} ({views[-1].kind})", file=sys.stderr)
    settings = Settings(
        max_body_bytes=args.max_body_bytes, max_chars=args.max_chars, max_tokens=args.max_tokens,
        max_generate_tokens=args.max_generate_tokens, max_beam=args.max_beam,
        max_top_k=args.max_top_k, timeout_s=args.timeout, max_queue=args.max_queue,
        max_batch=args.max_batch, results_dir=folder(args.results, "results"),
        plots_dir=folder(args.plots, "docs/img"), cors=tuple(args.cors),
    )  # fmt: skip
    if not is_loopback(args.host):
        print(
            f"elman: warning: listening on {args.host}: other machines can reach this server",
            file=sys.stderr,
        )
    print(f"serving {len(views)} models at http://{args.host}:{args.port} (Ctrl-C stops)",
          file=sys.stderr)  # fmt: skip
    uvicorn.run(create_app(views, settings), host=args.host, port=args.port, log_level="warning")
    return 0


def folder(given: str | None, default: str) -> str | None:
    """``given`` (it must exist), else ``default`` when it exists, else None."""
    if given is not None:
        if not Path(given).is_dir():
            raise ElmanError(f"{given}: no such folder")
        return given
    return default if Path(default).is_dir() else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
