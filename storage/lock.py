"""An exclusive lock on a checkpoint directory, so that two trainers never write into the same one.

The lock is the file ``_mrtrain.lock`` in the directory, created with create-exclusive semantics (a hard
link of a complete temporary file on local disk; WebHDFS ``CREATE`` with ``overwrite=false`` on HDFS). It
holds one JSON object naming its holder: ``owner`` (user), ``host``, ``pid``, ``started`` (UTC, ISO 8601),
a random ``token``, the holder's PID namespace (``pid_namespace``, so that two containers that share a
host name are not taken for one host), its process's start time (``pid_start``) and the length of its
lease (``lease_s``). The holder deletes it when
it is done, also after an error.

**Lease.** While it holds the lock, the holder renews its lease: every ``lease_s / 6`` seconds a background
thread sets the lock file's modification time to now (:meth:`FileSystem.touch`) after checking that the
lock still carries its token. A run whose lease was broken meanwhile finds out there, or at the latest when
it next calls :meth:`DirectoryLock.check_held` (the trainer does before every checkpoint), and stops.

A lock left by a run that was killed is *stale*:

- when its host and PID namespace are this process's and its process no longer exists, or that pid now
  names a process that started at another time (``pid_start``: the pid was reused, or the namespace of a
  container that ended was given to a new one), it is provably stale at once;
- when its process is on another host or in another container, the next run watches the lock for
  up to ``lease_s`` seconds of its own clock: a live holder renews it within ``lease_s / 6`` seconds, and
  the lock is refused; a lock that is not renewed for ``lease_s`` seconds is stale. A lock whose last
  renewal is older than twice its lease by this host's clock is stale without watching (clocks of a
  cluster agree far better than that).

So rerunning a killed command just works, on any host, after at most ``lease_s`` seconds (logged). A lock
held by a live process, or unreadable, is refused with a :class:`CheckpointLockedError` naming the holder;
if you are sure that run is gone, pass ``break_lock=True`` (``mrtrain train ... --break-lock``) or delete
the file. Locks written without a lease (older versions) cannot be watched: held on another host they are
refused, as before.

Whatever is at the lock's path is judged without trusting it: a lock file larger than :data:`MAX_LOCK_BYTES`,
not JSON, not a regular file (a directory, a FIFO, a dangling symlink) or with fields of the wrong type (a
pid that cannot be a process id) is *unreadable*, which is refused like a live holder; ``break_lock``
removes whatever is there.
"""

import datetime
import getpass
import json
import logging
import os
import socket
import threading
import time
import uuid

from mrtrain.storage.filesystem import absolute, get_filesystem, join, temp_sibling

logger = logging.getLogger(__name__)

LOCK_NAME = "_mrtrain.lock"
FORMAT = "mrtrain-lock"
#: Largest lock file read (a holder is about 200 bytes).
MAX_LOCK_BYTES = 4096
#: Largest process id of any POSIX system (``pid_t`` is a signed 32-bit int).
MAX_PID = 2**31 - 1
#: Attempts to create the lock while the lock found in the way vanishes before it can be read.
ATTEMPTS = 5
#: Fields of a lock holder and their types.
HOLDER_FIELDS = {"owner": str, "host": str, "pid": int, "started": str, "token": str}
#: Seconds a holder's lease lasts without renewal; it renews every sixth of that.
LEASE_SECONDS = 30.0
#: A lease this many times older than its length is stale without watching it.
EXPIRED_FACTOR = 2
BREAK_HINT = "rerun with --break-lock (Python: break_lock=True) or delete {uri}"


class CheckpointLockedError(OSError):
    """Another run holds (or may hold) the lock on a checkpoint directory."""


def process_start(pid):
    """Start time of process ``pid`` (clock ticks since boot, /proc/PID/stat field 22), or None if unknown.

    With the pid it names one process for as long as the machine runs: a pid reused later, or a pid
    namespace number reused by a later container, has another start time.
    """
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_namespace():
    """This process's PID namespace (``pid:[4026531836]``), or '' where /proc does not tell."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def pid_alive(pid):
    """Return True if a process with id ``pid`` exists on this host (or cannot be checked)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= MAX_PID:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(holder):
    """One-line description of a lock holder, e.g. ``pid 42 of alice on host h since 2024-...``."""
    return (f"pid {holder.get('pid')!r} of {holder.get('owner')!r} on host {holder.get('host')!r} "
            f"since {holder.get('started')!r}")


class DirectoryLock:
    """Exclusive lock on ``directory``; use as a context manager around everything that writes there.

    Parameters
    ----------
    directory : str
        Local path or ``hdfs://`` URI; created if missing (and removed again on release if it was created
        here and is still empty). A relative path is made absolute here (:func:`absolute`): the lease
        thread must not depend on the working directory.
    break_lock : bool
        Take the lock even if another run seems to hold it. Default: False.
    lease : float, optional
        Seconds the lease lasts without renewal (see the module docstring). Default: :data:`LEASE_SECONDS`
        (read when the lock is made).
    """

    def __init__(self, directory, *, break_lock=False, lease=None):
        # Absolute: the lease thread reads it while the inline runner changes the working directory.
        self.directory = absolute(str(directory))
        self.uri = join(self.directory, LOCK_NAME)
        self.break_lock = bool(break_lock)
        self.fs = get_filesystem(self.uri)
        self.token = uuid.uuid4().hex
        self.created_directory = False
        self.held = False
        self.lease = float(LEASE_SECONDS if lease is None else lease)
        self.lost = None
        self._renewed = 0.0  # time.monotonic() of the last check that the lock carries our token
        self._stop_renewing = threading.Event()
        self._renewer = None

    def _payload(self):
        return json.dumps({
            "format": FORMAT, "owner": getpass.getuser(), "host": socket.gethostname(), "pid": os.getpid(),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "token": self.token, "pid_namespace": pid_namespace(), "pid_start": process_start(os.getpid()),
            "lease_s": self.lease,
        }, sort_keys=True).encode()

    def read_holder(self, uri=None):
        """The holder recorded in the lock file: a dict, ``{}`` if unreadable, None if there is no lock."""
        holder, _ = self._inspect(uri or self.uri)
        return holder

    def _inspect(self, uri):
        """``(holder, problem)``: the holder (None: nothing there, ``{}``: unreadable) and why unreadable."""
        try:
            data = self.fs.read_bytes(uri, max_bytes=MAX_LOCK_BYTES)
        except FileNotFoundError:
            return None, None
        except (ConnectionError, TimeoutError):
            raise
        except IsADirectoryError:
            return {}, "expected a file, found a directory"
        except (OSError, ValueError) as exc:
            return {}, " ".join(str(exc).removeprefix(f"{uri}: ").split())
        try:
            holder = json.loads(data)
        except RecursionError:
            return {}, "expected a JSON object, found values nested too deeply"
        except ValueError:
            return {}, f"expected a JSON object, found {data[:40]!r}"
        if not isinstance(holder, dict) or holder.get("format") != FORMAT:
            return {}, f"expected a JSON object with \"format\": {FORMAT!r}, found {data[:40]!r}"
        for name, kind in HOLDER_FIELDS.items():
            value = holder.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                return {}, f"field {name!r}: expected {kind.__name__}, found {json.dumps(value)[:40]}"
        if not 0 < holder["pid"] <= MAX_PID:
            return {}, f"field 'pid': expected a process id in [1, {MAX_PID}], found {holder['pid']}"
        started = holder.get("pid_start")
        if started is not None and (isinstance(started, bool) or not isinstance(started, int) or started < 0):
            return {}, f"field 'pid_start': expected clock ticks >= 0, found {json.dumps(started)[:40]}"
        lease = holder.get("lease_s")
        if lease is not None and (isinstance(lease, bool) or not isinstance(lease, int | float)
                                  or not 0 < lease < 10**6):
            return {}, f"field 'lease_s': expected seconds in (0, 1e6), found {json.dumps(lease)[:40]}"
        return holder, None

    def _try_create(self):
        try:
            self.fs.create_exclusive(self.uri, self._payload())
        except FileExistsError:
            holder = self.read_holder()
            return holder is not None and holder.get("token") == self.token
        return True

    def acquire(self):
        """Take the lock.

        Raises
        ------
        CheckpointLockedError
            If another run holds the lock (see the module docstring for what counts as stale).
        """
        if not self.fs.isdir(self.directory):
            self.fs.makedirs(self.directory)
            self.created_directory = True
        for _ in range(ATTEMPTS):
            if self._try_create():
                return self._hold()
            holder, problem = self._inspect(self.uri)
            if holder is not None:
                break
        else:
            # Creating fails but nothing readable is there: a dangling symlink, say.
            holder, problem = {}, "something that is not a readable file is in the way (a dangling symlink?)"
        reason = self._refusal(holder, problem)
        if reason is not None and not self.break_lock and self._lease_may_expire(holder):
            reason = self._watch_lease(holder, reason)
        if reason is not None and not self.break_lock:
            self.release()
            raise CheckpointLockedError(
                f"{self.directory}: checkpoint directory is locked: {reason}; if that run is "
                f"gone, " + BREAK_HINT.format(uri=self.uri)
            )
        what = "breaking the lock" if reason is not None else "taking over the stale lock"
        logger.warning("%s: %s of %s", self.uri, what,
                       describe(holder) if holder else f"an unknown run ({problem})")
        self._remove_stale(holder)
        if not self._try_create():
            raise CheckpointLockedError(
                f"{self.directory}: checkpoint directory is locked: another run took the lock "
                f"at the same time: {describe(self.read_holder() or {})}"
            )
        return self._hold()

    def _hold(self):
        self.held = True
        self.lost = None
        self._renewed = time.monotonic()
        self._stop_renewing.clear()
        self._renewer = threading.Thread(target=self._renew, name=f"lease {self.uri}", daemon=True)
        self._renewer.start()
        return self

    def _renew(self):
        """Renew the lease until released; record (in ``lost``) a lock that another run took over."""
        while not self._stop_renewing.wait(self.lease / 6):
            try:
                holder = self.read_holder()
                if holder is None or holder.get("token") != self.token:
                    self.lost = f"the lock was broken by another run: {describe(holder or {})}"
                    logger.warning("%s: %s", self.uri, self.lost)
                    return
                self.fs.touch(self.uri)
                self._renewed = time.monotonic()
            except (OSError, ValueError) as exc:  # a transient failure: the next renewal retries
                logger.warning("%s: could not renew the lease: %s", self.uri, exc)

    def check_held(self):
        """Raise :class:`CheckpointLockedError` if this run no longer holds the lock (its lease was
        broken); call before writing into the directory.

        The renewals check the token every ``lease / 6`` seconds; only when none has succeeded for half a
        lease (a slow or failing filesystem) is the lock read here, so a pass costs no extra read.
        """
        if not self.held:
            return
        if self.lost is None and time.monotonic() - self._renewed > self.lease / 2:
            holder = self.read_holder()
            if holder is None or holder.get("token") != self.token:
                self.lost = f"the lock was broken by another run: {describe(holder or {})}"
        if self.lost is not None:
            raise CheckpointLockedError(f"{self.directory}: checkpoint directory no longer ours: {self.lost}")

    @staticmethod
    def _refusal(holder, problem=None):
        """Why ``holder`` must be respected, or None if it is provably stale."""
        if not holder:
            return "the lock file is unreadable (no holder recorded)" + (f": {problem}" if problem else "")
        if holder.get("host") != socket.gethostname():
            return f"held by {describe(holder)}; a process on another host cannot be checked from here"
        namespace = holder.get("pid_namespace")
        if isinstance(namespace, str) and namespace != pid_namespace():
            return f"held by {describe(holder)} in another PID namespace (container), not checkable from here"
        if not pid_alive(holder.get("pid")):
            return None
        started = holder.get("pid_start")
        if isinstance(started, int) and not isinstance(started, bool):
            now = process_start(holder["pid"])
            if now is not None and now != started:
                return None  # the pid (or the namespace of a container that ended) was reused
        return f"held by {describe(holder)}, which is still running"

    @staticmethod
    def _lease_may_expire(holder):
        """True if ``holder`` has a lease and its process cannot be checked from here (another host or
        PID namespace): only then is its lease watched. A holder whose process can be checked is judged
        by its process alone."""
        if not holder or holder.get("lease_s") is None:
            return False
        namespace = holder.get("pid_namespace")
        return holder.get("host") != socket.gethostname() or (
            isinstance(namespace, str) and namespace != pid_namespace())

    def _watch_lease(self, holder, reason):
        """Watch ``holder``'s lease: None (stale) if it is not renewed for its length, else ``reason``."""
        lease = float(holder["lease_s"])
        try:
            first = self.fs.stat(self.uri).mtime_ns
        except FileNotFoundError:
            return None  # released meanwhile
        age = time.time() - first / 1e9
        if age > EXPIRED_FACTOR * lease:
            logger.warning("%s: the lease of %s expired %.0f s ago", self.uri, describe(holder), age - lease)
            return None
        logger.warning("%s: %s; waiting up to %.0f s to see whether it renews its lease", self.uri, reason,
                       lease)
        deadline = time.monotonic() + lease
        while time.monotonic() < deadline:
            time.sleep(min(1.0, lease / 12))
            try:
                stat = self.fs.stat(self.uri)
            except FileNotFoundError:
                return None
            if stat.mtime_ns != first or (self.read_holder() or {}).get("token") != holder.get("token"):
                return f"{reason}, and it renewed its lease just now"
        logger.warning("%s: %s did not renew its lease for %.0f s: stale", self.uri, describe(holder), lease)
        return None

    def _remove_stale(self, holder):
        """Move the stale lock aside (atomic: of two runs doing this, one fails) and delete it.

        If what was moved is not the lock that was judged stale, someone took the lock meanwhile: put it
        back and refuse.
        """
        aside = temp_sibling(self.uri)
        try:
            self.fs.rename(self.uri, aside)
        except FileNotFoundError:
            return
        moved = self.read_holder(aside) or {}
        if moved.get("token") != holder.get("token"):
            self.fs.rename(aside, self.uri)
            raise CheckpointLockedError(
                f"{self.directory}: checkpoint directory is locked: another run took the lock "
                f"at the same time: {describe(moved)}"
            )
        self.fs.delete(aside, recursive=True)

    def release(self):
        """Delete the lock if this object holds it; remove the directory if it was created here and is
        empty. Never raises for a lock that was broken meanwhile (logs a warning)."""
        if self.held:
            self.held = False
            self._stop_renewing.set()
            if self._renewer is not None:
                self._renewer.join()
                self._renewer = None
            holder = self.read_holder()
            if holder is not None and holder.get("token") == self.token:
                self.fs.delete(self.uri)
            else:
                logger.warning("%s: the lock was broken by another run while this one held it", self.uri)
        if self.created_directory and self.fs.isdir(self.directory) and not self.fs.listdir(self.directory):
            self.fs.delete(self.directory)
            self.created_directory = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()
