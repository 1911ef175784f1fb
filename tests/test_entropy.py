"""Spike entropy (seed §3.1, Table 1, Fig. 7): exact values, a Monte-Carlo check against the neuron's
own fire rule, the measured mode on a tiny model, the plot, and the `entropy` command (invoked
directly with click's CliRunner, so it needs no registration in the main group)."""

import math
import os

import numpy as np
import pytest

from conftest import write_fake_cifar10
import torch
from click.testing import CliRunner

from ann2snn.plumbing.checkpoint import FORMAT, save_checkpoint
from ann2snn.cli.entropy import entropy_cmd, parse_bits
from ann2snn.analysis.entropy import (SpikeCountHistogram, analytic_results, empirical_spike_entropy,
                             entropy_table, neuron_sites, plot_spike_histograms, potential_entropy,
                             spike_entropy, spike_value_probs)
from ann2snn.plumbing.errors import UserError
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.conversion.snn import convert_ann
from ann2snn.ann.train import DEFAULTS
from helpers import random_batches, tiny_ann

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BITS4 = [(1, 0), (2, 0), (1, 1), (2, 1)]




@pytest.fixture(scope="module")
def ann():
    return tiny_ann()


@pytest.fixture(scope="module")
def batches():
    return random_batches(32, 16, seed=3)


# --- analytic values (Table 1) --------------------------------------------------------------------


def test_table1_computed_values():
    assert round(spike_entropy(0.6, 1, 0), 4) == 0.8475  # the one value where the paper agrees
    assert round(spike_entropy(0.6, 2, 0), 4) == 1.2197
    assert round(spike_entropy(0.6, 1, 1), 4) == 1.5381
    assert round(spike_entropy(0.6, 2, 1), 4) == 1.9291
    assert round(potential_entropy(), 4) == 2.0471
    assert potential_entropy() == pytest.approx(0.5 * math.log2(2 * math.pi * math.e), abs=0)


def test_if_probabilities_by_hand():
    # IF at V_th = 0.6: P(spike) = P(U >= 0.6) = 1 - Φ(0.6)
    phi = 0.5 * (1 + math.erf(0.6 / math.sqrt(2)))
    p = spike_value_probs(0.6, 1, 0)
    assert p.dtype == np.float64 and p.shape == (2,)
    assert p[1] == pytest.approx(1 - phi, abs=1e-15)
    assert p[1] == pytest.approx(0.2742531177500736, abs=1e-12)
    assert spike_entropy(0.6, 1, 0) == pytest.approx(-(p * np.log2(p)).sum(), abs=1e-15)


@pytest.mark.parametrize("v_th,m,n", [(0.6, 1, 0), (0.6, 2, 1), (1.0, 1, 3), (0.3, 3, 2), (0.05, 8, 8), (5.0, 2, 0)])
def test_probabilities_are_a_distribution(v_th, m, n):
    p = spike_value_probs(v_th, m, n)
    assert p.shape == (2 ** (m + n),)
    assert (p >= 0).all()
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    h = spike_entropy(v_th, m, n)
    assert 0 <= h <= m + n + 1e-12


def test_more_bits_refine_the_partition():
    # 2+1's bins refine both 2+0's and 1+1's, so entropy cannot drop along those chains
    h = {b: spike_entropy(0.6, *b) for b in BITS4 + [(1, 3), (4, 4)]}
    assert h[(1, 0)] < h[(2, 0)] < h[(2, 1)]
    assert h[(1, 0)] < h[(1, 1)] < h[(2, 1)]
    assert h[(4, 4)] > h[(1, 3)]


def test_bad_analytic_inputs():
    for v_th in (0, -0.6, float("nan"), float("inf")):
        with pytest.raises(UserError, match="V_th"):
            spike_value_probs(v_th, 1, 0)
    with pytest.raises(UserError, match="bit widths"):
        spike_value_probs(0.6, 0, 0)
    with pytest.raises(UserError):
        spike_value_probs(0.6, 9, 9)


@pytest.mark.parametrize("v_th,m,n", [(0.6, 1, 0), (0.6, 2, 0), (0.6, 1, 1), (0.6, 2, 1), (1.0, 1, 3)])
def test_probabilities_match_the_neurons_fire_rule(v_th, m, n):
    """Monte Carlo: one MultiBitIF step from v = 0 on N(0,1) samples; every bin within 4σ (binomial)."""
    N = 1_000_000
    g = torch.Generator().manual_seed(1234 + 10 * m + n)
    u = torch.randn(N, generator=g)
    neuron = MultiBitIF(v_th, m, n, v_init="zero")
    s = neuron(u)
    k = torch.round(s / neuron.quantum()).to(torch.int64)
    freq = torch.bincount(k, minlength=neuron.k_max + 1).double().numpy() / N
    p = spike_value_probs(v_th, m, n)
    sigma = np.sqrt(p * (1 - p) / N)
    assert freq.shape == p.shape
    assert (np.abs(freq - p) <= 4 * sigma + 1e-12).all(), (freq, p)


def test_table_and_notes():
    table, notes = entropy_table()
    assert list(table.columns) == ["bits", "K", "computed_entropy", "paper_table1", "difference", "max_entropy"]
    assert list(table["bits"]) == ["1+0", "2+0", "1+1", "2+1"]
    assert list(table["computed_entropy"]) == [0.8475, 1.2197, 1.5381, 1.9291]
    assert list(table["paper_table1"]) == [0.848, 1.149, 1.361, 1.998]  # as printed in the seed's Table 1
    assert table["difference"].tolist() == pytest.approx([-0.0005, 0.0707, 0.1771, -0.0689], abs=1e-4)
    # one note per differing row, naming computed and printed values; none for 1+0
    assert len(notes) == 3
    for bits, computed, paper in [("2+0", "1.2197", "1.149"), ("1+1", "1.5381", "1.361"), ("2+1", "1.9291", "1.998")]:
        assert any(note.startswith(bits) and computed in note and paper in note for note in notes), notes
    assert not any(note.startswith("1+0") for note in notes)
    # at another threshold there is nothing to compare with, and the notes say so
    table, notes = entropy_table(1.0, [(1, 0), (1, 3)])
    assert table["paper_table1"].isna().all()
    assert len(notes) == 1 and "V_th = 0.6 only" in notes[0]
    table, notes = entropy_table(0.6, [(1, 0), (1, 3)])
    assert table["paper_table1"].isna().tolist() == [False, True]
    assert notes == ["the seed's Table 1 has no value for 1+3 (it lists 1+0, 2+0, 1+1, 2+1)"]


# --- measured mode (Fig. 7) -----------------------------------------------------------------------


def test_empirical_entropy_on_tiny_model(ann, batches):
    sites = neuron_sites(ann)
    for site in (None, sites[-1]):
        results = empirical_spike_entropy(ann, batches, site, BITS4, T=3)
        assert [r["bits"] for r in results] == ["1+0", "2+0", "1+1", "2+1"]
        h = {}
        for r, (m, n) in zip(results, BITS4):
            assert r["site"] == (site or sites[0])
            K = 2 ** (m + n) - 1
            assert r["K"] == K and len(r["histogram"]) == len(r["probs"]) == K + 1
            assert math.isfinite(r["entropy_bits"]) and 0 <= r["entropy_bits"] <= math.log2(K + 1) + 1e-12
            assert r["entropy_bits"] == pytest.approx(-sum(p * math.log2(p) for p in r["probs"] if p > 0))
            assert sum(r["histogram"]) == r["elements"] and r["samples"] == 32
            assert sum(r["probs"]) == pytest.approx(1.0)
            assert r["firing_fraction"] == pytest.approx(1 - r["probs"][0])
            assert r["mean_count"] == pytest.approx(sum(k * p for k, p in enumerate(r["probs"])))
            assert r["mean_value_theta"] == pytest.approx(r["mean_count"] / 2 ** n)
            assert 0 < r["firing_fraction"] < 1
            h[(m, n)] = r["entropy_bits"]
        # every element of the site, every image, every step is counted
        per_image = results[0]["elements"] // (32 * 3)
        assert results[0]["elements"] == per_image * 32 * 3
        assert len({r["elements"] for r in results}) == 1
        # more bits, more entropy
        assert h[(1, 0)] < h[(1, 1)] < h[(2, 1)]
        assert h[(1, 0)] <= h[(2, 0)] <= h[(2, 1)]
        assert h[(1, 0)] < h[(2, 1)]


def test_empirical_histogram_matches_direct_count(ann, batches):
    """The observer's histogram equals counting k = s/q from the neuron's own outputs."""
    snn = convert_ann(ann, {"neuron": "mbif", "int_bits": 1, "frac_bits": 2, "v_init": "half-lsb"})
    site = neuron_sites(ann)[2]
    neuron = snn.get_submodule(site)
    expected = torch.zeros(8, dtype=torch.int64)
    from ann2snn.conversion.simulate import reset_neurons
    with torch.no_grad():
        for x, _ in batches:
            reset_neurons(snn)
            for _t in range(2):
                outs = []
                h = neuron.register_forward_hook(lambda _m, _i, o: outs.append(o))
                snn(x)
                h.remove()
                expected += torch.bincount(torch.round(outs[0] / neuron.quantum()).long().flatten(), minlength=8)
    reset_neurons(snn)
    r = empirical_spike_entropy(ann, batches, site, [(1, 2)], T=2)[0]
    assert r["histogram"] == expected.tolist()


def test_one_shot_iterator_serves_every_bit_width(ann, batches):
    results = empirical_spike_entropy(ann, (b for b in batches), None, [(1, 0), (1, 1)], T=1)
    assert results[0]["elements"] == results[1]["elements"] > 0


def test_hooks_are_removed(ann, batches):
    snn = convert_ann(ann, {"neuron": "mbif", "int_bits": 1, "frac_bits": 1, "v_init": "half-lsb"})
    site = neuron_sites(ann)[0]
    with SpikeCountHistogram(snn, site) as obs:
        assert len(snn.get_submodule(site)._forward_hooks) == 1
    assert len(snn.get_submodule(site)._forward_hooks) == 0
    obs.close()  # idempotent
    empirical_spike_entropy(ann, batches[:1], site, [(1, 0)], T=1)
    assert all(len(m._forward_hooks) == 0 for m in ann.modules())


def test_bad_site_lists_the_valid_ones(ann, batches):
    sites = neuron_sites(ann)
    for bad in ("nope", "conv1", "layers.0.0"):  # missing; a conv; a block holding neurons
        with pytest.raises(UserError) as e:
            empirical_spike_entropy(ann, batches, bad, [(1, 0)], T=1)
        msg = str(e.value)
        assert repr(bad) in msg and "\n" not in msg and all(s in msg for s in sites)
    snn = convert_ann(ann, {"neuron": "if", "int_bits": 1, "frac_bits": 0, "v_init": "half-lsb"})
    with pytest.raises(UserError, match="act1"):
        SpikeCountHistogram(snn, "bn1")
    with pytest.raises(UserError, match="T must be"):
        empirical_spike_entropy(ann, batches, None, [(1, 0)], T=0)
    with pytest.raises(UserError, match="bit widths"):
        empirical_spike_entropy(ann, batches, None, [(0, 0)], T=1)


def test_plot_writes_png(tmp_path):
    path = tmp_path / "sub" / "hist.png"
    assert plot_spike_histograms(analytic_results(0.6, BITS4 + [(4, 4)]), str(path), title="t") == str(path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    assert os.listdir(path.parent) == ["hist.png"]  # no temporary file left behind
    with pytest.raises(UserError):
        plot_spike_histograms([], str(tmp_path / "empty.png"))


# --- the `entropy` command ------------------------------------------------------------------------


def invoke(args):
    return CliRunner().invoke(entropy_cmd, [str(a) for a in args])


@pytest.mark.parametrize("text", ["1+0,2", "1+0,,2+0", "a+b", "1-0", "", "1+0;2+0", "0+0", "9+9", "-1+2"])
def test_bad_bits_are_user_errors(text):
    with pytest.raises(UserError) as e:
        parse_bits(text)
    assert "\n" not in str(e.value)
    result = invoke(["--bits", text])
    assert isinstance(result.exception, UserError), result.output


def test_parse_bits():
    assert parse_bits("1+0, 2+0,1+1 ,2+1,1+0") == BITS4
    assert parse_bits("1+3") == [(1, 3)]


def test_cli_analytic_table(tmp_path):
    result = invoke(["--out", tmp_path / "out"])
    assert result.exit_code == 0, result.output
    for text in ("0.8475", "1.2197", "1.5381", "1.9291", "2.0471", "1.149", "1.361", "1.998"):
        assert text in result.output
    assert sum(line.startswith("- ") for line in result.output.splitlines()) == 3
    csv = (tmp_path / "out" / "entropy.csv").read_text().splitlines()
    assert csv[0] == "bits,K,computed_entropy,paper_table1,difference,max_entropy" and len(csv) == 5
    assert (tmp_path / "out" / "spike_hist.png").read_bytes().startswith(PNG_SIGNATURE)
    # another threshold: the table is computed, and the note says the paper has no values there
    result = invoke(["--v-th", "1.0", "--bits", "1+3"])
    assert result.exit_code == 0 and f"{spike_entropy(1.0, 1, 3):.4f}" in result.output
    assert "V_th = 0.6 only" in result.output


def test_cli_refuses_measured_flags_without_checkpoint():
    result = invoke(["--T", "8", "--layer", "act1"])
    assert isinstance(result.exception, UserError)
    assert "--layer" in str(result.exception) and "--T" in str(result.exception)
    result = invoke(["--v-th", "0"])
    assert result.exit_code == 2 and "Invalid value for '--v-th': 0 is not in the range 0 < x <= 1e+06" in result.output


@pytest.fixture(scope="module")
def ann_checkpoint(tmp_path_factory, ann):
    """The tiny ANN saved in train-ann's checkpoint format, with a 10-image stand-in for CIFAR-10."""
    d = tmp_path_factory.mktemp("entropy")
    cfg = {**DEFAULTS, "arch": "resnet20", "dataset": "cifar10", "width": 0.25, "lambda_init": 1.0, "epochs": 1}
    save_checkpoint({"kind": "ann", "format": FORMAT, "config": cfg, "epoch": 1, "model_state": ann.state_dict(),
                     "metrics": [], "complete": True}, str(d / "ann.pt"))
    return str(d / "ann.pt"), write_fake_cifar10(d / "data")


def test_cli_measured_mode(tmp_path, ann_checkpoint):
    ckpt, data = ann_checkpoint
    out = tmp_path / "out"
    args = ["--checkpoint", ckpt, "--data-dir", data, "--skip-md5", "--subset", 10, "--T", 2, "--quiet"]
    result = invoke(args + ["--out", out])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Measured at site 'act1'" in result.output and "0.8475" in result.output
    csv = (out / "entropy.csv").read_text().splitlines()
    assert csv[0].startswith("bits,neuron,site,theta,T,v_init,K,entropy_bits") and len(csv) == 5
    assert all(",act1," in line for line in csv[1:])
    assert (out / "spike_hist.png").read_bytes().startswith(PNG_SIGNATURE)
    assert sorted(os.listdir(out)) == ["entropy.csv", "spike_hist.png"]
    # another layer
    result = invoke(args + ["--layer", "layers.2.2.act2", "--bits", "1+3"])
    assert result.exit_code == 0 and "'layers.2.2.act2'" in result.output
    # a layer that is no neuron site: one line, naming the valid sites
    result = invoke(args + ["--layer", "conv1"])
    assert isinstance(result.exception, UserError)
    assert "layers.0.0.act1" in str(result.exception) and "\n" not in str(result.exception)
    assert result.output == ""  # checked before anything is printed
    for bad, msg in ((["--T", 0], "Invalid value for '--T': 0 is not in the range 1<=x<=1000000"),
                     (["--batch-size", 0], "Invalid value for '--batch-size': 0 is not in the range 1<=x<=1000000"),
                     (["--subset", -1], "Invalid value for '--subset': must be a number of images >= 1 or 'all'"),
                     (["--subset", 0], "Invalid value for '--subset': must be a number of images >= 1 or 'all'")):
        result = invoke(args + bad)
        assert result.exit_code == 2 and msg in result.output, bad
