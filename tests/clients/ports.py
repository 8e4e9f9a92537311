"""Ports for test brokers, and starting them again when a port picked free was taken anyway.

A port is picked free by binding it and letting it go; the broker binds it a moment later.
In between, something else can take it. Two things can:

- an outgoing connection of any process on the machine, which the kernel gives an
  ephemeral port (`/proc/sys/net/ipv4/ip_local_port_range`, typically 32768-60999).
  `free_port` picks at random from a range below the ephemeral one (20000-32000 unless the
  kernel's range starts lower), so no ephemeral port can ever collide with it;
- another test process (CI and other runs share the machine) picking the same port at the
  same moment. Random picks from 12,000 ports make that rare, and this process never hands
  out a port twice (until it has handed out half the range), but rare is not never: a start
  that fails with "Address already in use" is retried by `start_retrying` (the broker,
  cluster and node helpers in conftest.py and cluster.py say how they retry: fresh ports and
  a fresh data dir on a first start, the same ports with a short backoff on a restart).

This module has no pytest dependency: `chaos.py` uses it through `cluster.py` outside pytest.
"""

import os
import pathlib
import random
import shutil
import socket
import time

# Below the kernel's ephemeral range (see ephemeral_low()); above the ports services use.
PICK_LOW, PICK_HIGH = 20000, 32000
# Candidates tried before giving up (each is a bind; a taken one is rare).
PICK_TRIES = 500
# What a process exiting because its port was taken prints (strom's "cannot listen on
# ADDR: ...: Address already in use", the OS's text for EADDRINUSE).
PORT_TAKEN = "Address already in use"
# Starts in all (the first and the retries) before a port-taken failure is raised.
START_ATTEMPTS = 3
# Seconds before a restart tries its same ports again (times the attempt number).
RESTART_BACKOFF_S = 0.5

# A generator of its own, seeded from the OS: test processes started at the same moment (CI
# and engineers share the machine) must not walk the same sequence of ports.
_rng = random.Random(os.urandom(16))
_given = set()


def ephemeral_low(path="/proc/sys/net/ipv4/ip_local_port_range"):
    """The lowest port the kernel gives outgoing connections (32768 when it cannot be read)."""
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _pick_range():
    low, high = PICK_LOW, min(PICK_HIGH, ephemeral_low() - 1)
    if high - low < 1000:
        # An unusual kernel range starting below 21000: pick below it, from 1024 up.
        low, high = 1024, ephemeral_low() - 1
    if high - low < 100:
        raise RuntimeError(
            f"the kernel's ephemeral port range starts at {ephemeral_low()} "
            "(/proc/sys/net/ipv4/ip_local_port_range): no room below it for test ports; raise it"
        )
    return low, high


def _binds(port):
    """Whether `port` can be bound on 127.0.0.1 now (no SO_REUSEADDR: a port still in
    TIME_WAIT counts as taken, which is stricter than the broker's own bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n):
    """n distinct ports, each free when picked, below the kernel's ephemeral range, none
    handed out before by this process (see the module doc)."""
    low, high = _pick_range()
    if len(_given) > (high - low) // 2:
        _given.clear()
    picked = []
    for _ in range(PICK_TRIES):
        if len(picked) == n:
            break
        port = _rng.randint(low, high)
        if port in _given or not _binds(port):
            continue
        _given.add(port)
        picked.append(port)
    if len(picked) < n:
        raise RuntimeError(f"found only {len(picked)} of {n} free ports in {low}-{high} after {PICK_TRIES} tries: "
                           "is something holding most of them? (ss -ltn)")
    return picked


def free_port():
    """One port, as free_ports(1)."""
    return free_ports(1)[0]


def port_taken(error):
    """Whether a start failed because a port was taken (the failure's text says so)."""
    return PORT_TAKEN in str(error)


def start_retrying(start, before_retry, attempts=START_ATTEMPTS):
    """start(); if it fails because a port was taken (port_taken), before_retry(attempt)
    then start() again, `attempts` starts in all. Any other failure, and the last one, is
    raised as it is (its text holds the process's output)."""
    for attempt in range(1, attempts + 1):
        try:
            return start()
        except Exception as e:  # noqa: BLE001 (re-raised unless it is a taken port)
            if not port_taken(e) or attempt == attempts:
                raise
            before_retry(attempt)


def restart_backoff(attempt):
    """The pause before a restart tries its own ports again (it cannot move: its ports are
    in its data, its clients' bootstrap and its peers' config). Whoever took a port that was
    the broker's a moment ago may let it go soon: a test of another process that picked it
    while the broker was down and fails to bind it itself, or a socket being closed."""
    time.sleep(RESTART_BACKOFF_S * attempt)


def empty_dir(path):
    """Removes everything in directory `path`, for a start again from nothing after a failed
    first start; `path` itself stays (it may be a mount point). No directory: nothing to do."""
    path = pathlib.Path(path)
    if not path.is_dir():
        return
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
