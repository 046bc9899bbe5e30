"""Hostile inputs and a hostile disk, done to a running member for real.

| step | what it does |
|---|---|
| `bad_reload` | writes a config with an alias bomb, a duplicate key or a tagged scalar (`x: !!int ""`) over a member's config file and sends it SIGHUP; after `check_after` the member must report the refusal (`/v1/status` `config.refused_at`, the problem named) and still run its old config (same digest); the good file is put back |
| `state_full` | the region's state directory (`<work>/state/<region>`, shared by its pair) is moved onto a small tmpfs mounted over it and filled to the last block: every write there fails with ENOSPC (the lease lives outside it) |
| `state_clear` | the ballast is removed, what the members wrote meanwhile is copied back, the tmpfs unmounted; every audit line must still be whole JSON (never a torn audit) |
| `intent_delete` | the newest `intent.json.<n>` of the region is moved aside; after `restore_after` it is linked back under its name (if that name is taken by then, it is kept aside and the step says so) |

Mounting needs root (CAP_SYS_ADMIN), as the drills run in CI here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# An alias bomb: nine levels of ten, 10^9 nodes from a few hundred octets.
ALIAS_BOMB = "\n".join(
    ["bomb_0: &b0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"bomb_{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 10)}]" for i in range(1, 10)]
)
# what the refusal must name, per kind ("": any refusal will do)
EXPECTED = {
    "alias_bomb": "alias bomb",
    "duplicate_key": "duplicate key",
    "tagged_scalar": "not a valid int",
}
BALLAST = ".drill-ballast"
_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*):")


def bad_config(good: str, kind: str) -> str:
    """The member's own config made bad the way `kind` says (the rest is as it was)."""
    if kind == "alias_bomb":
        return good.rstrip("\n") + "\n" + ALIAS_BOMB + "\n"
    if kind == "duplicate_key":
        key = next(m[1] for m in map(_TOP_KEY.match, good.splitlines()) if m)
        return good.rstrip("\n") + f"\n{key}: a second time\n"
    if kind == "tagged_scalar":  # a tag PyYAML's constructor fails on with IndexError
        return good.rstrip("\n") + '\ntagged_scalar: !!int ""\n'
    raise ValueError(f"no bad config of kind {kind!r}")


def sighup(pid: int) -> None:
    os.kill(pid, signal.SIGHUP)


def refusal_problems(status: dict, *, since: float, digest: str | None, kind: str) -> list[str]:
    """What is wrong with a member's status after a bad reload (empty: it refused it well)."""
    config = status.get("config") or {}
    problems = []
    refused_at = config.get("refused_at")
    if refused_at is None or refused_at < since:
        problems.append(f"reports no refused reload since the SIGHUP (refused_at {refused_at})")
    elif not any(EXPECTED[kind] in p for p in config.get("refused") or [""]):
        problems.append(f"the refusal does not name the {EXPECTED[kind]}: {config.get('refused')}")
    if digest is not None and config.get("digest") != digest:
        problems.append(f"runs another config (digest {config.get('digest')}, was {digest})")
    return problems


# --- a full state directory --------------------------------------------------------------


@dataclass
class FullDisk:
    """A state directory moved onto a full tmpfs, and back.

    `<dir>` is bind-mounted to `<dir>.under` (to copy back to later), a tmpfs
    of `size` octets is mounted at `<dir>.full` and holds a copy of the
    directory, that tmpfs is bind-mounted over `<dir>`, and a ballast file
    fills it. Files named by number are written once, so copying the new
    names back (and the audit when it grew) restores what was written."""

    state_dir: Path
    size: int = 1 << 20

    @property
    def under(self) -> Path:
        return self.state_dir.with_name(self.state_dir.name + ".under")

    @property
    def full(self) -> Path:
        return self.state_dir.with_name(self.state_dir.name + ".full")

    def fill(self) -> int:
        """Mount and fill; the octets of ballast written."""
        used = sum(p.stat().st_size for p in self.state_dir.rglob("*") if p.is_file())
        size = max(self.size, 2 * used + (256 << 10))
        self.under.mkdir(exist_ok=True)
        self.full.mkdir(exist_ok=True)
        _mount("--bind", str(self.state_dir), str(self.under))
        _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "drill-full", str(self.full))
        _copy_new(self.under, self.full)
        _mount("--bind", str(self.full), str(self.state_dir))
        _copy_new(self.under, self.full)  # what was linked while the mounts went up
        return _fill(self.full / BALLAST)

    def clear(self) -> list[str]:
        """Remove the ballast, copy back, unmount; the audit problems found (empty: whole)."""
        with contextlib.suppress(FileNotFoundError):
            (self.full / BALLAST).unlink()
        _copy_new(self.full, self.under, grown=True)
        _umount(self.state_dir)
        _copy_new(self.full, self.state_dir, grown=True)  # written while it was unmounted
        _umount(self.full)
        _umount(self.under)
        for p in (self.full, self.under):
            with contextlib.suppress(OSError):
                p.rmdir()
        return torn_audit(self.state_dir)

    def mounted(self) -> bool:
        return os.path.ismount(self.state_dir)


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def _copy_new(src: Path, dst: Path, *, grown: bool = False) -> None:
    """Copy the files of `src` that `dst` lacks; with `grown`, also those longer in `src`
    that begin with what `dst` holds (an appended audit)."""
    for p in src.iterdir():
        if p.name == BALLAST or not p.is_file():
            continue
        q = dst / p.name
        if q.exists():
            if not grown or p.stat().st_size <= q.stat().st_size:
                continue
            with p.open("rb") as a, q.open("rb") as b:
                if a.read(q.stat().st_size) != b.read():
                    continue
        shutil.copy2(p, q)


def _fill(path: Path) -> int:
    """Write `path` until the disk says ENOSPC; the octets written."""
    written = 0
    block = b"\0" * (64 << 10)
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                n = f.write(block)
            except OSError:
                block = block[: len(block) // 2]
                if len(block) < 512:
                    break
                continue
            written += n or 0
    return written


def torn_audit(state_dir: Path) -> list[str]:
    """Lines of the audit (`audit.jsonl*`) that are not whole JSON objects."""
    problems = []
    for p in sorted(state_dir.glob("audit.jsonl*")):
        data = p.read_bytes()
        if data and not data.endswith(b"\n"):
            problems.append(f"{p.name}: the last line is cut ({len(data)} octets)")
        for i, line in enumerate(data.splitlines(), 1):
            try:
                if not isinstance(json.loads(line), dict):
                    raise ValueError("not an object")
            except ValueError as e:
                problems.append(f"{p.name}:{i}: not a whole entry ({e})")
    return problems


def cause_named(logs: list[Path], cause: str, *, since: float) -> list[str]:
    """The members (log file stems) that logged an event naming `cause` (an errno's name)
    after `since` (a Unix time): a refused write, a leader stepping down and why."""
    named = []
    for path in logs:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if cause not in line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            at = event.get("timestamp", "")
            if _unix(at) >= since:
                named.append(f"{path.stem} ({event.get('event')})")
                break
    return named


def _unix(stamp: str) -> float:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


# --- a deleted intent file ---------------------------------------------------------------


def newest_intent(state_dir: Path) -> Path | None:
    found = [
        (int(p.name.rsplit(".", 1)[1]), p)
        for p in state_dir.glob("intent.json.*")
        if p.name.rsplit(".", 1)[1].isdigit()
    ]
    return max(found)[1] if found else None


def move_aside(path: Path, aside: Path) -> Path:
    aside.mkdir(parents=True, exist_ok=True)
    kept = aside / path.name
    os.replace(path, kept)
    return kept


def put_back(kept: Path, state_dir: Path) -> str:
    """Link the moved file back under its name; say what happened."""
    target = state_dir / kept.name
    try:
        os.link(kept, target)
    except FileExistsError:
        return f"{kept.name} was written again meanwhile: the deleted one is kept at {kept}"
    return f"{kept.name} restored"
