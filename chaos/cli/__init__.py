"""The commands that need the simulated estate: `gtm demo`, `gtm drill`, `gtm bench`.

`gtm` finds them through the `gtm.commands` entry points (pyproject.toml), so
nothing of gtm imports chaos.
"""
