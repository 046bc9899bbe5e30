"""`python -m fuzz TARGET [N] [FILE…]`: run a fuzz target with atheris (libFuzzer).

N inputs (default 10,000; 0 runs until a finding or Ctrl-C), starting from
the seeds in `fuzz/corpus/TARGET/` with a fixed random seed (`FUZZ_SEED`,
default 1), so a run in CI is the same run every time. New inputs go to a
scratch corpus, never into the checked-in seeds. A finding is written to
`$TMPDIR/gtm-fuzz/TARGET/crash-…` (libFuzzer prints the path) and the run
exits non-zero. With FILEs instead of N, each file is run once: a reproducer.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from fuzz.targets import TARGETS

USAGE = f"usage: scripts/fuzz {{{','.join(TARGETS)}}} [N | FILE…]"
INSTRUMENTED = ["gtm", "dns", "yaml", "policies"]  # coverage guides the mutations here


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TARGETS:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        import atheris
    except ImportError:
        print("fuzz: atheris is not installed (scripts/setup installs it)", file=sys.stderr)
        return 2
    target = TARGETS[argv[0]]
    rest = argv[1:]
    files = [a for a in rest if not a.isdigit()]
    runs = int(rest[0]) if rest and rest[0].isdigit() else 10_000
    with atheris.instrument_imports(include=INSTRUMENTED):
        test = target.setup()
    artifacts = Path(tempfile.gettempdir()) / "gtm-fuzz" / target.name
    artifacts.mkdir(parents=True, exist_ok=True)
    scratch = _scratch(artifacts)
    flags = [
        f"-artifact_prefix={artifacts}/",
        f"-seed={os.environ.get('FUZZ_SEED', '1')}",
        "-timeout=30",  # libFuzzer's own bound on one input (the config target's is tighter)
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
    ]
    if target.dictionary is not None:
        flags.append(f"-dict={target.dictionary}")
    if files:
        corpus = files
    else:
        if runs:
            flags.append(f"-runs={runs}")
        corpus = [str(scratch), str(target.corpus)]
    what = f"replaying {len(files)} file(s)" if files else f"{runs or 'unbounded'} inputs"
    print(f"fuzz: {target.name}, {what}", file=sys.stderr)
    atheris.Setup([sys.argv[0], *flags, *corpus], test)
    atheris.Fuzz()  # exits the process when done: 0, or non-zero on a finding
    return 0


def _scratch(artifacts: Path) -> Path:
    """A folder for this run's new inputs. libFuzzer ends the process itself, so a run
    cannot remove its own: each run removes those of runs no longer alive."""
    for old in artifacts.glob("corpus-*"):
        pid = old.name.removeprefix("corpus-")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    scratch = artifacts / f"corpus-{os.getpid()}"
    scratch.mkdir(exist_ok=True)
    return scratch


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
