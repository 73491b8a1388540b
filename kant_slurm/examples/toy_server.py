"""A toy inference server for the ``inference-service`` template: pure Python, no GPU.

``GET /health`` answers 200 ``{"status": "ok"}`` while the server is healthy (the template
polls it); ``GET /generate?prompt=TEXT`` (or ``POST /generate`` with the prompt as the body)
answers a "completion", the prompt's words reversed. ``--healthy-for SECONDS`` makes
``/health`` answer 503 after that long, to watch the template requeue an unhealthy service.
SIGTERM (the template's drain) stops taking requests and exits 0.

    python3 -m kant_slurm.examples.toy_server --port 8000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def complete(prompt: str) -> str:
    """The toy model: the prompt's words in reverse order."""
    return " ".join(reversed(prompt.split()))


def make_handler(started: float, healthy_for: float | None):
    class Handler(BaseHTTPRequestHandler):
        server_version = "kant-toy-server/1"

        def _answer(self, status: int, data: dict) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urlsplit(self.path)
            if url.path == "/health":
                if healthy_for is not None and time.monotonic() - started > healthy_for:
                    self._answer(
                        503,
                        {
                            "status": "unhealthy",
                            "reason": f"--healthy-for {healthy_for:g}s is over",
                        },
                    )
                else:
                    self._answer(200, {"status": "ok"})
            elif url.path == "/generate":
                prompt = parse_qs(url.query).get("prompt", [""])[0]
                self._answer(200, {"prompt": prompt, "completion": complete(prompt)})
            else:
                self._answer(404, {"error": f"no {url.path}; try /health or /generate"})

        def do_POST(self) -> None:  # noqa: N802
            if urlsplit(self.path).path != "/generate":
                self._answer(404, {"error": "POST goes to /generate"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            prompt = self.rfile.read(length).decode("utf-8", "replace")
            self._answer(200, {"prompt": prompt, "completion": complete(prompt)})

        def log_message(self, fmt: str, *args) -> None:
            sys.stderr.write(f"toy_server: {self.address_string()} {fmt % args}\n")

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m kant_slurm.examples.toy_server", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 8000),
        help="port (default $PORT, which the template exports, else 8000)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every one)",
    )
    parser.add_argument(
        "--healthy-for",
        type=float,
        default=None,
        metavar="SECONDS",
        help="/health answers 503 after this many seconds (default: never)",
    )
    args = parser.parse_args(argv)
    try:
        server = ThreadingHTTPServer(
            (args.host, args.port), make_handler(time.monotonic(), args.healthy_for)
        )
    except OSError as exc:
        print(
            f"toy_server: cannot listen on {args.host}:{args.port}: {exc.strerror}; expected "
            f"a free port (--port or $PORT)",
            file=sys.stderr,
        )
        return 1

    def on_term(signum, frame) -> None:
        print("toy_server: TERM: draining, then exiting", file=sys.stderr, flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    print(
        f"toy_server: listening on http://{args.host}:{args.port} (/health, /generate)",
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
