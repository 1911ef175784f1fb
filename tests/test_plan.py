"""The per-site bit plan: its options, its Pareto front, the file round trip, the held-out split only,
and bad input."""

import json
import os
import subprocess
import sys

import pytest
import torch

from ann2snn.conversion.neurons import MultiBitIF, resolve_cap
from ann2snn.conversion.plan import PLAN_SCHEMA, T_grid, check_plan, pareto_front, site_options
from ann2snn.plumbing.errors import UserError


def test_site_options_are_the_fourteen_distinct_neurons_richest_first():
    options = site_options()
    behaviours = {(o["frac_bits"], o["cap"] or resolve_cap("full", o["int_bits"], o["frac_bits"])) for o in options}
    # by hand: n = 0: K = 1 (IF), 3 (2+0); n = 1..4: K = 2^(n+1) − 1, 2^(n+2) − 1 and 2^n (capped at θ)
    want = {(0, 1), (0, 3)} | {(n, k) for n in range(1, 5) for k in (2 ** (n + 1) - 1, 2 ** (n + 2) - 1, 2 ** n)}
    assert behaviours == want and len(options) == 14
    assert options[0] == {"int_bits": 2, "frac_bits": 4, "cap": None}  # K = 63, six bits per step
    assert options[-1] == {"int_bits": 1, "frac_bits": 0, "cap": None}  # IF
    bits = [(o["cap"] or resolve_cap("full", o["int_bits"], o["frac_bits"])).bit_length() for o in options]
    assert bits == sorted(bits, reverse=True)
    assert T_grid(8) == [1, 2, 4, 8] and T_grid(6) == [1, 2, 4, 6] and T_grid(1) == [1]


def test_pareto_front_by_hand():
    pts = [{"energy_uj": e, "accuracy": a} for e, a in [(3, 90), (1, 80), (2, 85), (2, 70), (4, 89), (5, 91)]]
    assert [(p["energy_uj"], p["accuracy"]) for p in pareto_front(pts)] == [(1, 80), (2, 85), (3, 90), (5, 91)]


def test_a_plan_for_another_network_or_schema_is_refused_naming_the_sites():
    ok = {"int_bits": 1, "frac_bits": 0, "cap": None}
    plan = {"schema": PLAN_SCHEMA, "site_bits": {"features.2": ok, "features.5": ok}}
    with pytest.raises(UserError, match=r"another network: sites it names that this network lacks: features\.5; "
                                        r"sites of this network it lacks: layer1\.0"):
        check_plan(plan, ["features.2", "layer1.0"])
    with pytest.raises(UserError, match="schema version 0"):
        check_plan({**plan, "schema": 0}, ["features.2", "features.5"])
    with pytest.raises(UserError, match="another ANN file"):
        check_plan({**plan, "source": {"sha256": "a"}}, ["features.2", "features.5"], "b")
    assert check_plan(plan, ["features.5", "features.2"]) is plan  # no file hash to compare: names and bits only
    good = {"schema": PLAN_SCHEMA, "site_bits": {"a": {"int_bits": 1, "frac_bits": 3, "cap": None},
                                                 "b": {"int_bits": 2, "frac_bits": 0, "cap": 3}},
            "source": {"sha256": "x"}}
    assert check_plan(good, ["a", "b"], "x") is good
    for bad in ({"int_bits": 1}, "1+2", {"int_bits": 1, "frac_bits": 3, "cap": 99}, {"int_bits": 0, "frac_bits": 0},
                {"int_bits": True, "frac_bits": 1}):
        with pytest.raises(UserError, match="the plan's bits for site b"):
            check_plan({**good, "site_bits": {**good["site_bits"], "b": bad}}, ["a", "b"], "x")
    with pytest.raises(UserError, match="names no ANN file"):
        check_plan({**good, "source": {}}, ["a", "b"], "x")


@pytest.fixture(scope="module")
def holdout_run(tmp_path_factory):
    """A tiny ReLU VGG-16 trained on a stand-in CIFAR-10 (200 training images, 50 held out)."""
    from conftest import write_fake_cifar10
    from ann2snn.pipelines.train_ann import train_ann

    root = tmp_path_factory.mktemp("plan")
    data = write_fake_cifar10(root / "data", per_file=40, smooth=True)
    train_ann({"arch": "vgg16", "width": 0.125, "dataset": "cifar10", "data_dir": data, "skip_md5": True,
               "activation": "relu", "epochs": 1, "batch_size": 25, "augment": "none", "lambda_init": 1.0,
               "holdout": 50}, str(root / "run"), progress=False)
    return root, data


def test_the_plan_reads_the_held_out_split_never_the_test_set(holdout_run, monkeypatch, tmp_path):
    """A data loader that raises when the test split is read: the planner never reads it. The plan file
    round-trips, and `convert --plan` rebuilds the very SNN the plan measured (its held-out accuracy at T)."""
    from ann2snn.conversion.simulate import simulate_snn
    from ann2snn.conversion.snn import convert_checkpoint, load_snn
    from ann2snn.pipelines.plan import load_plan, run_plan
    from ann2snn.plumbing import data as data_mod
    from ann2snn.plumbing.splits import holdout_batches

    root, data = holdout_run
    real = data_mod.load_split

    def no_test_split(name, path, train, *a, **k):
        if not train:
            raise AssertionError("the planner read the test split")
        return real(name, path, train, *a, **k)

    monkeypatch.setattr(data_mod, "load_split", no_test_split)
    out = tmp_path / "plan.json"
    plan = run_plan(str(root / "run"), max_drop=100.0, T_max=2, out=str(out), sens_images=16, data_dir=data,
                    skip_md5=True, plots=True)
    assert plan["feasible"] and plan["T"] in (1, 2) and plan["holdout_images"] == 50
    assert os.path.exists(tmp_path / "plan_pareto.csv") and os.path.exists(tmp_path / "plan_pareto.png")
    back = load_plan(str(out))
    assert back["site_bits"] == plan["site_bits"] and back["schema"] == PLAN_SCHEMA
    # every site of the network has bits; with max_drop 100 the cheapest configuration is the plan
    assert len(plan["site_bits"]) == 15 and plan["energy_uj"] == min(p["energy_uj"] for p in plan["points"])
    # the cost stated in the file: per T, 1 + 15 × 13 sensitivity runs, plus the held-out checks
    sens = sum(1 + 15 * 13 for _ in T_grid(2))
    assert plan["simulations"] == sens + len(plan["points"]) and len(plan["points"]) >= 2
    snn_path = tmp_path / "snn.pt"
    convert_checkpoint(str(root / "run"), {"neuron": "mbif", "int_bits": 2, "frac_bits": 4}, str(snn_path),
                       calibration={"threshold": "percentile:99.9", "calib_batches": 10, "fold_bn": False,
                                    "data_dir": data, "skip_md5": True}, plan=back)
    snn, ckpt = load_snn(str(snn_path))
    bits = {n: {"int_bits": m.int_bits, "frac_bits": m.frac_bits,
                "cap": m.cap if m.cap < resolve_cap("full", m.int_bits, m.frac_bits) else None}
            for n, m in snn.named_modules() if isinstance(m, MultiBitIF)}
    assert bits == plan["site_bits"]
    correct, total = simulate_snn(snn, holdout_batches(ckpt["config"], data, skip_md5=True), plan["T"])
    assert 100 * int(correct[plan["T"] - 1]) / total == plan["holdout_accuracy"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ann2snn", *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_bad_plan_input_is_one_line_and_writes_nothing(holdout_run, tmp_path):
    root, data = holdout_run
    out = tmp_path / "p.json"
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": PLAN_SCHEMA, "site_bits": {"layer9.act": {"int_bits": 1, "frac_bits": 0}},
                                 "conversion": {"threshold": "max"}}))
    cases = [
        (["plan", "--checkpoint", str(root / "run"), "--max-drop", "-0.5", "--out", str(out)], "--max-drop"),
        (["plan", "--checkpoint", str(root / "run"), "--T-max", "100001", "--data-dir", data, "--skip-md5",
          "--out", str(out)], "--T-max must be a whole number from 1 to 100,000"),
        (["plan", "--checkpoint", str(root / "run"), "--correct", "bias", "--data-dir", str(tmp_path / "none"),
          "--out", str(out)], "cifar10 not found"),
        (["convert", "--checkpoint", str(root / "run"), "--plan", str(other), "--data-dir", data, "--skip-md5",
          "--out", str(tmp_path / "s.pt")], "the plan was made for another network: sites it names that this "
                                            "network lacks: layer9.act"),
        (["convert", "--checkpoint", str(root / "run"), "--plan", str(tmp_path / "missing.json"),
          "--out", str(tmp_path / "s.pt")], "no plan file at"),
    ]
    for argv, words in cases:
        r = _cli(*argv)
        lines = [line for line in r.stderr.strip().splitlines() if not line.startswith(("warning:", "note:",
                                                                                         "calibrate:"))]
        assert r.returncode == 2 and len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr, \
            (argv, r.stderr)
        assert not out.exists() and not (tmp_path / "s.pt").exists()
    other.write_text(json.dumps({"schema": PLAN_SCHEMA + 1, "site_bits": {}}))
    r = _cli("convert", "--checkpoint", str(root / "run"), "--plan", str(other), "--out", str(tmp_path / "s.pt"))
    assert r.returncode == 2 and "schema version 2" in r.stderr


def test_a_run_without_a_held_out_split_cannot_be_planned(tmp_path):
    from ann2snn.pipelines.plan import run_plan
    from ann2snn.plumbing.checkpoint import FORMAT, save_checkpoint
    from helpers import tiny_ann

    save_checkpoint({"kind": "ann", "format": FORMAT, "model_state": tiny_ann("vgg16", width=0.125).state_dict(),
                     "config": {"arch": "vgg16", "dataset": "cifar10", "width": 0.125, "activation": "qcfs",
                                "levels": 4, "lambda_init": 1.0}}, str(tmp_path / "ann.pt"))
    with pytest.raises(UserError, match="no held-out split to plan on"):
        run_plan(str(tmp_path / "ann.pt"), out=str(tmp_path / "p.json"))
    assert not (tmp_path / "p.json").exists()
