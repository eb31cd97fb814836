"""The goals of issue 17, in one place, and the figures that are judged against them.

Every goal but one is a ratio to a floor measured in the same run (product / floor);
the memory of 10,000 active activations is an absolute figure. A figure written
to bench/results/<name>.json has: the product's value, the floor's value, their
ratio, the unit, the goal and whether it was met; the run's parameters sit beside
the figures in the same file."""

from __future__ import annotations

import operator
from dataclasses import dataclass

_OPS = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Goal:
    measure: str  # the table, row by row
    on: str  # "ratio" (product / floor) or "product" (the value itself)
    op: str  # "<=" or ">="
    value: float
    unit: str = "x"  # of `value`: "x" for a ratio
    stretch: float | None = None
    also: str | None = None  # a condition besides the number

    def text(self) -> str:
        what = "ratio" if self.on == "ratio" else "product"
        out = f"{what} {'≤' if self.op == '<=' else '≥'} {self.value:g}{'' if self.unit == 'x' else ' ' + self.unit}"
        if self.stretch is not None:
            out += f" (stretch {self.stretch:g})"
        return out + (f", {self.also}" if self.also else "")


GOALS: dict[str, Goal] = {
    "throughput": Goal(
        "throughput, 300 started at once, request to granted (SQLite and PostgreSQL)", "ratio", ">=", 0.5, stretch=0.7
    ),
    "history_events": Goal("history events, uneventful activation, against the floor's for the same life", "ratio", "<=", 1.5),
    "approve_to_active_p99": Goal("approve -> active, p99 (500, 4 in flight)", "ratio", "<=", 1.5),
    "revocation_lag_p99_100": Goal("revocation lag p99, 100 expiring together with 2,200 open", "ratio", "<=", 1.5),
    "revocation_lag_p99_1000": Goal("revocation lag p99, 1,000 expiring together", "ratio", "<=", 1.5),
    "cli_status": Goal("`pim status` in the local mode, against the `temporal` CLI", "ratio", "<=", 5.0),
    "scale_memory": Goal(
        "10,000 active on one worker: the benchmark process's RSS",
        "product",
        "<=",
        300.0,
        unit="MB",
        also="all revoked on time",
    ),
}


def on_time_seconds() -> float:
    """ "Revoked on time": gone within the backstop's grace of its end (PIM_BACKSTOP_GRACE,
    60 s by default), that is, by the workflow and never left for the backstop."""
    from pim.runtime.settings import load_settings

    return load_settings().backstop_grace.total_seconds()


def figure(
    name: str,
    goal: str | None,
    product: float | None,
    floor: float | None,
    unit: str,
    *,
    condition: bool | None = None,
    **detail,
) -> dict:
    """One figure. `goal` names an entry of GOALS (None: reported, no goal); `condition`
    is the goal's `also`, when it has one. met is None when there is nothing to judge."""
    ratio = round(product / floor, 3) if product is not None and floor else None
    out: dict = {"figure": name, "product": product, "floor": floor, "ratio": ratio, "unit": unit}
    if goal is None:
        return {**out, "goal": None, "met": None, **detail}
    g = GOALS[goal]
    value = ratio if g.on == "ratio" else product
    met = None if value is None else _OPS[g.op](value, g.value) and condition is not False
    stretch = None if value is None or g.stretch is None else _OPS[g.op](value, g.stretch)
    spec = {"key": goal, "measure": g.measure, "on": g.on, "op": g.op, "value": g.value, "unit": g.unit, "text": g.text()}
    if g.stretch is not None:
        spec["stretch"] = g.stretch
    if g.also:
        spec["also"] = g.also
        out["condition_met"] = condition
    return {**out, "goal": spec, "met": met, **({"stretch_met": stretch} if stretch is not None else {}), **detail}
