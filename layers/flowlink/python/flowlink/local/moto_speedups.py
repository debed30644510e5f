"""Take two per-request costs out of moto's server (local stack, tests and benches only).

Profiling the emulator showed that a DynamoDB ``PutItem`` spends about 0.1 ms in moto's
DynamoDB model and 2–3 ms in dispatch. Two pure functions do most of that work again on
every request, although their answers never change while the process runs:

* ``moto.backends.list_of_moto_modules`` lists moto's package directory and stats each of
  its ~180 entries; the server calls it to route every request by host.
* ``moto.core.utils.method_names_from_class`` runs ``inspect.getmembers`` over a response
  class to find its actions; every request calls it for its service's class.

``install()`` memoizes both. Everything they return is a function of moto's installed files
and its classes, which are fixed once imported; behaviour is unchanged, only faster. The
emulator's throughput bounds the audit append figure and the suite's run time, since every
local request passes through here.
"""

from __future__ import annotations

import functools
import threading

_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Memoize moto's per-request module listing and action lookup (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from moto import backends
        from moto.core import responses, utils

        module_names = tuple(backends.list_of_moto_modules())
        # The server tests membership (`host in list_of_moto_modules()`): a fresh iterator of
        # the same names keeps the original's contract for any other caller.
        backends.list_of_moto_modules = lambda: iter(module_names)

        # Keyed by the class object; the list is copied so a caller cannot alter the cache.
        cached_method_names = functools.lru_cache(maxsize=None)(utils.method_names_from_class)
        responses.method_names_from_class = lambda clazz: list(cached_method_names(clazz))
        _installed = True
