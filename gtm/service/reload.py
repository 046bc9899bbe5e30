"""A config reload parsed and validated away from the member's loop (SIGHUP).

`load_aside(path)` runs `gtm.config.load` in a child process of its own, one
per reload, and returns what the member needs: the validated `Inventory` and
its estate digest (`config_state.estate_digest`), or raises `ConfigError` with
every problem of the file. The old config runs on meanwhile; a child that
crashes, is killed, or takes longer than `limit` seconds is a refused reload too.

Why a child, in numbers (30,000 services, 135,000 VIPs, 2 cores, `gtm bench
config`'s estate): `load` takes 7-11 s of CPU. In a thread it still stalls the
loop for 1.7 s at a time, because pydantic's validation of the document holds
the GIL throughout; in a child it cannot. The child sends the Inventory back
pickled (26 MB, 2.8 s to pickle, in the child) and the parent unpickles it in
a thread (2.7-5.4 s; the loop's worst lag meanwhile 0.28 s, as unpickling
returns to the interpreter often). Sending only the problems and re-parsing in
the parent when the file is valid would cost the full load again, with the
1.7 s stalls. The digest (1.5 s of `model_dump`, which also holds the GIL) is
computed in the child and sent back as 16 characters. The pickled inventory
is kept (`Loaded.pickled`): the DNS answer processes are handed those bytes,
so the member's loop never pickles it again.

    try:
        loaded = await load_aside("estate.yaml")
    except ConfigError as e:
        ...  # e.problems; nothing changed
    loaded.inventory, loaded.digest

The services the home cluster's AccessPoints onboard (`gtm.service.onboarding`)
go to the child as JSON on its stdin (`{}`: none); it loads the file with them
(`gtm.config.load_onboarded`) and says which were left out, and why
(`Loaded.refused`).

Run as `python -m gtm.service.reload PATH < onboarded.json`, the child writes one
pickled `Loaded`, or the tuple of `Problem`s, to its stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gtm.config import ConfigError, Inventory, Problem, load_onboarded
from gtm.service.config_state import estate_digest

TIMEOUT = 300.0  # seconds a reload's child may take before it is killed and the reload refused


@dataclass(frozen=True)
class Loaded:
    inventory: Inventory
    digest: str  # `estate_digest(inventory.config)`
    pickled: bytes  # the inventory, pickled (what the DNS answer processes are sent)
    refused: Mapping[str, str] = field(default_factory=dict)  # APs' services left out: why


@dataclass(frozen=True)
class _Wire:
    """What the child sends back when the file is valid."""

    pickled: bytes
    digest: str
    refused: dict[str, str]


async def load_aside(
    path: str,
    *,
    onboarded: Mapping[str, Mapping[str, Any]] | None = None,
    limit: float = TIMEOUT,
) -> Loaded:
    """The config at `path`, loaded and validated in a child process; raises `ConfigError`.

    `onboarded`: the services AccessPoints onboard (`gtm.config.load_onboarded`), sent
    to the child as JSON on its stdin."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gtm.service.reload",
        path,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    sent = json.dumps(dict(onboarded or {})).encode()
    try:
        async with asyncio.timeout(limit):
            out, err = await child.communicate(sent)
    except BaseException as e:  # timed out, or the member stops: the child goes too
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        if isinstance(e, TimeoutError):
            raise _refused(path, f"loading took longer than {limit:g}s") from None
        raise
    if child.returncode != 0 or not out:
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        why = f"the loader exited with code {child.returncode}" + (
            f": {' | '.join(tail)}" if tail else ""
        )
        raise _refused(path, why)
    result = pickle.loads(out)  # the problems, or bytes and a digest: quick
    if isinstance(result, tuple):
        raise ConfigError(result)
    if not isinstance(result, _Wire):
        raise _refused(path, f"the loader answered {type(result).__name__}")
    inventory = await asyncio.to_thread(pickle.loads, result.pickled)  # seconds at 30,000: aside
    return Loaded(inventory, result.digest, result.pickled, result.refused)


def _refused(path: str, message: str) -> ConfigError:
    return ConfigError([Problem(path, None, (), message)])


def main(argv: list[str]) -> int:
    """The child: load `argv[0]` (with the onboarded services read from stdin, JSON), write
    the pickled result to stdout."""
    from gtm.service.reload import _Wire as Named  # not __main__._Wire: the parent unpickles

    (path,) = argv
    result: _Wire | tuple[Problem, ...]
    onboarded = json.loads(sys.stdin.buffer.read() or b"{}")
    try:
        inventory, refused = load_onboarded(path, onboarded)
        pickled = pickle.dumps(inventory, protocol=pickle.HIGHEST_PROTOCOL)
        result = Named(pickled, estate_digest(inventory.config), refused)
    except ConfigError as e:
        result = e.problems  # the problems, not the exception: it pickles by its message
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
