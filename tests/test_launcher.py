"""launcher.py, the Python half of start.bat: version check, port resolution, waiting for a
real server (a real Flask-free HTTP server on a loopback port) before opening the browser."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import launcher
from tests.support.paths import REPO_ROOT


def test_python_version_check_names_found_and_needed():
    assert launcher.python_ok((3, 11, 4))[0]
    ok, msg = launcher.python_ok((3, 10, 12))
    assert not ok and "3.10.12" in msg and "3.11" in msg and "需要" in msg


def test_check_python_command_passes_here():
    proc = subprocess.run([sys.executable, "launcher.py", "check-python"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith("Python 3.")


def test_port_from_arguments_then_env_then_dotenv_then_default(tmp_path: Path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("# settings\nHOST=127.0.0.1\nPORT = 5055  # mine\n", encoding="utf-8")
    assert launcher.resolve_port(["--port", "6001"], {"PORT": "7000"}, dotenv) == 6001
    assert launcher.resolve_port(["--replay", "data", "--port=6002"], {}, dotenv) == 6002
    assert launcher.resolve_port([], {"PORT": "7000"}, dotenv) == 7000
    assert launcher.resolve_port([], {}, dotenv) == 5055
    assert launcher.resolve_port([], {}, tmp_path / "missing.env") == 5000
    assert launcher.resolve_port(["--port", "notaport"], {}, dotenv) == 5000


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(503)        # even an error status means "the server is up"
        self.end_headers()

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]      # closed again on return: nothing listens there


def test_waits_until_a_server_answers_then_stops_probing():
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    servers: list[HTTPServer] = []

    def pause():                       # the server comes up only after the second refusal
        if len(pauses) == 1:
            server = HTTPServer(("127.0.0.1", port), _Hello)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
        pauses.append(1)

    pauses: list[int] = []
    try:
        assert launcher.wait_until_up(url, tries=10, pause=pause)
        assert len(pauses) == 2 and launcher.answers(url)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_gives_up_when_nothing_answers():
    port = _free_port()
    calls = []
    assert not launcher.wait_until_up(f"http://127.0.0.1:{port}/", tries=3, pause=lambda: calls.append(1))
    assert len(calls) == 2
