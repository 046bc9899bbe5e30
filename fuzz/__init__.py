"""Fuzz targets for what gtm reads from strangers: DNS packets and config files.

    scripts/fuzz dns 20000          # a bounded run: the seeds, then N mutated inputs
    scripts/fuzz config 5000
    scripts/fuzz dns 0              # unbounded (until a finding or Ctrl-C)

Each target is a function of one input's bytes that raises `Finding` (or
lets an unexpected exception out) when gtm misbehaves on it; atheris
(libFuzzer) mutates the checked-in seeds of `fuzz/corpus/<target>/` to find
such an input. `fuzz.targets` says what each target holds gtm to;
`fuzz.seeds` writes the DNS seeds again. `fuzz/findings/` keeps the
reproducers of what the fuzzers found and is not fixed yet.
"""
