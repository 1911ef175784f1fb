"""The correction and plan tables of results/correction/ (results/correction/README tables), from the files
results/correction_sweeps.sh wrote: nothing here is typed in by hand.

Usage: python results/correction_table.py results/correction RUN [RUN ...]
Writes results/correction/table.md with, per RUN (an ANN of results/correction_runs.sh):
  1. the test accuracy at T = 1, 2, 4, 8 for IF and MBIF(1+3) with no correction, bias and bias+potential,
     beside the ANN (from RUN/correct/sweep.json), and the gap to the ANN at T = 1;
  2. for each plan (RUN/plan-D.json, D = 0.5 and 1): the planned SNN's test accuracy and bit-plane energy at
     its T (RUN/planned-D/), beside uniform MBIF(1+3) and IF at the first T (up to 128) within the same drop
     of the ANN on the test set (RUN/uniform/), or "not within 128".
"""

from __future__ import annotations

import json
import os
import sys

import pandas as pd


def _curves(path: str) -> list[dict]:
    with open(path) as f:
        return json.load(f)["rows"]  # sweep.json keeps each row with its curve, ops and conversion


def _energy(curve: dict, T: int) -> float | None:
    for o in curve.get("ops", []):
        if o["T"] == T:
            return o["energy_snn_bitplane_uj"]
    return None


def correction_rows(folder: str) -> pd.DataFrame:
    rows = []
    for c in _curves(os.path.join(folder, "correct", "sweep.json")):
        ann = 100 * c["ann_acc"]
        row = {"neuron": c["neuron"], "correction": c["correction"], "ANN": round(ann, 2)}
        row.update({f"T={t}": round(100 * c["curve"][t - 1], 2) for t in (1, 2, 4, 8)})
        row["gap at T=1"] = round(ann - 100 * c["curve"][0], 2)
        rows.append(row)
    return pd.DataFrame(rows)


def plan_rows(folder: str) -> pd.DataFrame:
    uniform = _curves(os.path.join(folder, "uniform", "sweep.json"))
    swept = sorted({o["T"] for c in uniform for o in c.get("ops", [])})
    rows = []
    for drop in ("0.5", "1"):
        plan_path = os.path.join(folder, f"plan-{drop}.json")
        if not os.path.exists(plan_path):
            continue
        with open(plan_path) as f:
            plan = json.load(f)
        d = float(drop)
        if plan["feasible"]:
            planned = _curves(os.path.join(folder, f"planned-{drop}", "sweep.json"))[0]
            T = plan["T"]
            ann = 100 * planned["ann_acc"]
            acc = 100 * planned["curve"][T - 1]
            rows.append({"max drop": d, "SNN": f"planned ({planned['neuron']})", "T": T, "test accuracy": round(acc, 2),
                         "drop": round(ann - acc, 2), "energy µJ": round(_energy(planned, T), 4),
                         "held-out accuracy (plan)": round(plan["holdout_accuracy"], 2)})
        else:
            rows.append({"max drop": d, "SNN": "planned", "T": "none within T ≤ 8", "test accuracy": None,
                         "drop": None, "energy µJ": None, "held-out accuracy (plan)": None})
        for c in uniform:
            ann = 100 * c["ann_acc"]
            first = next((t for t in swept if ann - 100 * c["curve"][t - 1] <= d), None)
            if first is None:
                rows.append({"max drop": d, "SNN": f"uniform {c['neuron']}", "T": f"not within {swept[-1]}",
                             "test accuracy": None, "drop": None, "energy µJ": None, "held-out accuracy (plan)": None})
                continue
            acc = 100 * c["curve"][first - 1]
            rows.append({"max drop": d, "SNN": f"uniform {c['neuron']}", "T": first, "test accuracy": round(acc, 2),
                         "drop": round(ann - acc, 2), "energy µJ": round(_energy(c, first), 4),
                         "held-out accuracy (plan)": None})
    return pd.DataFrame(rows)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    root, runs = argv[0], argv[1:]
    parts = []
    for run in runs:
        folder = os.path.join(root, run)
        parts.append(f"## {run}\n\nTest accuracy (%), the whole test set; corrections at the default T_cal on 1,000 "
                     f"training images ({run}/correct/):\n\n" + correction_rows(folder).to_markdown(index=False))
        if os.path.exists(os.path.join(folder, "uniform", "sweep.json")):
            parts.append(f"Plans (held-out split) and uniform neurons (test set; uniform: the first T of "
                         f"1, 2, 4, …, 128 within the drop):\n\n" + plan_rows(folder).to_markdown(index=False))
    text = "\n\n".join(parts) + f"\n\nWritten by `python results/correction_table.py {' '.join(argv)}`.\n"
    with open(os.path.join(root, "table.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
