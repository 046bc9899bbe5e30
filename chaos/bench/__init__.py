"""Benchmarks behind `gtm bench …`: each runs gtm beside a peer in one run and reports ratios."""
