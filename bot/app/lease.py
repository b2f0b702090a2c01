"""One process per HEARTH_INSTANCE_NAME on a database: a lease row, renewed while it runs.

Processes sharing a PostgreSQL database tell their messages apart by instance name
(`Conversations.claim_pending`); two with the same name took each other's messages
(one died with a KeyError). At start-up, before the model loads, Hearth claims the
lease `instance:NAME` (`bot.store.Leases`) for LEASE_TTL_S, and renews it every
RENEW_EVERY_S. A live holder refuses the start (one line naming it, exit 2). A
holder that is gone frees the lease at its expiry, or at once when it ran on this
host (its pid is not alive: a `kill -9` and a restart). A holder that finds its lease
taken (its renewals failed past the expiry, and another took over) stops.
SQLite's pid file (`bot.app.pidfile`) already keeps a second process off its file;
the lease is the same promise where the database is shared.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psutil

from bot.errors import ConfigError, StoreUnavailableError
from bot.store import Lease, Leases
from bot.store.faults import patience
from bot.tasks import TaskOwner

log = logging.getLogger(__name__)

LEASE_TTL_S = 30.0
RENEW_EVERY_S = 10.0
CLAIM_PATIENCE_S = 10.0
PREFIX = "instance:"


class InstanceLease:
    """This process's hold on its instance name; `lost` is set if another process took it."""

    def __init__(self, store: Leases, instance: str, *, ttl_s: float = LEASE_TTL_S,
                 renew_s: float = RENEW_EVERY_S) -> None:
        self._store = store
        self._instance = instance
        self._name = PREFIX + instance
        self._ttl_s = ttl_s
        self._renew_s = renew_s
        # host:pid:start time:a token (two apps in one process are two holders)
        pid = os.getpid()
        self.holder = f"{socket.gethostname()}:{pid}:{_started(pid):.2f}:{secrets.token_hex(4)}"
        self.lost = asyncio.Event()

    async def claim(self) -> None:
        """Take the lease, or raise ConfigError naming the live process that holds it."""
        with patience(CLAIM_PATIENCE_S):
            lease = await self._store.claim_lease(self._name, self.holder, self._ttl_s)
            if lease.holder != self.holder and _gone_from_this_host(lease.holder):
                lease = await self._store.claim_lease(self._name, self.holder, self._ttl_s,
                                                      replacing=lease.holder)
        if lease.holder != self.holder:
            raise ConfigError([f"HEARTH_INSTANCE_NAME: another Hearth runs as instance {self._instance!r} "
                               f"on this database ({_describe(lease)}); stop it, or give this one another "
                               "HEARTH_INSTANCE_NAME"])

    async def keep(self) -> None:
        """Renew every `renew_s` until cancelled; if another process took the lease, set `lost`
        and return. A renewal the store fails is tried again at the next."""
        while True:
            await asyncio.sleep(self._renew_s)
            try:
                with patience(self._renew_s):
                    lease = await self._store.claim_lease(self._name, self.holder, self._ttl_s)
            except StoreUnavailableError as exc:
                log.warning("could not renew the instance lease (%s); trying again in %.0f s", exc,
                            self._renew_s)
                continue
            if lease.holder != self.holder:
                log.error("another Hearth took over instance %r (%s) while this one could not renew "
                          "its lease; stopping this one", self._instance, _describe(lease))
                self.lost.set()
                return

    async def release(self) -> None:
        """Give the lease up (a clean stop: the next start need not wait for its expiry)."""
        try:
            with patience(1.0):
                await self._store.release_lease(self._name, self.holder)
        except StoreUnavailableError as exc:
            log.warning("could not release the instance lease (%s); it expires in %.0f s", exc, self._ttl_s)


@asynccontextmanager
async def holding_lease(store: Leases, instance: str) -> AsyncIterator[InstanceLease]:
    """Claim the instance's lease (ConfigError when a live process holds it), renew it in a task
    this block owns, and release it on leaving."""
    lease = InstanceLease(store, instance)
    await lease.claim()
    tasks = TaskOwner("lease")
    tasks.spawn(lease.keep(), "instance-lease")
    try:
        yield lease
    finally:
        await tasks.close()
        await lease.release()


def _describe(lease: Lease) -> str:
    host, _, rest = lease.holder.partition(":")
    pid = rest.partition(":")[0]
    until = dt.datetime.fromtimestamp(lease.expires_at, dt.UTC).strftime("%H:%M:%S UTC")
    return f"process {pid} on {host}, its lease renewed until {until}"


def _gone_from_this_host(holder: str) -> bool:
    """Whether `holder` ran on this host and its process is no more (same pid and start time)."""
    host, pid, started, *_ = [*holder.split(":"), "", "", ""]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        return abs(_started(int(pid)) - float(started)) >= 0.01
    except ValueError:
        return False


def _started(pid: int) -> float:
    """A process's start time, 0 when there is no such process."""
    try:
        process = psutil.Process(pid)
        return 0.0 if process.status() == psutil.STATUS_ZOMBIE else float(process.create_time())
    except psutil.Error:
        return 0.0
