"""MBIF against IF on every conversion path: one line per ANN and multi-bit neuron, from the
stacked Table-9 tables.

Usage: python results/mbif_vs_if.py [OUT] TABLE.csv [TABLE.csv ...]
  e.g. python results/mbif_vs_if.py results/mbif_vs_if results/cifar10/table.csv results/cifar100/table.csv
  default OUT: results/mbif_vs_if (writes OUT.md and OUT.csv, through a temporary file and a rename).

An ANN is one (dataset, network, activation, L_or_bits, threshold, ANN accuracy) group of a table, so two
trainings of the same recipe stay apart. In each group, every MBIF row with v_init half-lsb is set against
the group's IF row with v_init half-lsb (the one v_init swept on every path). The path is the activation
(relu: thresholds from data; qcfs; matched), with ", capped" where the MBIF row has a per-step cap
(`MBIF m+n K=k`). Several IF half-lsb rows of one group that are equal at every T (one ANN swept twice) count
as one; a group without an IF half-lsb row, or with IF rows that differ, is skipped, and said so. Accuracies are copied
unchanged (top-1 %, the tables' own test images); `mbif_ahead` counts the swept T at which MBIF is strictly
above IF, `if_ahead` those where IF is strictly above.
A bad argument or a missing or malformed table exits 2 with one line.
"""

import sys

import pandas as pd

from report import check_out_stem, fail, write_report

USAGE = "usage: python results/mbif_vs_if.py [OUT] TABLE.csv [TABLE.csv ...]"
KEY = ["dataset", "network", "activation", "L_or_bits", "threshold", "ANN"]
SHOWN_T = [1, 4, 16, 64, 128]
PATH_ORDER = ["relu", "relu, capped", "qcfs", "qcfs, capped", "matched"]


def read_table(path):
    try:
        df = pd.read_csv(path)
        df[KEY + ["neuron", "v_init"]]
    except FileNotFoundError:
        fail(f"{path} not found; stack the sweeps first (python results/combine.py results/DATASET)")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, KeyError, ValueError) as e:
        fail(f"{path} is not a table written by results/combine.py ({type(e).__name__}: {e})")
    t_cols = [c for c in df if c.startswith("T=")]
    if not t_cols:
        fail(f"{path} has no T=... columns; it is not a table written by results/combine.py")
    bad = [c for c in t_cols + ["ANN"] if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        fail(f"{path}: column {bad[0]} holds values that are not accuracies; it is not a table written by "
             "results/combine.py")
    return df


def compare(df):
    """Rows of the comparison: one per (ANN group, MBIF half-lsb row), with the IF half-lsb row of that group."""
    t_cols = sorted((c for c in df if c.startswith("T=")), key=lambda c: int(c[2:]))
    rows, skipped = [], []
    for key, g in df.groupby(KEY, sort=True, dropna=False):
        half = g[g.v_init == "half-lsb"]
        if_rows, mbif_rows = half[half.neuron == "IF"], half[half.neuron.str.startswith("MBIF")]
        if mbif_rows.empty:
            continue
        # the same ANN swept twice (e.g. its uncapped and its capped sweep) gives IF rows equal at every T: one row
        if len(if_rows) > 1 and (if_rows[t_cols].nunique(dropna=False) == 1).all():
            if_rows = if_rows.iloc[:1]
        if len(if_rows) != 1:
            skipped.append(f"{'/'.join(map(str, key))}: {len(if_rows)} IF half-lsb rows")
            continue
        ifr = if_rows.iloc[0]
        for _, mb in mbif_rows.iterrows():
            both = [(t, float(ifr[t]), float(mb[t])) for t in t_cols if pd.notna(ifr[t]) and pd.notna(mb[t])]
            path = mb.activation + (", capped" if " K=" in mb.neuron else "")
            row = dict(zip(KEY, key))
            row.update({"path": path, "mbif": mb.neuron,
                        "mbif_ahead": sum(m > i for _, i, m in both), "if_ahead": sum(i > m for _, i, m in both),
                        "T_swept": len(both)})
            for t, i, m in both:
                row[f"IF {t}"], row[f"MBIF {t}"] = i, m
            rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:  # paths in pipeline order: relu, relu capped, qcfs, qcfs capped, matched
        order = {p: i for i, p in enumerate(PATH_ORDER)}
        table = table.sort_values(["dataset", "network", "path", "ANN", "mbif"],
                                  key=lambda c: c.map(lambda p: order.get(p, len(order))) if c.name == "path" else c,
                                  kind="stable").reset_index(drop=True)
    return table, skipped


def markdown(table):
    """The comparison as one Markdown table: 'MBIF / IF' accuracy at a few T, and the win counts."""
    lines = []
    for _, r in table.iterrows():
        cells = {"dataset": r.dataset, "network": r.network, "path": r.path,
                 "threshold": r.threshold, "ANN": f"{r.ANN:.2f}", "MBIF row": r.mbif}
        for t in SHOWN_T:
            i, m = r.get(f"IF T={t}"), r.get(f"MBIF T={t}")
            cells[f"T={t}: MBIF / IF"] = "-" if pd.isna(i) or pd.isna(m) else f"{m:.2f} / {i:.2f}"
        cells["MBIF ahead / IF ahead (of T swept)"] = f"{r.mbif_ahead} / {r.if_ahead} (of {r.T_swept})"
        lines.append(cells)
    return pd.DataFrame(lines).to_markdown(index=False)


def main(argv):
    out, tables = "results/mbif_vs_if", []
    for a in argv:
        if a.startswith("-"):
            fail(f"unknown option '{a}'; {USAGE}")
        if a.endswith(".csv"):
            tables.append(a)
        else:
            out = a
    if not tables:
        fail(f"give at least one TABLE.csv; {USAGE}")
    check_out_stem(out, "results/mbif_vs_if")
    df = pd.concat([read_table(t) for t in tables], ignore_index=True)
    table, skipped = compare(df)
    if table.empty:
        fail("no ANN in these tables has both an IF and an MBIF row with v_init half-lsb")
    cmd = "python results/mbif_vs_if.py" + "".join(f" {a}" for a in argv)
    text = ("MBIF against IF on every conversion path: for each ANN (one training, one threshold mode), each MBIF row "
            "with v_init half-lsb beside the same ANN's IF row with v_init half-lsb. Top-1 accuracy in % on each "
            "table's test images, written `MBIF / IF`; the last column counts the swept T at which MBIF is strictly "
            "above IF and those at which IF is strictly above.\n\n" + markdown(table)
            + f"\n\nRows copied from {', '.join(tables)} by `{cmd}`."
            + ("" if not skipped else " Skipped (no single IF half-lsb row): " + "; ".join(skipped) + ".") + "\n")
    write_report(out, text, table)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
