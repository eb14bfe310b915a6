"""bench/fairness.py's figures: the goals' ratios from the runs, and the human table."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.fairness import Plan

GOAL_B_RATIO = 3.0
GOAL_A_SLOWDOWN = 1.10


def median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 2) if known else None


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The figures the goals are about, from the runs."""
    out: dict[str, Any] = {}
    for name in ("fair", "off"):
        runs = report[name]
        idle = runs["idle"]
        alone = [r["alpha"]["total_s"] for r in runs["a_alone_runs"]]
        out[name] = {
            **_busy_figures(runs["a_busy"], idle),
            "b_single_idle_s": idle["single_s"],
            "b_later_idle_s": idle["later_s"],
            "a_alone_runs_s": alone,
            "a_alone_s": median(alone),
            "a_alone_deferrals": [r["alpha"]["deferrals"] for r in runs["a_alone_runs"]],
        }
        out[name]["a_with_b_s"] = out[name]["totals_s"]["alpha"]
        out[name]["a_cost_of_fairness"] = _ratio(out[name]["a_with_b_s"], out[name]["a_alone_s"])
        out[name]["a_backlog_at_b"] = out[name]["backlog_at_b"]["alpha"]
        out[name]["a_backlog_when_b_done"] = out[name]["backlog_when_b_done"]["alpha"]
    out["a_alone_fair_vs_off"] = _ratio(out["fair"]["a_alone_s"], out["off"]["a_alone_s"])
    idle = report["fair"]["idle"]
    out["three_busy"] = _busy_figures(report["fair"]["three_busy"], idle)
    out["quota_bound"] = _busy_figures(report["fair"]["quota_bound"], idle)
    fair, three = out["fair"], out["three_busy"]
    out["goals_met"] = {
        "b_single_within_3x": _within(fair["b_single_ratio"], GOAL_B_RATIO),
        "b_later_within_3x": _within(fair["b_later_ratio"], GOAL_B_RATIO),
        "a_backlog_still_running": (fair["a_backlog_when_b_done"] or 0) > 0,
        "a_alone_within_10pct": _within(out["a_alone_fair_vs_off"], GOAL_A_SLOWDOWN),
        "three_busy_b_within_3x": _within(three["b_single_ratio"], GOAL_B_RATIO)
        and _within(three["b_later_ratio"], GOAL_B_RATIO),
        "three_busy_backlog_still_running": min(three["backlog_when_b_done"].values()) > 0,
    }
    return out


def _busy_figures(run: dict[str, Any], idle: dict[str, Any]) -> dict[str, Any]:
    """B's times against idle (and where they went), the busy teams' backlogs and totals."""
    single, later = run["b_single"], run["b_later"]
    return {
        "quota": run["quota"],
        "b_single_busy_s": single["seconds"],
        "b_single_ratio": _ratio(single["seconds"], idle["single_s"]),
        "b_single_started_after_s": single.get("last_started_after_s"),
        "b_later_busy_s": later["seconds"],
        "b_later_ratio": _ratio(later["seconds"], idle["later_s"]),
        "b_later_last_started_after_s": later.get("last_started_after_s"),
        "backlog_at_b": {t: b["not_done"] for t, b in run["backlog_at_b_single"].items()},
        "backlog_when_b_done": {t: b["not_done"] for t, b in run["backlog_when_b_done"].items()},
        "totals_s": {tag: run[tag]["total_s"] for tag in run["teams"]},
        "deferrals": {tag: run[tag]["deferrals"] for tag in run["teams"]},
        "max_attempts": max(run[tag]["max_attempts"] for tag in run["teams"]),
        "failed": sum(run[tag]["failed"] for tag in run["teams"]),
        "model_requests": run["model_requests"],
        "shares": run.get("shares"),
        "shares_window_s": run.get("shares_window_s"),
    }


def _ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else round(value / base, 2)


def _within(ratio: float | None, goal: float) -> bool:
    return ratio is not None and ratio <= goal


def print_report(figures: dict[str, Any], plan: Plan, off_label: str) -> None:
    print(
        f"\nteam A: {plan.a_documents} documents at once; B: 1, then {plan.b_later}, "
        f"{plan.b_delay:.0f}s later; capacity {plan.capacity}; stand-in "
        f"{plan.latency * 1000:.0f} ms + {plan.latency_per_text * 1000:.0f} ms/text, quota "
        f"{plan.quota}/min; Pub/Sub: {plan.pubsub}"
    )
    print(f"{'':<36}{'fair':>12}{off_label:>24}")
    rows = [
        ("B, 1 document, idle s", "b_single_idle_s"),
        ("B, 1 document, A busy s", "b_single_busy_s"),
        ("  ratio (goal <= 3x)", "b_single_ratio"),
        ("  started after s", "b_single_started_after_s"),
        (f"B, {plan.b_later} documents, idle s", "b_later_idle_s"),
        (f"B, {plan.b_later} documents, A busy s", "b_later_busy_s"),
        ("  ratio (goal <= 3x)", "b_later_ratio"),
        ("A's documents to do at B's drop", "a_backlog_at_b"),
        ("A's documents to do when B done", "a_backlog_when_b_done"),
        ("A alone s (median)", "a_alone_s"),
        ("A with B s", "a_with_b_s"),
        ("  A with B / A alone", "a_cost_of_fairness"),
    ]
    for label, key in rows:
        print(f"{label:<36}{_shown(figures['fair'][key]):>12}{_shown(figures['off'][key]):>24}")
    print(f"A alone, fair / fairness off: {_shown(figures['a_alone_fair_vs_off'])} (goal <= 1.10)")
    for key, title in (("three_busy", "three busy teams"), ("quota_bound", "quota as bottleneck")):
        _print_busy(figures[key], f"{title}, {plan.b_later} later", plan)
    print(
        "goals: "
        + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in figures["goals_met"].items())
    )


def _print_busy(busy: dict[str, Any], title: str, plan: Plan) -> None:
    print(
        f"\n{title} (quota {busy['quota']}/min), fair stack: B's 1 document "
        f"{_shown(busy['b_single_busy_s'])}s ({_shown(busy['b_single_ratio'])}x idle), its "
        f"{plan.b_later} documents {_shown(busy['b_later_busy_s'])}s "
        f"({_shown(busy['b_later_ratio'])}x); busy teams' documents to do when B was done "
        f"{busy['backlog_when_b_done']}; totals s {busy['totals_s']}"
    )
    shares = busy["shares"] or {}
    if shares:
        print(f"  model requests while all three had work ({busy['shares_window_s']}s):")
        print(f"  {'team':<10}{'ok':>7}{'share':>8}{'texts':>8}{'429s':>7}")
        for tag, counts in shares.items():
            print(
                f"  {tag:<10}{counts['ok']:>7}{counts['share']:>8.3f}{counts['texts']:>8}"
                f"{counts['rejected_429']:>7}"
            )


def _shown(value: Any) -> str:
    return "-" if value is None else str(value)
