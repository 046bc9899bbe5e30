"""`gtm bench dns-under-load`'s load generator and its reading of the member's loop lag."""

from __future__ import annotations

import math
import socket

from dns_estate import Running

from chaos.bench.dns_load import gc_pauses, generate, loop_lag, queries


def test_the_generator_keeps_its_rate_and_times_every_reply(served: Running) -> None:
    wires = [q for q in queries(3) if b"\x02s0" not in q]  # s1, s2: unknown names, REFUSED
    got = generate(served.port, wires, rate=400, seconds=1.0)
    assert got["sent"] == 400 and got["answered"] == 400
    lat = got["latencies"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"] < 2.0


def test_queries_nobody_answers_are_lost() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        got = generate(silent.getsockname()[1], queries(3), rate=100, seconds=0.3)
    assert got["sent"] == 30 and got["answered"] == 0 and math.isnan(got["latencies"]["p99"])


def metrics(counts: dict[str, float]) -> dict[str, list[tuple[str, float]]]:
    return {
        "gtm_member_loop_lag_seconds_bucket": [
            (f'gtm_member_loop_lag_seconds_bucket{{le="{le}"}}', n) for le, n in counts.items()
        ]
    }


def test_loop_lag_between_two_scrapes() -> None:
    before = metrics({"0.001": 10, "0.01": 10, "0.1": 10, "+Inf": 10})
    after = metrics({"0.001": 980, "0.01": 1009, "0.1": 1010, "+Inf": 1010})
    assert loop_lag(before, after) == (10.0, 100.0, False)  # 99% within 10 ms, all within 100 ms


def test_the_loop_lag_max_is_exact_when_it_grew_in_between() -> None:
    before = metrics({"0.01": 10, "0.1": 10, "+Inf": 10})
    after = metrics({"0.01": 1009, "0.1": 1010, "+Inf": 1010})
    before["gtm_member_loop_lag_max_seconds"] = [("gtm_member_loop_lag_max_seconds", 0.5)]
    after["gtm_member_loop_lag_max_seconds"] = [("gtm_member_loop_lag_max_seconds", 0.5)]
    assert loop_lag(before, after) == (10.0, 100.0, False)  # the 0.5 s was before: a bound
    after["gtm_member_loop_lag_max_seconds"] = [("gtm_member_loop_lag_max_seconds", 0.0625)]
    assert loop_lag(before, after) == (10.0, 100.0, False)  # a max never shrinks: as above
    before["gtm_member_loop_lag_max_seconds"] = [("gtm_member_loop_lag_max_seconds", 0.03)]
    assert loop_lag(before, after) == (10.0, 62.5, True)  # it grew in between: exact


def test_collections_between_two_scrapes_add_up_every_generation() -> None:
    def scrape(counts: dict[str, dict[str, float]]) -> dict[str, list[tuple[str, float]]]:
        return {
            "gtm_member_gc_pause_seconds_bucket": [
                (f'gtm_member_gc_pause_seconds_bucket{{generation="{g}",le="{le}"}}', n)
                for g, by_le in counts.items()
                for le, n in by_le.items()
            ]
        }

    before = scrape(
        {"0": {"0.001": 5, "0.1": 5, "+Inf": 5}, "2": {"0.001": 0, "0.1": 1, "+Inf": 1}}
    )
    after = scrape({"0": {"0.001": 9, "0.1": 9, "+Inf": 9}, "2": {"0.001": 0, "0.1": 2, "+Inf": 2}})
    assert gc_pauses(before, after) == (5, 100.0)  # 4 young ones within 1 ms, a full one ≤ 100
    assert gc_pauses(before, after, 2) == (1, 100.0)
    assert gc_pauses(before, after, 0) == (4, 1.0)
