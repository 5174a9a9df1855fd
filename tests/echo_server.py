"""The signage app plus a test-only echo socket, served exactly as `signage serve` serves it.

For the Autobahn conformance cases: the kiosk route speaks first and caps what kiosks send, so
the cases run against an echo route on the same stack (flask-sock, simple-websocket, gunicorn's
gthread worker, our handshake guard) with a larger message cap.

    python -m tests.echo_server --port 9001
"""

from __future__ import annotations

import argparse

from signage import create_app
from signage.cli.serve import run_gunicorn
from signage.web.sockets import finish, prompt_pongs, sock

ECHO_PATH = "/__test__/echo"


def create_echo_app():
    """The production app with an echo route added (never registered outside tests)."""
    app = create_app()
    app.config["SOCK_SERVER_OPTIONS"] = {
        **app.config["SOCK_SERVER_OPTIONS"],
        "max_message_size": 16 * 1024 * 1024,
    }

    @sock.route(ECHO_PATH)
    def echo(ws):
        prompt_pongs(ws)
        try:
            while ws.connected:
                message = ws.receive(timeout=30)
                if message is not None:
                    ws.send(message)
        finally:
            finish(ws)

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run_gunicorn("127.0.0.1", args.port, 64, app_factory=create_echo_app)
