"""The scripts that assemble committed tables from run files: every number comes from the runs' own files."""

import json
import os

import pandas as pd

from helpers import load_results_script, run_main


def _metrics(path, accs, test=None):
    rows = [{"epoch": i + 1, "loss": 1.0, "train_acc": a, "test_acc": (test or accs)[i], "lr": 0.1, "seconds": 3600.0}
            for i, a in enumerate(accs)]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def test_direct_table_reads_the_runs_and_lists_an_unfinished_one(tmp_path):
    direct = load_results_script("direct_table")
    runs = tmp_path / "runs"
    _metrics(runs / "cifar10-resnet20-lif" / "metrics.csv", [0.5] * 20)
    (runs / "cifar10-resnet20-lif" / "eval").mkdir()
    (runs / "cifar10-resnet20-lif" / "eval" / "accuracy.json").write_text(
        json.dumps({"rows": [{"T=1": 69.47, "T=2": 67.82, "T=4": 59.66}]}))
    _metrics(runs / "cifar10-resnet20-mblif21-ic" / "metrics.csv", [0.6] * 12)  # cut off at epoch 12
    _metrics(runs / "cifar10-resnet20-relu" / "metrics.csv", [0.9] * 20, test=[0.9] * 19 + [0.9123])
    r = run_main(direct.main, str(runs), str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(tmp_path / "out" / "table.csv").set_index("run")
    assert table.loc["cifar10-resnet20-lif", "T=1"] == 69.47 and table.loc["cifar10-resnet20-lif", "hours"] == 20.0
    assert table.loc["cifar10-resnet20-mblif21-ic", "epochs_done"] == 12
    assert not table.loc["cifar10-resnet20-mblif21-ic", "finished"]
    assert pd.isna(table.loc["cifar10-resnet20-mblif21-ic", "T=1"])  # no number for an unfinished run
    assert table.loc["cifar10-resnet20-relu", "ANN"] == 91.23
    assert "cifar10-resnet20-mblif21" not in table.index  # a run never started is not a row
    assert (tmp_path / "out" / "train_metrics" / "cifar10-resnet20-lif.csv").exists()
