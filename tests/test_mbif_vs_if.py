"""results/mbif_vs_if.py (the MBIF-against-IF reading) on the committed real tables."""

from pathlib import Path

import pandas as pd

from helpers import load_results_script, run_main

ROOT = Path(__file__).resolve().parents[1]
C10 = ROOT / "results/cifar10/table.csv"

MV = load_results_script("mbif_vs_if")


def run(*args):
    """The script's main() in this process: (exit status, stderr)."""
    return run_main(MV.main, *args)


def test_pairs_each_mbif_row_with_the_if_row_of_the_same_ann(tmp_path):
    r = run(tmp_path / "mv", C10)
    assert r.returncode == 0, r.stderr
    out, src = pd.read_csv(tmp_path / "mv.csv"), pd.read_csv(C10)
    assert (tmp_path / "mv.md").read_text().count("\n| cifar10") == len(out)
    # the two QCFS(L=4) VGG-16 trainings stay apart: the capped rows beside the IF row of the 84.04 % ANN
    capped = out[(out.network == "vgg16") & (out.path == "qcfs, capped")]
    assert set(capped.mbif) == {"MBIF 1+2 K=4", "MBIF 1+3 K=8"} and set(capped.ANN) == {84.04}
    src_if = src[(src.network == "vgg16") & (src.activation == "qcfs") & (src.ANN == 84.04) & (src.neuron == "IF")]
    for _, row in capped.iterrows():
        assert row["IF T=1"] == src_if["T=1"].item() and row["IF T=128"] == src_if["T=128"].item()
    # values copied unchanged, and the win counts agree with them
    relu = out[(out.network == "vgg16") & (out.path == "relu")].iloc[0]
    src_mb = src[(src.network == "vgg16") & (src.activation == "relu") & (src.neuron == "MBIF 1+3")
                 & (src.v_init == "half-lsb")].iloc[0]
    assert relu["MBIF T=4"] == src_mb["T=4"] and relu.T_swept == 8
    for _, row in out.iterrows():
        ts = [c[3:] for c in out if c.startswith("IF T=") and pd.notna(row[c])]
        assert row.mbif_ahead == sum(row[f"MBIF {t}"] > row[f"IF {t}"] for t in ts)
        assert row.if_ahead == sum(row[f"IF {t}"] > row[f"MBIF {t}"] for t in ts)
    # pipeline order inside a network
    paths = list(out[out.network == "vgg16"].path)
    assert paths == sorted(paths, key=MV.PATH_ORDER.index)


def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    text = tmp_path / "text.csv"
    text.write_text("dataset,network,activation,L_or_bits,threshold,ANN,neuron,v_init,T=1\n"
                    "c,v,relu,-,p,50,IF,half-lsb,abc\nc,v,relu,-,p,50,MBIF 1+3,half-lsb,3\n")
    cases = [(tmp_path / "mv", "--bogus", "unknown option"),
             (tmp_path / "mv", "no TABLE", "give at least one TABLE.csv"),
             (tmp_path / "mv", tmp_path / "missing.csv", "not found"),
             (tmp_path / "mv", bad, "not a table written by results/combine.py"),
             (tmp_path / "mv", text, "column T=1 holds values that are not accuracies"),
             (f"{tmp_path}/", C10, "names a folder")]
    for *args, msg in cases:
        r = run(*args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and msg in r.stderr, (args, r.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "text.csv"]


def test_if_rows_of_one_ann_swept_twice_count_once_and_differing_ones_are_skipped(tmp_path):
    head = "dataset,network,width,epochs,activation,L_or_bits,neuron,v_init,threshold,T=1,T=2,ANN\n"
    ann = "c100,vgg16,0.25,30,qcfs,L=4,"
    same = tmp_path / "same.csv"   # the uncapped sweep and the capped sweep of one ANN: equal IF rows
    same.write_text(head + ann + "IF,half-lsb,lambda,21.34,33.3,46.82\n" + ann + "MBIF 1+3,half-lsb,lambda,17.49,17.46,46.82\n"
                    + ann + "IF,half-lsb,lambda,21.34,33.3,46.82\n" + ann + "MBIF 1+2 K=4,half-lsb,lambda,46.82,47.0,46.82\n")
    r = run(tmp_path / "mv", same)
    assert r.returncode == 0, r.stderr
    out = pd.read_csv(tmp_path / "mv.csv")
    assert list(out.mbif) == ["MBIF 1+3", "MBIF 1+2 K=4"] and list(out["IF T=2"]) == [33.3, 33.3]
    assert list(out.mbif_ahead) == [0, 2] and "Skipped" not in (tmp_path / "mv.md").read_text()
    differ = tmp_path / "differ.csv"  # two IF rows that differ: not the same ANN, so no pairing is made
    differ.write_text(same.read_text().replace("IF,half-lsb,lambda,21.34,33.3", "IF,half-lsb,lambda,21.34,33.4", 1))
    r = run(tmp_path / "mv2", differ)
    assert r.returncode == 2 and "no ANN in these tables" in r.stderr
