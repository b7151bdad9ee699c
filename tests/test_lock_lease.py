"""The checkpoint lock's lease: a killed holder in another container or on another host is taken over
after its lease runs out; a live one, which renews it, is refused; a run whose lease was broken stops.

Leases here are about a second long (``DirectoryLock(..., lease=...)``) so that the tests are quick; the
default is :data:`mrtrain.storage.lock.LEASE_SECONDS`.
"""

import json
import os
import socket
import threading
import time
import uuid

import pytest

from mrtrain.storage.filesystem import get_filesystem, join
from mrtrain.storage.lock import (
    LOCK_NAME,
    CheckpointLockedError,
    DirectoryLock,
    pid_namespace,
    process_start,
)

LEASE = 1.2


def foreign_holder(directory, *, lease=LEASE, host=None, namespace="pid:[1]", pid=1):
    """Write the lock of a run in another PID namespace (a container) or on another host."""
    holder = {"format": "mrtrain-lock", "owner": "someone", "host": host or socket.gethostname(),
              "pid": pid, "started": "2026-01-01T00:00:00+00:00", "token": uuid.uuid4().hex,
              "pid_namespace": namespace, "lease_s": lease}
    fs = get_filesystem(directory)
    fs.makedirs(directory)
    fs.write_bytes(join(directory, LOCK_NAME), json.dumps(holder).encode())
    return holder


def renewing(directory, stop, every=LEASE / 6):
    """Renew the lock at ``directory`` the way a live holder does, until ``stop`` is set."""
    fs = get_filesystem(directory)
    while not stop.wait(every):
        fs.touch(join(directory, LOCK_NAME))


def test_pid_namespace_and_process_start_are_read_from_proc():
    assert pid_namespace().startswith("pid:[")
    assert process_start(os.getpid()) > 0
    assert process_start(1) <= process_start(os.getpid())
    assert process_start(2**31 - 1) is None


@pytest.mark.parametrize(("offset", "stale"), [(0, False), (1, True)])
def test_a_reused_pid_in_this_namespace_is_stale_at_once(tmp_path, offset, stale):
    """A container that ended leaves a lock naming its pid 1 and namespace; a new container may get the
    same namespace number and pid, but not the same process start time."""
    directory = str(tmp_path / "ck")
    holder = foreign_holder(directory, namespace=pid_namespace(), pid=os.getpid())
    holder["pid_start"] = process_start(os.getpid()) + offset
    (tmp_path / "ck" / LOCK_NAME).write_text(json.dumps(holder))
    started = time.monotonic()
    if stale:
        with DirectoryLock(directory, lease=30.0):
            assert time.monotonic() - started < 1
    else:
        with pytest.raises(CheckpointLockedError, match="which is still running"):
            DirectoryLock(directory, lease=30.0).acquire()


@pytest.mark.parametrize("where", ["container", "host"])
def test_a_killed_holder_elsewhere_is_taken_over_after_its_lease(tmp_path, where, caplog):
    directory = str(tmp_path / "ck")
    foreign_holder(directory, **({"host": "elsewhere"} if where == "host" else {}))
    started = time.monotonic()
    with DirectoryLock(directory, lease=LEASE) as lock:
        waited = time.monotonic() - started
        holder = json.loads((tmp_path / "ck" / LOCK_NAME).read_text())
        assert holder["token"] == lock.token
    assert LEASE <= waited < LEASE + 2
    assert "waiting up to 1 s to see whether it renews its lease" in caplog.text
    assert "did not renew its lease for 1 s: stale" in caplog.text
    assert os.listdir(tmp_path / "ck") == []  # released


def test_a_holder_elsewhere_that_renews_its_lease_is_refused(tmp_path):
    directory = str(tmp_path / "ck")
    holder = foreign_holder(directory, host="elsewhere")
    stop = threading.Event()
    renewer = threading.Thread(target=renewing, args=(directory, stop))
    renewer.start()
    try:
        with pytest.raises(CheckpointLockedError, match=r"another host cannot be checked from here, and it "
                                                       r"renewed its lease just now; if that run is gone"):
            DirectoryLock(directory, lease=LEASE).acquire()
    finally:
        stop.set()
        renewer.join()
    assert json.loads((tmp_path / "ck" / LOCK_NAME).read_text())["token"] == holder["token"]


def test_a_lease_long_expired_is_stale_without_waiting(tmp_path, caplog):
    directory = str(tmp_path / "ck")
    foreign_holder(directory, lease=30.0)
    hour_ago = time.time() - 3600
    os.utime(tmp_path / "ck" / LOCK_NAME, (hour_ago, hour_ago))
    started = time.monotonic()
    with DirectoryLock(directory, lease=LEASE):
        assert time.monotonic() - started < 1
    assert "expired" in caplog.text


def test_the_holder_renews_its_lease_while_it_holds_the_lock(tmp_path):
    directory = str(tmp_path / "ck")
    with DirectoryLock(directory, lease=0.6):
        lock_file = tmp_path / "ck" / LOCK_NAME
        first = lock_file.stat().st_mtime_ns
        time.sleep(0.5)
        assert lock_file.stat().st_mtime_ns > first
        holder = json.loads(lock_file.read_text())
    assert holder["lease_s"] == 0.6 and holder["pid_namespace"] == pid_namespace()


def test_a_run_whose_lock_was_broken_stops_before_writing(tmp_path, caplog):
    directory = str(tmp_path / "ck")
    lock = DirectoryLock(directory, lease=0.6).acquire()
    lock.check_held()  # still ours
    thief = DirectoryLock(directory, break_lock=True, lease=0.6).acquire()
    time.sleep(0.3)
    with pytest.raises(CheckpointLockedError, match=r"checkpoint directory no longer ours: the lock was "
                                                    r"broken by another run: pid"):
        lock.check_held()
    lock.release()  # leaves the thief's lock alone
    assert json.loads((tmp_path / "ck" / LOCK_NAME).read_text())["token"] == thief.token
    thief.release()
    assert "the lock was broken by another run" in caplog.text


@pytest.mark.parametrize("field", ["pid_start", "lease_s"])
def test_a_lock_with_a_bad_start_or_lease_is_unreadable(tmp_path, field):
    directory = str(tmp_path / "ck")
    holder = foreign_holder(directory)
    holder[field] = -5
    (tmp_path / "ck" / LOCK_NAME).write_text(json.dumps(holder))
    with pytest.raises(CheckpointLockedError, match=rf"the lock file is unreadable.*field '{field}'"):
        DirectoryLock(directory, lease=LEASE).acquire()


@pytest.mark.parametrize("lease", ["30", True, -1, 1e9, None])
def test_a_lock_with_a_bad_lease_field_is_unreadable_and_refused(tmp_path, lease):
    directory = str(tmp_path / "ck")
    holder = foreign_holder(directory)
    holder["lease_s"] = lease
    (tmp_path / "ck" / LOCK_NAME).write_text(json.dumps(holder))
    if lease is None:  # a lock without a lease (older versions): judged by its process alone
        with pytest.raises(CheckpointLockedError, match="in another PID namespace"):
            DirectoryLock(directory, lease=LEASE).acquire()
        return
    with pytest.raises(CheckpointLockedError, match=r"the lock file is unreadable.*field 'lease_s'"):
        DirectoryLock(directory, lease=LEASE).acquire()


@pytest.mark.hadoop
def test_the_lease_on_hdfs(hadoop_cluster, caplog):
    directory = f"{hadoop_cluster['MRTRAIN_HDFS_URL']}/user/{hadoop_cluster['MRTRAIN_HDFS_USER']}/" \
                f"lease-{uuid.uuid4().hex[:8]}"
    fs = get_filesystem(directory)
    foreign_holder(directory, host="elsewhere")
    with DirectoryLock(directory, lease=LEASE) as lock:
        first = fs.stat(join(directory, LOCK_NAME)).mtime_ns
        time.sleep(0.6)
        assert fs.stat(join(directory, LOCK_NAME)).mtime_ns > first  # renewed over WebHDFS SETTIMES
        lock.check_held()
    assert "did not renew its lease" in caplog.text
    assert fs.listdir(directory) == []  # released
    fs.delete(directory, recursive=True)
