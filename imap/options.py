"""Checking the options of an IMap."""

from __future__ import annotations

from typing import Any

__all__ = ["check_int", "parse_remote"]


def check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} ({value}) must be >= {minimum}")


def parse_remote(worker_remote: Any) -> list:
    if not worker_remote:
        return []
    hosts = []
    for entry in worker_remote:
        try:
            host, n = entry
        except (TypeError, ValueError):
            raise ValueError(
                f"worker_remote entries must be (host, n) or ('host:port', n) pairs, "
                f"got {entry!r}") from None
        check_int(f"the worker count for {host!r}", n, 1)
        hosts.append((str(host), n))
    return hosts
