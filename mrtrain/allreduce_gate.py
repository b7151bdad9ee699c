"""The AllReduce port's gate: accepts connections and runs their handshakes on one thread, never blocking.

Anyone who can reach the driver's port can connect to it, so nothing a connection does before it proves it
belongs to the run may hold up the run's own tasks. :class:`Gate` owns the listening socket: one thread
waits (``selectors``) on it and on every connection still in its handshake (*pending*), all non-blocking:

- a new connection is accepted at once and sent its challenge; no read ever waits for one peer;
- a pending connection reads only the bytes of one ``hello`` (its frame checked before the rest is read:
  at most :data:`MAX_HELLO_BYTES`, no payload) and must have sent all of it within
  :data:`HANDSHAKE_SECONDS` of connecting: one deadline for the whole handshake, so a peer trickling a
  byte at a time is dropped as surely as a silent one;
- at most :data:`MAX_PENDING_HANDSHAKES` are pending at once (a file descriptor and a few KiB each). When
  that many are, the oldest is *evicted* to make room for the next connection once it has had
  :data:`PROTECTED_SECONDS` (a real task answers its challenge in milliseconds); until then the next
  connections wait in the kernel's accept queue (:data:`BACKLOG`), in the order they came.

Why this policy, and not the others: refusing new connections when full (what the gate used to do) lets
anyone who holds that many connections open lock every task out for as long as he holds them. Evicting the
oldest at once, however young, lets a flood that reconnects as soon as it is evicted cycle through the
table faster than a task can answer (measured: 200,000 connections a minute against 8 places, and no
task got in). With the protection, a place turns over at most once per :data:`PROTECTED_SECONDS`, so a task
waits in the accept queue behind at most :data:`BACKLOG` others and then has :data:`PROTECTED_SECONDS` to
answer: it gets in after at most ``BACKLOG * PROTECTED_SECONDS / MAX_PENDING_HANDSHAKES`` seconds
(4 s), and the driver is never held behind an unauthenticated peer for longer than that. A flood larger
than the table and the accept queue together makes the kernel drop connection attempts, the task's among
them, as they come; the tasks retry with backoff for the gang timeout (:mod:`mrtrain.mr_jobs.allreduce_job`),
and if one still does not get in, the training's error says how many connections the port refused, and why.

A connection that fails (garbage, a wrong proof, an oversized frame, silence, eviction) is closed without an
answer, as :mod:`mrtrain.mr_jobs.allreduce_wire` promises; the first :data:`LOGGED_REFUSALS` are logged one
by one, and every one is counted by cause (:meth:`Gate.refusals`) for the training's error messages. A
connection that passes is answered ``welcome``, made blocking again and handed to ``admit``.
"""

import errno
import logging
import os
import secrets
import selectors
import socket
import threading
import time
import weakref

from mrtrain.mr_jobs import allreduce_wire as wire

log = logging.getLogger("mrtrain.allreduce")

#: Seconds a connecting peer has for the whole handshake: from connecting to its complete ``hello``.
HANDSHAKE_SECONDS = 10.0
#: Handshakes in progress at once; beyond them a new connection evicts the oldest once it is not protected.
MAX_PENDING_HANDSHAKES = 256
#: Seconds a pending handshake cannot be evicted for.
PROTECTED_SECONDS = 1.0
#: Connections the kernel may queue for the gate to accept (capped by the system's ``somaxconn``).
BACKLOG = 1024
#: Largest ``hello`` JSON header accepted (a real one is about 300 bytes).
MAX_HELLO_BYTES = 4096
#: Refused connections logged one by one (WARNING); later ones are counted and logged at DEBUG.
LOGGED_REFUSALS = 10
#: Longest wait of the gate's thread when no connection is pending.
POLL_SECONDS = 0.5


#: The gates open in this process (see :func:`_close_gates_in_child`).
_GATES = weakref.WeakSet()


def _close_gates_in_child():
    """In a process forked from the driver, close its copies of the gates' sockets.

    mrjob's local runner runs its tasks from a ``multiprocessing`` pool forked after the port was opened. A
    copy of the listener in those processes would outlive a driver that was killed, and the kernel would
    then complete its tasks' connections with nobody to answer them instead of refusing them (which tells a
    task at once that its driver is gone); a copy of a pending connection would keep it open after the gate
    closed it (its peer would see no end of it).
    """
    for gate in list(_GATES):
        for sock in [gate.server, gate._wake_read, gate._wake_write, *list(gate._pending)]:
            try:
                sock.close()
            except OSError:
                pass


os.register_at_fork(after_in_child=_close_gates_in_child)


class _Pending:
    """A connection in its handshake: what it has sent so far, and by when it must have sent a ``hello``."""

    __slots__ = ("sock", "peer", "deadline", "evictable", "nonce", "received", "needed")

    def __init__(self, sock, peer, connected, nonce):
        self.sock, self.peer, self.nonce = sock, peer, nonce
        self.deadline = connected + HANDSHAKE_SECONDS
        self.evictable = connected + PROTECTED_SECONDS
        self.received = bytearray()
        self.needed = wire.FRAME_BYTES  # the frame first; then the frame and the header it announces


class Gate:
    """Accept connections on ``server`` and admit those that prove they belong to the run.

    Parameters
    ----------
    server : socket.socket
        A listening socket; the gate owns it from :meth:`start` and closes it in :meth:`close`.
    secret : str
        The run's secret (hex).
    n_groups : int
        Groups of partitions: a ``hello`` names one in ``0..n_groups - 1``.
    admit : callable
        ``admit(sock, group, hello, peer)``, called on the gate's thread for each connection that passed,
        with the socket blocking again (timeout ``read_timeout``) and the ``hello`` header.
    read_timeout : float
        Seconds a read on an admitted connection may wait.
    """

    def __init__(self, server, secret, n_groups, admit, read_timeout):
        self.server = server
        self.secret = secret
        self.n_groups = n_groups
        self.admit = admit
        self.read_timeout = read_timeout
        self._pending = {}  # socket -> _Pending, oldest first
        self._counts = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._wake_read, self._wake_write = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name="mrtrain-allreduce-gate", daemon=True)

    def start(self):
        _GATES.add(self)
        self.server.setblocking(False)
        self._thread.start()

    def close(self):
        """Stop accepting, close every pending connection and the listening socket."""
        self._closing.set()
        try:
            self._wake_write.send(b"x")
        except OSError:
            pass
        if self._thread.is_alive():
            self._thread.join()
        self._wake_write.close()
        self._wake_read.close()
        self.server.close()

    def refusals(self):
        """``(count, "why: n, ...")`` of the connections refused so far, most frequent cause first."""
        with self._lock:
            counts = sorted(self._counts.items(), key=lambda item: (-item[1], item[0]))
        return sum(n for _, n in counts), ", ".join(f"{why}: {n}" for why, n in counts)

    # -- the gate's thread ---------------------------------------------------------------------------

    def _run(self):
        selector = selectors.DefaultSelector()
        selector.register(self._wake_read, selectors.EVENT_READ)
        listening = False
        try:
            while not self._closing.is_set():
                wait, accepting = self._schedule()
                if accepting != listening:
                    if accepting:
                        selector.register(self.server, selectors.EVENT_READ)
                    else:
                        selector.unregister(self.server)
                    listening = accepting
                events = selector.select(wait)
                # Hellos first: a task whose answer has arrived is never evicted for a newer connection.
                for key, _ in events:
                    if key.fileobj in self._pending:
                        self._read(selector, self._pending[key.fileobj])
                if any(key.fileobj is self.server for key, _ in events):
                    self._accept(selector)
                self._expire(selector)
        finally:
            for pending in list(self._pending.values()):
                self._forget(selector, pending)
                pending.sock.close()
            selector.close()

    def _schedule(self):
        """``(seconds to wait at most, whether to accept)``: accept while there is room, or once the oldest
        pending handshake can be evicted; wake for the oldest's deadline or the end of its protection."""
        oldest = next(iter(self._pending.values()), None)
        if oldest is None:
            return POLL_SECONDS, True
        now = time.monotonic()
        wait = min(POLL_SECONDS, max(0.0, oldest.deadline - now))
        if len(self._pending) < MAX_PENDING_HANDSHAKES or now >= oldest.evictable:
            return wait, True
        return min(wait, oldest.evictable - now), False

    def _accept(self, selector):
        """Accept the connections waiting in the backlog while there is room, and send each its challenge."""
        while not self._closing.is_set():
            oldest = next(iter(self._pending.values()), None)
            if len(self._pending) >= MAX_PENDING_HANDSHAKES and time.monotonic() < oldest.evictable:
                return  # the rest wait in the accept queue until the oldest is protected no more
            try:
                sock, peer = self.server.accept()
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE) and oldest is not None:
                    self._refuse(selector, oldest, "evicted (out of file descriptors)")
                    continue
                log.warning("allreduce: accepting a connection failed: %s", error)
                time.sleep(POLL_SECONDS / 10)
                return
            if len(self._pending) >= MAX_PENDING_HANDSHAKES:
                self._refuse(selector, oldest,
                             f"evicted by a newer connection ({MAX_PENDING_HANDSHAKES} handshakes pending)")
            nonce = secrets.token_bytes(wire.NONCE_BYTES)
            pending = _Pending(sock, peer, time.monotonic(), nonce)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._send(sock, {"type": "challenge", "protocol": wire.PROTOCOL, "nonce": nonce.hex()})
            except OSError as error:
                self._count(pending, f"closed ({error.__class__.__name__})", error)
                sock.close()
                continue
            self._pending[sock] = pending
            selector.register(sock, selectors.EVENT_READ)

    def _read(self, selector, pending):
        """Read what ``pending`` sent, up to one ``hello``; check it once it is whole."""
        try:
            data = pending.sock.recv(pending.needed - len(pending.received))
        except BlockingIOError:
            return
        except OSError as error:
            self._refuse(selector, pending, f"closed ({error.__class__.__name__})", error)
            return
        if not data:
            self._refuse(selector, pending, "closed before its hello",
                         EOFError(f"connection closed, {len(pending.received)} bytes of a hello received"))
            return
        pending.received += data
        try:
            if len(pending.received) == wire.FRAME_BYTES:
                header_bytes, _ = wire.check_frame(bytes(pending.received), MAX_HELLO_BYTES, 0)
                pending.needed = wire.FRAME_BYTES + header_bytes
            if len(pending.received) < pending.needed:
                return
            header = wire.decode_header(pending.received[wire.FRAME_BYTES:])
            group = self._check_hello(header, pending.nonce)
        except wire.ProtocolError as error:
            why = "wrong proof" if "secret" in str(error) else "not the protocol"
            self._refuse(selector, pending, why, error)
            return
        self._forget(selector, pending)
        sock = pending.sock
        try:
            task_nonce = wire.nonce_from(header, "nonce")
            self._send(sock, {"type": "welcome",
                              "mac": wire.driver_mac(self.secret, pending.nonce, task_nonce, group)})
            sock.setblocking(True)
            sock.settimeout(self.read_timeout)
        except OSError as error:
            self._count(pending, f"closed ({error.__class__.__name__})", error)
            sock.close()
            return
        self.admit(sock, group, header, pending.peer)

    def _check_hello(self, header, driver_nonce):
        """The group a ``hello`` proves it belongs to; ProtocolError if it does not."""
        wire.expect(header, "hello")
        group = header.get("group")
        if isinstance(group, bool) or not isinstance(group, int) or not 0 <= group < self.n_groups:
            raise wire.ProtocolError(f"expected a group in 0..{self.n_groups - 1}, found {group!r:.20}")
        task_nonce = wire.nonce_from(header, "nonce")
        expected = wire.task_mac(self.secret, driver_nonce, task_nonce, group)
        if not wire.macs_equal(expected, header.get("mac")):
            raise wire.ProtocolError("the proof does not match this run's secret")
        return group

    def _expire(self, selector):
        now = time.monotonic()
        for pending in list(self._pending.values()):
            if pending.deadline > now:
                break  # oldest first: the rest are younger
            self._refuse(selector, pending, f"no whole hello within {HANDSHAKE_SECONDS:g} s",
                         TimeoutError(f"no whole hello within {HANDSHAKE_SECONDS:g} s of connecting "
                                      f"({len(pending.received)} bytes received)"))

    @staticmethod
    def _send(sock, header):
        """Send one small message on a non-blocking socket whose send buffer is empty: whole, or OSError
        (BlockingIOError if it did not fit)."""
        wire.send_message(sock, header)

    def _forget(self, selector, pending):
        del self._pending[pending.sock]
        selector.unregister(pending.sock)

    def _refuse(self, selector, pending, why, error=None):
        """Close a pending connection without an answer, and count it under ``why``."""
        self._forget(selector, pending)
        pending.sock.close()
        self._count(pending, why, error)

    def _count(self, pending, why, error):
        with self._lock:
            self._counts[why] = self._counts.get(why, 0) + 1
            total = sum(self._counts.values())
        level = logging.WARNING if total <= LOGGED_REFUSALS else logging.DEBUG
        log.log(level, "allreduce: refused a connection from %s: %s", pending.peer, error or why)
        if total == LOGGED_REFUSALS:
            log.warning("allreduce: %d connections refused; further ones are counted, not logged one by one",
                        total)
