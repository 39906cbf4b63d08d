"""Password hashing with argon2id (argon2-cffi). Hashing is slow on purpose, so the async helpers
run it in a worker thread: the event loop also serves calls (FastAGI) and must never stall.

Those threads are a small pool of their own, not asyncio's default executor: a burst of logins
queues here and never delays the other work the service hands to threads (e-mail, directory
index rebuilds, database drivers).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2-cffi's defaults are RFC 9106's low-memory profile (argon2id, t=3, m=64 MiB, p=4).
_hasher = PasswordHasher()
# Each hash takes `memory_cost` of RAM: a burst of logins must not take the machine's memory.
_slots = threading.BoundedSemaphore(2)
POOL_SIZE = 2
_pool = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="vaihde-argon2")
_dummy_hash: str | None = None


def configure(*, time_cost: int = 3, memory_cost: int = 65536, parallelism: int = 4) -> None:
    """Change the cost (tests and benchmarks make it cheap). Existing hashes keep verifying;
    `needs_rehash` reports them."""
    global _hasher, _dummy_hash
    _hasher = PasswordHasher(
        time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
    )
    _dummy_hash = None


def hash_password(password: str) -> str:
    with _slots:
        return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True if `password` matches; False for a mismatch or a hash that is not argon2."""
    with _slots:
        try:
            return _hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def needs_rehash(password_hash: str) -> bool:
    """Was this hash made with other parameters than the current ones?"""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


def waste_time(password: str) -> None:
    """Spend what a verification costs, for logins with no user or no password: the response
    time must not tell whether a username exists."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_urlsafe(16))
    verify_password(_dummy_hash, password)


async def hash_password_async(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_pool, hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    """Verify in the hashing pool; with no hash, spend the same time and return False."""
    loop = asyncio.get_running_loop()
    if password_hash is None:
        await loop.run_in_executor(_pool, waste_time, password)
        return False
    return await loop.run_in_executor(_pool, verify_password, password_hash, password)
