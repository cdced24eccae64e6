"""Header stamps never raise and are judged the same way in every node; drop counts; instruction digest."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from spvla_ros.core.drop_counts import DropCounts
from spvla_ros.core.instruction import instruction_digest, instruction_for_log
from spvla_ros.core.stamps import NS_PER_S, ns_to_sec_nanosec, stamp_refusal, stamp_to_ns

NOW = 1_700_000_000 * NS_PER_S


def _t(sec: int, nanosec: int = 0) -> SimpleNamespace:
    return SimpleNamespace(sec=sec, nanosec=nanosec)


@pytest.mark.parametrize("sec", [-1, -(2**31), 2**31 - 1, 0])
def test_any_int32_second_converts_without_raising(sec):
    assert stamp_to_ns(_t(sec, 999_999_999)) == sec * NS_PER_S + 999_999_999


def test_negative_stamps_are_refused_whatever_the_tolerances():
    # A year-2100 stamp serialised into int32 arrives negative.
    year_2100 = 4_102_444_800 - 2**32
    assert stamp_refusal(stamp_to_ns(_t(year_2100)), NOW, 1e9, None) == "negative_stamp"
    assert stamp_refusal(-1, NOW, 0.0) == "negative_stamp"


def test_future_and_stale_bounds_are_inclusive_tolerances():
    assert stamp_refusal(NOW + NS_PER_S // 10, NOW, max_future_s=0.1) is None
    assert stamp_refusal(NOW + NS_PER_S // 10 + 1, NOW, max_future_s=0.1) == "future_stamp"
    assert stamp_refusal(NOW + 3600 * NS_PER_S, NOW, max_future_s=0.1, max_age_s=1.0) == "future_stamp"
    assert stamp_refusal(NOW - NS_PER_S, NOW, 0.1, max_age_s=1.0) is None
    assert stamp_refusal(NOW - NS_PER_S - 1, NOW, 0.1, max_age_s=1.0) == "stale_stamp"
    assert stamp_refusal(0, NOW, 0.1) is None  # no age limit asked


def test_a_bad_tolerance_is_an_error_not_a_silent_pass():
    with pytest.raises(ValueError):
        stamp_refusal(NOW, NOW, float("nan"))
    with pytest.raises(ValueError):
        stamp_refusal(NOW, NOW, -1.0)


def test_ns_round_trip_keeps_nanosec_in_range():
    for ns in (0, 1, NOW + 123, -1, -NS_PER_S - 5):
        sec, nanosec = ns_to_sec_nanosec(ns)
        assert 0 <= nanosec < NS_PER_S and stamp_to_ns(_t(sec, nanosec)) == ns


def test_drop_counts_are_thread_safe_and_ordered():
    drops = DropCounts(("future_stamp",))
    threads = [threading.Thread(target=lambda: [drops.count("bad_chunk") for _ in range(1000)]) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    drops.count("future_stamp")
    assert drops.as_lists() == (["future_stamp", "bad_chunk"], [1, 4000])
    assert drops.total == 4001 and drops.get("missing") == 0


def test_instruction_digest_is_stable_and_logs_are_short():
    assert instruction_digest("pick up the cup") == instruction_digest("pick up the cup")
    assert instruction_digest("pick up the cup") != instruction_digest("pick up the cup.")
    assert len(instruction_digest("x" * 10_000)) == 16
    long = "put the spoon on the towel " * 400
    shown = instruction_for_log(long)
    assert len(shown) < 200 and f"({len(long)} characters)" in shown
    assert instruction_for_log("short") == "'short'"


def test_drops_log_once_per_period_per_reason_and_one_reason_never_hides_another():
    from spvla_ros.core.drop_counts import LogGate

    now = [0.0]
    drops = DropCounts(log_gate=LogGate(1.0, clock=lambda: now[0]))
    lines: list[str] = []
    for _ in range(50):  # a flood of one reason
        drops.report("future_stamp", "frame ahead", lines.append)
    drops.report("bad_image", "not an image", lines.append)  # the same instant: still logged
    assert lines == ["frame ahead [future_stamp: 1 so far]", "not an image [bad_image: 1 so far]"]
    now[0] = 0.999
    drops.report("future_stamp", "frame ahead", lines.append)
    assert len(lines) == 2
    now[0] = 1.0
    drops.report("future_stamp", "frame ahead", lines.append)
    assert lines[-1] == "frame ahead [future_stamp: 52 so far]"
    assert drops.as_lists() == (["future_stamp", "bad_image"], [52, 1])
