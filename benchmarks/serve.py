"""Load on ``elman serve``: requests/s, latency percentiles, errors and memory (issue #18).

    python benchmarks/serve.py --lm runs/bench/ptb-kn5.arpa --lm runs/bench/ptb-small-lstm \
        --tagger runs/bench/ud-lines-upos --translator runs/bench/multi30k-attention \
        --clients 1 8 32 --seconds 10 --out benchmarks/results/serve.json

Starts ``elman serve`` (one torch thread) in its own process, then for each endpoint and each
number of concurrent clients sends requests for a fixed time from that many asyncio clients,
each sending its next request as soon as the last is answered. The texts are real: PTB test
lines (score), UD English LinES test sentences (tag), Multi30k test_2016_flickr German
sentences (translate), taken in turn. Reported per run: requests/s, p50/p95/p99 latency,
errors (any answer but 200), and the server's resident memory (RSS) at the start and end of the
run and its peak over the whole benchmark, read from /proc.

The batching gain: score (the LSTM) and tag run twice, once with the server's default batching
(``--max-batch 32``) and once with ``--max-batch 1`` (every request alone), and the ratio of
requests/s is reported. The clients run on the same machine as the server (2 cores here), so
the absolute numbers include their cost; the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """The process's resident memory now, in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """``elman serve`` in a child process, on a free port, until stopped."""

    def __init__(self, models: list[str], extra: list[str]) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "elman", "serve", *models, "--port", str(self.port),
               "--threads", "1", "--max-queue", "256", *extra]  # fmt: skip
        self.command = "elman " + " ".join(cmd[3:])
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}"

    async def ready(self, client) -> None:
        for _ in range(600):
            if self.proc.poll() is not None:
                raise SystemExit(f"elman serve stopped: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                if (await client.get(self.url + "/api/health")).status_code == 200:
                    return
            except Exception:  # not listening yet
                pass
            await asyncio.sleep(0.2)
        raise SystemExit("elman serve did not start in 120 s")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def load(client, server: Server, path: str, bodies: list[dict], clients: int,
               seconds: float) -> dict:  # fmt: skip
    """``clients`` concurrent senders for ``seconds``; every latency and error counted."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def sender() -> None:
        while time.perf_counter() < stop:
            body = bodies[next(counter) % len(bodies)]
            t0 = time.perf_counter()
            try:
                r = await client.post(server.url + path, json=body, timeout=120)
                status = str(r.status_code)
            except Exception as err:  # a refused or broken connection is an error too
                status = type(err).__name__
            if status == "200":
                latencies.append(time.perf_counter() - t0)
            else:
                errors[status] = errors.get(status, 0) + 1

    rss_start = rss_mb(server.proc.pid)
    t0 = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(clients)))
    wall = time.perf_counter() - t0
    return {
        "clients": clients, "requests": len(latencies), "requests_per_s": len(latencies) / wall,
        "p50_ms": 1000 * percentile(latencies, 50), "p95_ms": 1000 * percentile(latencies, 95),
        "p99_ms": 1000 * percentile(latencies, 99), "errors": errors,
        "rss_start_mb": rss_start, "rss_end_mb": rss_mb(server.proc.pid),
    }  # fmt: skip


def texts(max_lines: int = 500) -> dict[str, list[str]]:
    """Real inputs: PTB test lines, UD LinES test sentences, Multi30k test German."""
    import conllu

    from elman.data.parallel import resolve_parallel

    data = Path(os.environ.get("ELMAN_DATA", ROOT / "data"))
    ptb = (data / "ptb" / "ptb.test.txt").read_text().splitlines()[:max_lines]
    sources, _ = resolve_parallel("multi30k", "de-en").pairs("test")
    lines_test = data / "ud" / "UD_English-LinES" / "en_lines-ud-test.conllu"
    with open(lines_test, encoding="utf-8") as f:
        sentences = conllu.parse(f.read())[:max_lines]
    words = [[t["form"] for t in s if isinstance(t["id"], int)] for s in sentences]
    return {"ptb": [s.strip() for s in ptb], "ud": [" ".join(w) for w in words],
            "de": sources[:max_lines]}  # fmt: skip


def summary(run: dict) -> str:
    return (
        f"{run['clients']:3} clients: {run['requests_per_s']:7.1f} req/s  "
        f"p50 {run['p50_ms']:6.1f} ms  p99 {run['p99_ms']:7.1f} ms  "
        f"errors {sum(run['errors'].values())}  "
        f"RSS {run['rss_start_mb']:.0f}->{run['rss_end_mb']:.0f} MB"
    )


async def bench(args: argparse.Namespace) -> dict:
    import httpx

    inputs = texts()
    lm_names = [f"lm{i}={p}" for i, p in enumerate(args.lm)]
    models = [*lm_names, f"tagger={args.tagger}", f"translator={args.translator}"]

    def bodies(key: str, make) -> list[dict]:
        return [make(t) for t in inputs[key]]

    endpoints = {
        "score-kn5": ("/api/score", bodies("ptb", lambda t: {"text": t, "models": ["lm0"]})),
        "score-lstm": ("/api/score", bodies("ptb", lambda t: {"text": t, "models": ["lm1"]})),
        "tag": ("/api/tag", bodies("ud", lambda t: {"model": "tagger", "text": t})),
        "translate": (
            "/api/translate", bodies("de", lambda t: {"model": "translator", "text": t, "beam": 5})
        ),
    }  # fmt: skip
    report: dict = {"runs": {}, "batching_gain": {}}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    for mode, extra in (("batched", []), ("unbatched", ["--max-batch", "1"])):
        server = Server(models, extra)
        try:
            async with httpx.AsyncClient(limits=limits) as client:
                await server.ready(client)
                report.setdefault("server_commands", {})[mode] = server.command
                for name, (path, bodies) in endpoints.items():
                    if mode == "unbatched" and name not in ("score-lstm", "tag"):
                        continue
                    for n in args.clients:
                        run = await load(client, server, path, bodies, n, args.seconds)
                        report["runs"].setdefault(mode, {}).setdefault(name, []).append(run)
                        print(f"{mode:9} {name:10} {summary(run)}", flush=True)
                report.setdefault("peak_rss_mb", {})[mode] = peak_rss_mb(server.proc.pid)
        finally:
            server.stop()
    for name in ("score-lstm", "tag"):
        for b, u in zip(
            report["runs"]["batched"][name], report["runs"]["unbatched"][name], strict=True
        ):
            report["batching_gain"].setdefault(name, {})[str(b["clients"])] = (
                b["requests_per_s"] / u["requests_per_s"]
            )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", action="append", required=True, help="KN5 ARPA, then the LSTM")
    parser.add_argument("--tagger", required=True)
    parser.add_argument("--translator", required=True)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve.json"))
    args = parser.parse_args()
    if len(args.lm) != 2:
        parser.error("--lm: give the KN5 ARPA file, then the LSTM run")
    sys.path.insert(0, str(ROOT / "src"))
    from elman.files import check_writable, write_json
    from elman.provenance import command_line, provenance

    check_writable(args.out, "results file")
    report = asyncio.run(bench(args))
    record = {
        "benchmark": "serve", "seconds": args.seconds, "clients": args.clients,
        "models": {"lm": args.lm, "tagger": args.tagger, "translator": args.translator},
        "cpus": os.cpu_count(), "load_average_before": os.getloadavg(), **report,
        **provenance("cpu", command_line(prog="python benchmarks/serve.py")),
    }  # fmt: skip
    write_json(args.out, record)
    print(f"batching gain (requests/s, batched / alone): {report['batching_gain']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
