"""The Density socket's library log: a failed keepalive is one warning line, not an ERROR
traceback per socket (a frozen upstream gave five in a review)."""

from __future__ import annotations

import logging

from signage.density import stream
from tests.test_density_sim import make_client, stream_for


def test_a_failed_keepalive_is_one_warning_line_without_a_traceback(caplog):
    caplog.set_level(logging.DEBUG, logger="websockets.client")
    # As websockets' sync connection wraps the logger it is given (sync/connection.py).
    wrapped = logging.LoggerAdapter(stream._SOCKET_LOG, {"websocket": object()})
    try:
        raise TimeoutError("timed out while closing connection")
    except TimeoutError:
        wrapped.error("keepalive ping failed", exc_info=True)
    (record,) = caplog.records
    assert record.name == "websockets.client" and record.levelno == logging.WARNING
    assert record.exc_info is None and "Traceback" not in caplog.text
    assert record.getMessage() == (
        "keepalive ping failed: TimeoutError('timed out while closing connection')"
    )
    # Anything else the library says passes through unchanged.
    wrapped.debug("%s sent keepalive ping", "%")
    wrapped.error("unexpected internal error", exc_info=False)
    assert [(r.levelno, r.getMessage()) for r in caplog.records[1:]] == [
        (logging.DEBUG, "% sent keepalive ping"),
        (logging.ERROR, "unexpected internal error"),
    ]


def test_the_density_socket_is_opened_with_that_log(sim):
    """A real socket to the simulator: its connection logs through the adapter above."""
    with make_client(sim) as client:
        floor_stream, _, _ = stream_for(client, sim)
        with floor_stream:
            assert floor_stream.wait_first(10.0) is not None
            conn = floor_stream._conn
            assert conn is not None and conn.logger.logger is stream._SOCKET_LOG
