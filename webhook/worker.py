"""The gunicorn worker that serves the webhook: no client can hold a thread.

gunicorn's gthread worker hands a connection to a thread once its first byte
arrives, and the thread then waits as long as the client likes for the TLS
handshake, the headers and the body. A dozen connections that send a request
line and stop hold every thread of a pod, probes fail, and with the validating
webhook failing closed every VM write in the cluster is refused.

This worker keeps gthread's process model, threads and request handling, but
does every read and write of a client in its event loop, without blocking and
under deadlines: the handshake, then the head (from its first byte) and then the
body must each arrive within a few seconds, and the response must be taken
within `WRITE_SECONDS`. A connection that misses one is closed and counted in
`hotplug_guard_connections_closed_total`. Threads run the app only on requests
that are complete in memory and write their response into memory, so they never
wait on a client; a separate thread answers GET requests (`/healthz`,
`/readyz`, `/metrics`), so probes are answered while every review thread is busy.

Memory is bounded too. A worker counts the bytes it holds for its clients (received,
or waiting to be reviewed) and the bodies under review at `EXPANSION` times their size
(what parsing them can take): reading a body stops while that is over
`MEMORY_BUDGET_BYTES`, and a complete request waits (unread, for `MEMORY_WAIT_SECONDS`
at most) before it is handed to a thread that would take it over. A stalled client
holds the few bytes it sent, nothing more; a request always proceeds when nothing is
under review. docs/security.md has the measurements.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import select
import selectors
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn import sock as gunicorn_sock
from gunicorn.workers.gthread import ThreadWorker

from webhook.app import MAX_BODY_BYTES
from webhook.balance import ASIDE_POLL_SECONDS, STEP_ASIDE_SECONDS, Share
from webhook.framing import ChunkedBody, ChunkState, Head, head_end, parse_head, with_content_length
from webhook.metrics import ConnectionMetrics

LOG = logging.getLogger(f"hotplug_guard.{__name__}")
HANDSHAKE_SECONDS = 5.0
"""From accepting the connection to the end of the TLS handshake."""
HEAD_SECONDS = 5.0
"""From the end of the handshake, or from the first byte on a kept-alive connection, to the
blank line that ends the request head."""
BODY_SECONDS = 5.0
"""From the end of the head (or the end of waiting for memory) to the last byte of the body."""
MEMORY_WAIT_SECONDS = 10.0
"""How long a body may wait for memory, unread, before its connection is closed."""
WRITE_SECONDS = 10.0
"""For the client to take the response."""
LINGER_SECONDS = 2.0
"""After a response with `Connection: close`, how long unread request bytes are drained so
that the close does not reset the connection before the client read the response."""
MAX_HEAD_BYTES = 16 * 1024
"""kube-apiserver's request heads are a few hundred bytes."""
EXPANSION = 20
"""Memory parsing and reviewing a body can take, in multiples of its size: measured up to
17.6 for the worst body `webhook.reviews` lets through (its limit on JSON objects and
arrays rules out the 35 times of bodies made of small objects; bodies large enough to
matter are decoded by the standard library, see `webhook.reviews.ORJSON_MAX_BYTES`)."""
MEMORY_BUDGET_BYTES = EXPANSION * MAX_BODY_BYTES + 8 * 1024 * 1024
"""Per worker: one body of the largest size under review, and received bytes beside it."""
READ_BYTES = 64 * 1024
LINGER_BYTES = 16 * 1024 * 1024
"""Enough for a client that sends a body over the limit before it reads the 413."""
CONTROL_METHODS = frozenset({"GET", "HEAD"})
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
WAIT = object()
"""What `_attempt` returns when the operation has to wait or failed."""
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_TOO_LARGE_HEAD = f"hotplug-guard: request head exceeds {MAX_HEAD_BYTES} bytes\n".encode()
TOO_LARGE_HEAD = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
    b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_TOO_LARGE_HEAD), _TOO_LARGE_HEAD)
)


class Phase(enum.StrEnum):
    """Where a connection is; the name is the reason counted when its deadline passes."""

    HANDSHAKE = "handshake"
    HEAD = "head"
    BODY = "body"
    WAITING = "memory"
    REVIEWING = "reviewing"
    WRITING = "write"
    IDLE = "idle"
    LINGERING = "linger"


class Connection:
    """One client connection and the request it is sending."""

    def __init__(self, sock: socket.socket, client: Any, server: Any, *, deadline: float) -> None:
        self.sock = sock
        self.client = client
        self.server = server
        self.phase = Phase.HANDSHAKE
        self.deadline = deadline
        self.events = 0
        self.buffer = bytearray()
        self.searched = 0
        self.head: Head | None = None
        self.chunks: ChunkedBody | None = None
        self.request = b""
        """A complete request waiting for memory to be reviewed, or under review."""
        self.output = memoryview(b"")
        self.keep_alive = False
        self.lingered = 0


class Output:
    """The socket a thread's response is written to: memory, sent later by the event loop."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.parts.append(bytes(data))

    def send(self, data: bytes) -> int:
        # only gunicorn's own `100 Continue`, which the event loop already sent
        return len(data)

    def gettimeout(self) -> float | None:
        return None

    def setblocking(self, flag: bool) -> None:
        pass

    def settimeout(self, value: float | None) -> None:
        pass

    def shutdown(self, how: int) -> None:
        pass

    def recv(self, size: int) -> bytes:
        return b""

    def data(self) -> bytes:
        return b"".join(self.parts)


class Exchange:
    """What a thread's request handling sees as its connection."""

    def __init__(self, output: Output, client: Any, server: Any) -> None:
        self.sock = output
        self.client = client
        self.server = server


class Memory:
    """What a worker's clients take (used by the event loop only): bytes held for them, and
    bodies under review at `EXPANSION` times their size.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.held = 0
        self.reviewing = 0

    def room(self, more: int) -> bool:
        return self.held + EXPANSION * self.reviewing + more <= self.budget


class GuardedThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn ships no types
    """gthread with client I/O in the event loop under deadlines (see the module docstring)."""

    share: Share | None = None
    """This worker's slot among its siblings' connection counts (set by the master before
    the fork, `webhook.server`); without one it accepts whenever it can."""

    def init_process(self) -> None:
        self.connections: set[Connection] = set()
        self.resume_at = 0.0
        """When a worker that stepped aside (`webhook.balance`) watches the listener again."""
        self.waiting: deque[Connection] = deque()
        self.memory = Memory(MEMORY_BUDGET_BYTES)
        self.control = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="control")
        self.connection_metrics = ConnectionMetrics()
        super().init_process()

    def run(self) -> None:
        self._publish()  # only now do siblings leave connections to it
        if self.share is not None:
            LOG.info("accepting connections", extra={"slot": self.share.slot})
        try:
            super().run()
        finally:
            self.control.shutdown(wait=False)

    # --- accepting and deadlines (called by gthread's run loop) ---------------------------

    def accept(self, listener: socket.socket) -> None:
        if self.share is not None and not self.share.my_turn():
            # a sibling holds fewer connections: leave this one to it
            self.resume_at = time.monotonic() + STEP_ASIDE_SECONDS
            super().set_accept_enabled(False)
            return
        self._take(listener)

    def set_accept_enabled(self, enabled: bool) -> None:
        """gthread's (called on every turn of its loop while not accepting), but a worker
        that stepped aside watches the listener again only once its siblings caught up, or
        once its time aside is up; then it takes a connection still waiting at once.
        """
        if not enabled:  # the worker is stopping, or has all the connections it may
            self.resume_at = 0.0
        if not self.resume_at:
            super().set_accept_enabled(enabled)
            return
        caught_up = self.share is None or self.share.my_turn()
        if not caught_up and time.monotonic() < self.resume_at:
            return
        self.resume_at = 0.0
        super().set_accept_enabled(True)
        if not caught_up:  # no sibling took what waits meanwhile
            for listener in self.sockets:
                if _pending_connection(listener):
                    self._take(listener)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        if self.resume_at:  # aside: look at the siblings' counts again soon
            timeout = min(timeout, ASIDE_POLL_SECONDS)
        super().wait_for_and_dispatch_events(timeout)

    def _take(self, listener: socket.socket) -> None:
        try:
            raw, client = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        raw.setblocking(False)
        try:
            sock: socket.socket = raw
            if self.cfg.is_ssl:
                sock = gunicorn_sock.ssl_context(self.cfg).wrap_socket(
                    raw, server_side=True, do_handshake_on_connect=False
                )
        except (ssl.SSLError, OSError):
            raw.close()
            return
        self.nr_conns += 1
        conn = Connection(
            sock, client, listener.getsockname(), deadline=time.monotonic() + HANDSHAKE_SECONDS
        )
        self.connections.add(conn)
        self._publish()
        if self.cfg.is_ssl:
            self._handshake(conn)
        else:
            self._start_head(conn)

    def murder_keepalived(self, force: bool = False) -> None:
        """Close connections whose deadline passed (all of them when `force`), then go on
        with those that waited for memory. gthread calls it after every turn of its loop.
        """
        now = time.monotonic()
        for conn in list(self.connections):
            if force:
                self._close(conn)
            elif conn.phase is not Phase.REVIEWING and now >= conn.deadline:
                # a review runs in a thread, bounded by its own deadline
                self._close(conn, counted=conn.phase is not Phase.LINGERING)
        self._admit_waiting()

    def murder_pending(self) -> None:
        pass  # murder_keepalived covers every phase

    def _cap_keepalive(self, deadline: float) -> None:
        for conn in self.connections:
            if conn.phase is Phase.IDLE:
                conn.deadline = min(conn.deadline, deadline)

    # --- the event loop's side of a connection -------------------------------------------

    def _watch(self, conn: Connection, events: int) -> None:
        if events == conn.events:
            return
        if not events:
            self.poller.unregister(conn.sock)
        elif not conn.events:
            self.poller.register(conn.sock, events, partial(self._ready, conn))
        else:
            self.poller.modify(conn.sock, events, partial(self._ready, conn))
        conn.events = events

    def _ready(self, conn: Connection, _fileobj: object) -> None:
        if conn.phase is Phase.HANDSHAKE:
            self._handshake(conn)
        elif conn.phase is Phase.IDLE:
            conn.phase, conn.deadline = Phase.HEAD, time.monotonic() + HEAD_SECONDS
            self._read(conn)
        elif conn.phase in (Phase.HEAD, Phase.BODY):
            self._read(conn)
        elif conn.phase is Phase.WRITING:
            self._write(conn)
        elif conn.phase is Phase.LINGERING:
            self._linger(conn)

    def _attempt(self, conn: Connection, operation: Callable[[], Any], *, blocked: int) -> Any:
        """Run a non-blocking socket operation: its result, or `WAIT` when it has to wait
        (the socket is watched for what it waits for) or failed (the connection is closed:
        not TLS, a reset, a client that left; there is nothing to answer).
        """
        try:
            return operation()
        except ssl.SSLWantReadError:
            self._watch(conn, _READ)
        except ssl.SSLWantWriteError:
            self._watch(conn, _WRITE)
        except BlockingIOError:
            self._watch(conn, blocked)
        except (ssl.SSLError, OSError):
            self._close(conn)
        return WAIT

    def _handshake(self, conn: Connection) -> None:
        if not isinstance(conn.sock, ssl.SSLSocket):
            return
        if self._attempt(conn, conn.sock.do_handshake, blocked=_READ) is not WAIT:
            self._start_head(conn)

    def _start_head(self, conn: Connection) -> None:
        conn.phase, conn.deadline = Phase.HEAD, time.monotonic() + HEAD_SECONDS
        self._watch(conn, _READ)
        if conn.buffer:
            self._advance(conn)  # a pipelined request may be complete already
        self._read(conn)  # bytes may be waiting in the TLS layer, unseen by the poller

    def _read(self, conn: Connection) -> None:
        while conn.phase in (Phase.HEAD, Phase.BODY):
            if conn.phase is Phase.BODY and not self.memory.room(READ_BYTES):
                self._wait(conn)
                return
            data = self._attempt(conn, partial(conn.sock.recv, READ_BYTES), blocked=_READ)
            if data is WAIT:
                return
            if not data:
                self._close(conn)  # the client left before finishing its request
                return
            conn.buffer += data
            self.memory.held += len(data)
            self._advance(conn)

    def _advance(self, conn: Connection) -> None:
        """Move the request on with what has arrived; hand it on once complete."""
        if conn.phase is Phase.HEAD:
            end = head_end(conn.buffer, conn.searched)
            conn.searched = len(conn.buffer)
            if end < 0:
                if len(conn.buffer) > MAX_HEAD_BYTES:
                    self._respond(conn, TOO_LARGE_HEAD)
                return
            head = parse_head(bytes(conn.buffer[:end]))
            conn.head = head
            if head.content_length == -1 or (head.chunked and head.content_length is not None):
                # unclear framing: gunicorn's parser refuses it (400), and the connection closes
                self._complete(conn, bytes(conn.buffer), keep_alive=False)
                return
            if not head.has_body:
                self._complete(conn, bytes(conn.buffer[:end]))
                return
            if head.content_length is not None and head.content_length > MAX_BODY_BYTES:
                # the app refuses a declared size over its limit (413) without reading
                self._complete(conn, bytes(conn.buffer[:end]), keep_alive=False)
                return
            conn.chunks = ChunkedBody(end) if head.chunked else None
            conn.phase, conn.deadline = Phase.BODY, time.monotonic() + BODY_SECONDS
            if head.expect_continue and len(conn.buffer) == end:
                # best effort: a client that does not get it sends the body after a second
                with contextlib.suppress(ssl.SSLError, OSError):
                    conn.sock.send(CONTINUE)
        if conn.phase is not Phase.BODY or conn.head is None:
            return
        head = conn.head
        if conn.chunks is not None:
            state = conn.chunks.feed(conn.buffer)
            if conn.chunks.declared > MAX_BODY_BYTES:
                sized = with_content_length(bytes(conn.buffer[: head.size]), conn.chunks.declared)
                self._complete(conn, sized, keep_alive=False)
            elif state is ChunkState.DONE:
                self._complete(conn, bytes(conn.buffer[: conn.chunks.end]))
            elif state is ChunkState.MALFORMED:
                self._complete(conn, bytes(conn.buffer), keep_alive=False)
            return
        total = head.size + (head.content_length or 0)
        if len(conn.buffer) >= total:
            self._complete(conn, bytes(conn.buffer[:total]))

    def _complete(self, conn: Connection, request: bytes, *, keep_alive: bool = True) -> None:
        """A request is complete: keep what follows it for the next one, then review it."""
        self._watch(conn, 0)
        rest = conn.buffer[len(request) :] if keep_alive else bytearray()
        self.memory.held += len(request) + len(rest) - len(conn.buffer)
        conn.buffer, conn.searched, conn.chunks = bytearray(rest), 0, None
        conn.request, conn.keep_alive = request, keep_alive
        if not self._review(conn):
            self._wait(conn)

    def _wait(self, conn: Connection) -> None:
        """Wait for memory, unread: to read more of a body, or to review a complete request."""
        self._watch(conn, 0)
        conn.phase, conn.deadline = Phase.WAITING, time.monotonic() + MEMORY_WAIT_SECONDS
        self.waiting.append(conn)

    def _admit_waiting(self) -> None:
        """Go on, oldest first, with the waiting connections that fit now (a small request
        need not wait behind a large one that does not fit yet).
        """
        waiting, self.waiting = self.waiting, deque()
        for conn in waiting:
            if conn not in self.connections or conn.phase is not Phase.WAITING:
                continue
            if conn.request:
                if not self._review(conn):
                    self.waiting.append(conn)
            elif self.memory.room(READ_BYTES):
                conn.phase, conn.deadline = Phase.BODY, time.monotonic() + BODY_SECONDS
                self._watch(conn, _READ)
                self._read(conn)
            else:
                self.waiting.append(conn)

    def _review(self, conn: Connection) -> bool:
        """Hand the complete request to a thread, if memory allows; True when handed on."""
        size = len(conn.request)
        head = conn.head
        control = head is not None and head.method in CONTROL_METHODS  # no body to parse
        if not control and self.memory.reviewing and not self.memory.room((EXPANSION - 1) * size):
            return False
        self.memory.held -= size
        self.memory.reviewing += size
        conn.head = None
        conn.phase = Phase.REVIEWING
        pool = self.control if control else self.tpool
        done = pool.submit(self._serve, conn, conn.request)
        done.add_done_callback(lambda future: self.method_queue.defer(self._served, conn, future))
        return True

    def _served(self, conn: Connection, future: futures.Future[tuple[bytes, bool]]) -> None:
        self.memory.reviewing -= len(conn.request)
        conn.request = b""
        if conn not in self.connections:
            return
        try:
            output, keep_alive = future.result()
        except Exception:
            self._close(conn)
            return
        conn.keep_alive = conn.keep_alive and keep_alive and self.alive
        conn.output = memoryview(output)
        conn.phase, conn.deadline = Phase.WRITING, time.monotonic() + WRITE_SECONDS
        self._write(conn)

    def _respond(self, conn: Connection, response: bytes) -> None:
        """Send a response of the event loop's own, then close."""
        self._watch(conn, 0)
        self.memory.held -= len(conn.buffer)
        conn.keep_alive, conn.buffer = False, bytearray()
        conn.output = memoryview(response)
        conn.phase, conn.deadline = Phase.WRITING, time.monotonic() + WRITE_SECONDS
        self._write(conn)

    def _write(self, conn: Connection) -> None:
        while conn.output:
            chunk = conn.output[:READ_BYTES]
            sent = self._attempt(conn, partial(conn.sock.send, chunk), blocked=_WRITE)
            if sent is WAIT:
                return
            conn.output = conn.output[sent:]
        if not conn.keep_alive:
            self._start_linger(conn)
        elif conn.buffer or _pending(conn.sock):
            self._start_head(conn)  # a pipelined request, or one already decrypted
        else:
            conn.phase = Phase.IDLE
            conn.deadline = time.monotonic() + self.cfg.keepalive
            self._watch(conn, _READ)

    def _start_linger(self, conn: Connection) -> None:
        try:
            socket.socket.shutdown(conn.sock, socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.phase, conn.deadline = Phase.LINGERING, time.monotonic() + LINGER_SECONDS
        self._watch(conn, _READ)
        self._linger(conn)

    def _linger(self, conn: Connection) -> None:
        while conn.lingered < LINGER_BYTES:
            try:
                data = socket.socket.recv(conn.sock, READ_BYTES)
            except BlockingIOError:
                return
            except OSError:
                break
            if not data:
                break
            conn.lingered += len(data)
        self._close(conn, counted=False)

    def _close(self, conn: Connection, *, counted: bool = False) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        if counted:
            self.connection_metrics.closed.labels(conn.phase.value).inc()
        self.memory.held -= len(conn.buffer)
        conn.buffer = bytearray()
        if conn.phase is not Phase.REVIEWING:  # else the thread's end gives it back
            self.memory.held -= len(conn.request)
            conn.request = b""
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._watch(conn, 0)
        with contextlib.suppress(OSError):
            conn.sock.close()
        self.nr_conns -= 1
        self._publish()

    def _publish(self) -> None:
        if self.share is not None:
            self.share.publish(len(self.connections))

    # --- a thread's side: the request is complete in memory ------------------------------

    def _serve(self, conn: Connection, request: bytes) -> tuple[bytes, bool]:
        """Run the app on `request`; the response bytes and whether to keep the connection."""
        output = Output()
        parser = http.get_parser(self.cfg, [request], conn.client)
        req = None
        keep_alive = False
        try:
            req = next(parser)
            if req:
                keep_alive = bool(
                    self.handle_request(req, Exchange(output, conn.client, conn.server))
                ) and bool(parser.finish_body())
        except StopIteration:
            pass
        except http.errors.NoMoreData:
            pass
        except Exception as error:  # what gthread answers for a bad request (400, 431, 500)
            self.handle_error(req, output, conn.client, error)
        return output.data(), keep_alive


def _pending(sock: socket.socket) -> bool:
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


def _pending_connection(listener: socket.socket) -> bool:
    """Whether a connection waits to be accepted on `listener`, without waiting."""
    poll = select.poll()
    poll.register(listener, select.POLLIN)
    return bool(poll.poll(0))
