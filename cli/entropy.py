"""``ann2snn entropy``: spike entropy of multi-bit spikes (the seed's §3.1, Table 1 and Fig. 7).

Register it on the main group with ``cli.add_command(entropy_cmd)``.
"""

from __future__ import annotations

import click
from ann2snn.cli import types as T
from ann2snn.cli.claims import claims_out
from click.core import ParameterSource

from ann2snn.cli.options import FOLDER_KEYS, compute_options, data_options, folder_options, pop_folder_options
from ann2snn.plumbing.errors import UserError

#: options that only the empirical mode (--checkpoint) uses
EMPIRICAL_ONLY = ("layer", "T", "v_init", "subset", "batch_size", "data_dir", "download", "skip_md5", "threads",
                  "quiet", *FOLDER_KEYS)


def parse_bits(text: str) -> list[tuple[int, int]]:
    """Parse ``"1+0,2+0,1+1,2+1"`` into ``[(1, 0), (2, 0), (1, 1), (2, 1)]`` (duplicates dropped); each
    item is bits ``M+N`` as :func:`ann2snn.ann.spec.parse_bits` reads them.

    Raises:
        UserError: an item that is not ``M+N`` with whole numbers, or bits out of range.
    """
    from ann2snn.ann.spec import parse_bits as parse_one

    out = []
    for item in str(text).split(","):
        try:
            bits = parse_one(item, "bits")
        except UserError as e:
            if not str(e).startswith("bad `bits`"):  # bits out of range: check_bits's own message
                raise
            raise UserError(f"bad `bits` {text!r}: give M+N items separated by commas, e.g. 1+0,2+0,1+1,2+1") \
                from None
        if bits not in out:
            out.append(bits)
    return out


@click.command("entropy", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--v-th", type=T.floats(0, 1e6, lo_open=True), default=0.6, show_default=True,
              help="Threshold V_th of the analytic table (potential U ~ N(0,1)); the seed's Table 1 uses 0.6.")
@click.option("--bits", "bits_text", default="1+0,2+0,1+1,2+1", show_default=True,
              help="Bit widths M+N, comma-separated (1+0 is IF).")
@click.option("--checkpoint", type=T.CHECKPOINT, default=None,
              help="ANN checkpoint (file or run folder): also measure the spike counts of one neuron site "
                   "of the converted SNN on test images (the seed's Fig. 7).")
@click.option("--layer", default=None, help="Neuron site to measure (module name); default: the first site.")
@click.option("--T", "T", type=T.counts(1_000_000), default=4, show_default=True, help="Time steps to simulate.")
@click.option("--v-init", type=click.Choice(["half-lsb", "half-threshold", "zero"]), default="half-lsb",
              show_default=True, help="Initial membrane potential of the converted neurons.")
@click.option("--subset", type=T.IMAGES, default=500, show_default=True,
              help="Class-balanced subset of N test images, or all.")
@click.option("--batch-size", type=T.BATCH, default=100, show_default=True)
@data_options("cifar-10-batches-py/ or cifar-100-python/, or for an image-folder model ROOT's val/<class>/ images")
@folder_options()
@compute_options(device=False, amp=False)
@click.option("--out", type=T.OUT_DIR, default=None,
              help="Folder for entropy.csv and spike_hist.png (the analytic table and distributions, or "
                   "with --checkpoint the measured ones).")
@click.pass_context
@claims_out("dir")
def entropy_cmd(ctx, v_th, bits_text, checkpoint, layer, T, v_init, subset, batch_size, data_dir, download,
                skip_md5, quiet, out, **folder):
    """Spike entropy (bits) of IF / MBIF spikes: the analytic table for U ~ N(0,1), and with
    --checkpoint the measured spike-count distribution of one layer (on the CPU)."""
    import os

    from ann2snn.plumbing.checkpoint import atomic_write_text, check_output_dir
    from ann2snn.analysis.entropy import (analytic_results, entropy_table, empirical_spike_entropy, neuron_sites,
                                 plot_spike_histograms, potential_entropy, results_frame)

    bits_list = parse_bits(bits_text)
    table, notes = entropy_table(v_th, bits_list)
    if checkpoint is None:
        given = [k for k in EMPIRICAL_ONLY if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE]
        if given:
            flags = ", ".join("--" + ("T" if k == "T" else k.replace("_", "-")) for k in given)
            verb, them = ("applies", "it") if len(given) == 1 else ("apply", "them")
            raise UserError(f"{flags} {verb} only to the measured mode: add --checkpoint, or drop {them}")
    if out is not None:
        check_output_dir(out)
    if checkpoint is not None:  # every check that can fail comes before any output
        from ann2snn.ann.build import load_ann
        from ann2snn.pipelines.sweep import load_test_batches
        from ann2snn.plumbing.distributed import Dist

        ann, ckpt = load_ann(checkpoint)
        sites = neuron_sites(ann)
        if layer is not None and layer not in sites:
            raise UserError(f"--layer {layer!r} is not a neuron site; use one of: {', '.join(sites)}")
        site = layer if layer is not None else sites[0]
        batches = load_test_batches(ckpt["config"], data_dir, batch_size, subset, download, skip_md5, "cpu", Dist(),
                                    pop_folder_options(folder))

    click.echo(f"Spike entropy (bits) of k = clip(floor(U / (V_th·2^-n)), 0, 2^(m+n)-1), U ~ N(0,1), "
               f"V_th = {v_th:g}:\n")
    click.echo(table.to_markdown(index=False))
    click.echo(f"\nH(U) = ½·log2(2πe) = {potential_entropy():.4f} bits (differential entropy of the potential)")
    for note in notes:
        click.echo(f"- {note}")

    if checkpoint is None:
        if out is not None:
            os.makedirs(out, exist_ok=True)
            csv = os.path.join(out, "entropy.csv")
            atomic_write_text(csv, table.to_csv(index=False))
            png = plot_spike_histograms(analytic_results(v_th, bits_list), os.path.join(out, "spike_hist.png"),
                                        title=f"spike counts for U ~ N(0,1), V_th = {v_th:g}")
            click.echo(f"wrote {csv}, {png}")
        return

    results = empirical_spike_entropy(ann, batches, site, bits_list, T, v_init, progress=not quiet)
    frame = results_frame(results)
    r0 = results[0]
    click.echo(f"\nMeasured at site {site!r} ({r0['samples']} test images, T = {T}, v_init {v_init}, "
               f"θ = {r0['theta']:.4g}):\n")
    click.echo(frame.drop(columns=["site", "T", "v_init", "histogram"]).round(4).to_markdown(index=False))
    for r in results:
        click.echo(f"- {r['bits']}: P(k) = " + ", ".join(f"{p:.4f}" for p in r["probs"]))
    if out is not None:
        os.makedirs(out, exist_ok=True)
        csv = os.path.join(out, "entropy.csv")
        atomic_write_text(csv, frame.to_csv(index=False))
        png = plot_spike_histograms(results, os.path.join(out, "spike_hist.png"),
                                    title=f"{ckpt['config']['arch']} site {site}, T = {T}, {r0['samples']} images")
        click.echo(f"wrote {csv}, {png}")
