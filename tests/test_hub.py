"""The hub: one sender writes every kiosk socket; overflow evicts; data stuck unsent is cut."""

from __future__ import annotations

import socket
import threading

import pytest

from signage.core.hub import Hub, text_frame
from signage.core.protocol import CLOSE_STALLED, CLOSE_TOO_SLOW
from tests.helpers import wait_until


@pytest.fixture
def hub():
    h = Hub(queue_size=8, send_timeout=0.5)
    yield h
    h.stop()


def kiosk(hub, floor="f", display=1):
    """A subscriber on one end of a socketpair; the test reads the other end."""
    server_end, client_end = socket.socketpair()
    sub = hub.subscribe(floor, display, threading.Event(), server_end)
    return sub, client_end


def read_frames(sock, count, timeout=5.0):
    """Read `count` complete frames' payloads (server frames, unmasked)."""
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < count:
        buf += sock.recv(65536)
        while len(buf) >= 2:
            size, offset = buf[1] & 0x7F, 2
            if size == 126:
                size, offset = int.from_bytes(buf[2:4], "big"), 4
            elif size == 127:
                size, offset = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < offset + size:
                break
            out.append(buf[offset : offset + size].decode())
            buf = buf[offset + size :]
    return out


def test_snapshot_first_then_only_newer_updates(hub):
    sub, peer = kiosk(hub)
    hub.publish("f", 5, "early-5")  # before the snapshot: held back
    hub.publish("f", 6, "early-6")
    hub.snapshot(sub, "snapshot@5", 5)  # the snapshot already includes seq 5
    hub.publish("f", 6, "dup-6")  # seq 6 already queued: not again
    hub.publish("f", 7, "u7")
    assert read_frames(peer, 3) == ["snapshot@5", "early-6", "u7"]


def test_publish_reaches_only_that_floor(hub):
    a, pa = kiosk(hub, "f1", 1)
    b, pb = kiosk(hub, "f2", 2)
    hub.snapshot(a, "s", 0)
    hub.snapshot(b, "s", 0)
    assert hub.publish("f1", 1, "m1") == 1
    assert read_frames(pa, 2) == ["s", "m1"]
    assert read_frames(pb, 1) == ["s"]
    pb.settimeout(0.2)
    with pytest.raises(TimeoutError):
        pb.recv(10)
    assert hub.counts_by_floor() == {"f1": 1, "f2": 1}
    hub.detach(a)
    hub.detach(a)  # idempotent
    assert hub.count("f1") == 0


def test_stalled_kiosk_is_cut_and_others_get_everything():
    hub = Hub(queue_size=64, send_timeout=0.5)
    slow, slow_peer = kiosk(hub, display=1)
    fast, fast_peer = kiosk(hub, display=2)
    slow_peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    hub.snapshot(slow, "s", 0)
    hub.snapshot(fast, "s", 0)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(read_frames(fast_peer, 41)))
    reader.start()
    big = "x" * 50_000  # 2 MB in all: more than the slow kiosk's socket buffers hold
    for seq in range(1, 41):
        hub.publish("f", seq, f"{seq}:{big}")
    reader.join(timeout=10)
    assert len(got) == 41 and got[-1].startswith("40:")
    wait_until(lambda: slow.close_code == CLOSE_STALLED, timeout=5, message="slow one cut")
    assert fast.close_code is None
    assert hub.stalled_cuts == 1
    hub.stop()


def test_outbox_overflow_evicts(hub):
    sub, _peer = kiosk(hub)
    hub.snapshot(sub, "s" * 3_000_000, 0)  # blocks the socket: later frames wait in the outbox
    for seq in range(1, 20):
        hub.publish("f", seq, "u")
    assert sub.close_code == CLOSE_TOO_SLOW
    assert hub.evictions == 1


def test_data_stuck_unsent_is_cut_after_the_send_timeout(hub):
    sub, peer = kiosk(hub)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    hub.snapshot(sub, "s" * 3_000_000, 0)  # more than any socket buffer takes
    wait_until(lambda: sub.close_code == CLOSE_STALLED, timeout=5, message="cut")
    assert hub.stalled_cuts == 1


def test_commands_and_close_display_reach_all_its_sockets(hub):
    subs = [kiosk(hub, display=7) for _ in range(3)]
    other, other_peer = kiosk(hub, display=8)
    for sub, _ in subs:
        hub.snapshot(sub, "s", 0)
    hub.snapshot(other, "s", 0)
    assert hub.command(7, '{"type":"reload"}') == 3
    assert all(read_frames(peer, 2)[1] == '{"type":"reload"}' for _, peer in subs)
    assert hub.close_display(7, 4401, "revoked") == 3
    assert all(s.close_code == 4401 and s.wakeup.is_set() for s, _ in subs)
    assert other.close_code is None


def test_text_frame_matches_a_real_websocket_encoder():
    from wsproto.frame_protocol import FrameProtocol

    for size in (0, 5, 125, 126, 65535, 65536, 70000):
        text = "é" * (size // 2) + "a" * (size % 2)
        assert text_frame(text) == FrameProtocol(client=False, extensions=[]).send_data(text, True)


def test_the_send_timeout_runs_on_the_hubs_clock():
    """A stuck kiosk is cut when the hub's clock passes the send timeout, not before."""
    from signage.core.clock import FakeClock

    clock = FakeClock()
    hub = Hub(queue_size=8, send_timeout=300.0, clock=clock)
    try:
        sub, peer = kiosk(hub)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        hub.snapshot(sub, "s" * 3_000_000, 0)  # more than any socket buffer takes
        wait_until(lambda: sub.blocked_since is not None, timeout=5, message="blocked")
        clock.advance(299.0)
        wait_until(lambda: sub.blocked_since is not None, timeout=1)  # a sender pass or more
        assert sub.close_code is None
        clock.advance(2.0)
        wait_until(lambda: sub.close_code == CLOSE_STALLED, timeout=5, message="cut at 301 s")
        assert hub.stalled_cuts == 1
    finally:
        hub.stop()
