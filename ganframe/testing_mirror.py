"""A folder served over HTTP on 127.0.0.1, for testing downloads without the network.

Tests of anything built on :mod:`ganframe.download` (datasets, metric weights) need a server
that behaves like a real mirror, including its failures: it sends an ETag, answers ``Range``
requests with 206 (``If-Range`` honoured) unless ``ranges`` is off, and ``cut[path] = n``
makes the next response for ``path`` stop after ``n`` body bytes and drop the connection, as
a flaky network does::

    from ganframe.testing_mirror import serve_folder

    def test_download(tmp_path):
        (tmp_path / "www" / "files").mkdir(parents=True)
        ...
        with serve_folder(tmp_path / "www") as mirror:
            fetch_file([mirror.url("files") + "data.bin"], tmp_path / "data.bin")

Standard library only; nothing here is imported by ganframe itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path


class Mirror:
    """What the server saw and how it misbehaves; ``url(sub)`` gives a mirror base URL."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.requests: list[str] = []
        self.ranges_asked: list[str | None] = []
        self.ranges = True
        self.cut: dict[str, int] = {}

    def url(self, sub: str = "") -> str:
        sub = sub.strip("/")
        return f"http://127.0.0.1:{self.port}/{sub}/" if sub else f"http://127.0.0.1:{self.port}/"


def _handler(root: Path, holder: dict[str, Mirror]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: object) -> None:
            holder["m"].requests.append(self.path)

        def do_GET(self) -> None:
            mirror = holder["m"]
            path = Path(self.translate_path(self.path))
            asked = self.headers.get("Range")
            mirror.ranges_asked.append(asked)
            if not path.is_file():
                return super().do_GET()  # the 404
            data = path.read_bytes()
            etag = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
            start = 0
            if asked and mirror.ranges and self.headers.get("If-Range", etag) == etag:
                start = int(asked.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.end_headers()
            cut = mirror.cut.pop(self.path, None)
            if cut is None:
                self.wfile.write(body)
                return
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


@contextlib.contextmanager
def serve_folder(root: Path) -> Iterator[Mirror]:
    """Serve ``root`` (created if missing) on a free port of 127.0.0.1 until the block ends."""
    root.mkdir(parents=True, exist_ok=True)
    holder: dict[str, Mirror] = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, holder))
    holder["m"] = Mirror(root, server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["m"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    """A port on 127.0.0.1 that nobody listens on (for "offline" tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
