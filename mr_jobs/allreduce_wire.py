"""The AllReduce wire format between the training driver and its map tasks, both sides of the handshake.

A *message* is a fixed 16-byte frame header, a small JSON header and a payload of raw little-endian float64
values::

    b"MRAR" | uint32 JSON length | uint64 payload length | JSON object (UTF-8) | payload bytes

Both lengths are checked against the reader's limits before anything else is read: a JSON header is at most
:data:`MAX_HEADER_BYTES`, and a payload at most what the reader expects (the driver knows the exact length of
every answer; a task accepts at most :data:`MAX_POINTS_BYTES` of parameter points). The JSON header is an
object whose ``"type"`` names the message. Nothing is ever unpickled.

Handshake: the driver sends ``challenge`` (a fresh random nonce); the task answers ``hello`` with its group,
its own nonce and ``HMAC-SHA256(secret, "task" | driver nonce | task nonce | group)``; the driver checks it
(constant-time) before it registers the connection, and answers ``welcome`` with
``HMAC-SHA256(secret, "driver" | task nonce | driver nonce | group)``, which the task checks in turn. The
secret is 32 random bytes per training run, in a file only the run's user can read, which the driver writes
and the tasks read themselves (never in the task file or on a command line). A connection
that fails any check, or does not complete its ``hello`` within the driver's deadline for the whole
handshake, is closed without an answer, so a stranger learns nothing and changes nothing, and a recorded
handshake cannot be replayed (the nonces are fresh).
"""

import hashlib
import hmac
import json
import secrets
import socket
import struct
import time

import numpy as np

#: First bytes of every frame.
MAGIC = b"MRAR"
#: Version of this format; the driver sends it in ``challenge``.
PROTOCOL = 1
_FRAME = struct.Struct("<4sIQ")
#: Bytes of the frame before the JSON header.
FRAME_BYTES = _FRAME.size
_FLOAT = np.dtype("<f8")
#: Largest JSON header either side accepts.
MAX_HEADER_BYTES = 64 * 1024
#: Largest parameter-point payload a task accepts (the optimizer's trial points, m × p float64).
MAX_POINTS_BYTES = 2**33
#: Most buffers one ``sendmsg`` call gathers (within every system's ``IOV_MAX``).
_MAX_BUFFERS = 512
#: Bytes of the random secret and of each nonce.
SECRET_BYTES = NONCE_BYTES = 32


class ProtocolError(ConnectionError):
    """The peer sent something that is not a valid message."""


def new_secret():
    """A fresh per-run secret, as the hex string stored in the task file."""
    return secrets.token_hex(SECRET_BYTES)


def _mac(secret_hex, role, first_nonce, second_nonce, group):
    message = b"\0".join([role.encode(), first_nonce, second_nonce, str(int(group)).encode()])
    return hmac.new(bytes.fromhex(secret_hex), message, hashlib.sha256).hexdigest()


def task_mac(secret_hex, driver_nonce, task_nonce, group):
    """The proof a task sends in ``hello``."""
    return _mac(secret_hex, "task", driver_nonce, task_nonce, group)


def driver_mac(secret_hex, driver_nonce, task_nonce, group):
    """The proof the driver sends in ``welcome``."""
    return _mac(secret_hex, "driver", task_nonce, driver_nonce, group)


def macs_equal(expected, found):
    """Constant-time comparison of two hex MACs (anything but a str is unequal)."""
    return isinstance(found, str) and hmac.compare_digest(expected.encode(), found.encode("utf-8", "replace"))


def nonce_from(header, key):
    """The nonce under ``key`` of a received header as bytes; ProtocolError if it is not one."""
    value = header.get(key)
    try:
        nonce = bytes.fromhex(value)
    except (TypeError, ValueError):
        nonce = b""
    if len(nonce) != NONCE_BYTES:
        raise ProtocolError(f"expected a {NONCE_BYTES}-byte hex nonce in {key!r}, found {value!r:.80}")
    return nonce


def send_message(sock, header, payload=None):
    """Send one message: ``header`` (a JSON-able dict with ``"type"``) and an optional float64 payload.

    ``payload`` is one array or a list of arrays, sent one after another as one payload. The frame and the
    arrays' buffers go to the socket together (:func:`_send_buffers`), the arrays as they are (C-contiguous
    little-endian float64 arrays are not copied), so a message never holds a second copy of its payload.
    """
    body = json.dumps(header, separators=(",", ":")).encode("utf-8")
    parts = [] if payload is None else payload if isinstance(payload, list) else [payload]
    parts = [np.ascontiguousarray(part, dtype=_FLOAT) for part in parts]
    frame = _FRAME.pack(MAGIC, len(body), sum(part.nbytes for part in parts)) + body
    _send_buffers(sock, [frame, *(part.reshape(-1).view(np.uint8) for part in parts if part.size)])


def _send_buffers(sock, buffers):
    """Send ``buffers`` in order as one byte stream, as ``sendall`` of their concatenation would: gathered
    by ``sendmsg``, so a message that fits the socket's buffer leaves in one call, as a whole."""
    views = [memoryview(buffer) for buffer in buffers]
    while views:
        sent = sock.sendmsg(views[:_MAX_BUFFERS])
        while views and sent >= len(views[0]):
            sent -= len(views.pop(0))
        if sent:
            views[0] = views[0][sent:]


def _receive_exactly(sock, size, deadline=None):
    """``size`` bytes from ``sock``, received into one buffer (a bytearray), by ``deadline`` if given."""
    buffer = bytearray(size)
    view, received = memoryview(buffer), 0
    while received < size:
        _wait_until(sock, deadline)
        count = sock.recv_into(view[received:], min(size - received, 1 << 20))
        if not count:
            raise EOFError(f"connection closed mid-message, {size - received} of {size} bytes unread")
        received += count
    return buffer


def _wait_until(sock, deadline):
    """Let the next ``recv`` on ``sock`` wait only until ``deadline`` (``time.monotonic()``); None: as set."""
    if deadline is None:
        return
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the message did not arrive in time")
    sock.settimeout(left)


def check_frame(frame, max_header_bytes, max_payload_bytes):
    """The JSON header's and the payload's lengths announced by a 16-byte ``frame``, checked.

    Raises
    ------
    ProtocolError
        A frame without the magic, or a length over its limit, or a payload of not whole float64 values.
    """
    magic, header_bytes, payload_bytes = _FRAME.unpack(frame)
    if magic != MAGIC:
        raise ProtocolError(f"expected a frame starting {MAGIC!r}, found {magic!r}")
    if header_bytes > max_header_bytes:
        raise ProtocolError(
            f"expected a JSON header of at most {max_header_bytes} bytes, found {header_bytes}"
        )
    if payload_bytes > max_payload_bytes or payload_bytes % _FLOAT.itemsize:
        raise ProtocolError(
            f"expected a payload of whole float64 values, at most {max_payload_bytes} bytes, found "
            f"{payload_bytes}"
        )
    return header_bytes, payload_bytes


def decode_header(body):
    """The JSON header in ``body`` (bytes): a dict with a str ``"type"``; ProtocolError otherwise."""
    try:
        header = json.loads(bytes(body).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ProtocolError(f"expected a JSON header, found one that does not parse ({error})") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("expected a JSON object with a 'type', found another value")
    return header


def receive_message(sock, max_payload_bytes, deadline=None):
    """Read one message, checking its frame against the limits before reading the rest.

    Parameters
    ----------
    sock : socket.socket
    max_payload_bytes : int
        Largest payload accepted.
    deadline : float, optional
        ``time.monotonic()`` by which the whole message must have arrived (a peer sending it a byte at a
        time cannot hold the reader longer). Without it every read waits up to the socket's timeout.

    Returns
    -------
    header : dict
        With a str ``"type"``.
    payload : ndarray, shape (k,), float64
        Empty without a payload; a view of the one buffer the payload was received into.

    Raises
    ------
    EOFError
        The peer closed the connection (also in the middle of a message).
    ProtocolError
        A bad frame, a length over the limits, a header that is not a JSON object with a ``"type"``, or a
        payload that is not whole float64 values.
    TimeoutError
        Nothing arrived within the socket's timeout, or the message not by ``deadline``.
    """
    _wait_until(sock, deadline)
    first = sock.recv(FRAME_BYTES)
    if not first:
        raise EOFError("connection closed")
    frame = first + _receive_exactly(sock, FRAME_BYTES - len(first), deadline)
    header_bytes, payload_bytes = check_frame(frame, MAX_HEADER_BYTES, max_payload_bytes)
    header = decode_header(_receive_exactly(sock, header_bytes, deadline))
    payload = np.frombuffer(_receive_exactly(sock, payload_bytes, deadline), dtype=_FLOAT)
    return header, payload


def expect(header, message_type):
    """Raise ProtocolError unless ``header`` is a ``message_type`` message."""
    if header["type"] != message_type:
        raise ProtocolError(f"expected a {message_type!r} message, found {header['type']!r:.40}")


def connect(address, timeout):
    """A TCP connection to ``(host, port)`` with ``timeout`` for the connect and for every read."""
    sock = socket.create_connection(address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
