"""``ann2snn ablate``: the seed's Table 3 ablation (LIF, LIF+IC, MBLIF 2+0 / 1+1 / 2+1, 2+1+IC) over seeds.

Register it on the main group with ``cli.add_command(ablate_cmd)``. It takes train-snn's shared
training flags (width, epochs, T, subset, ...) once for all rows; the rows set the neuron, its bits
and ``--ic`` themselves. Running the same command again resumes an ablation that was cut off.
"""

from __future__ import annotations

import click
from ann2snn.cli.claims import claims_out

from ann2snn.cli.train_snn import shared_options


@click.command("ablate", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--rows", "rows_text", default="all", show_default=True,
              help="Comma list of rows: lif, lif+ic, mblif2+0, mblif1+1, mblif2+1, mblif2+1+ic ('all' = every one).")
@click.option("--seeds", "seeds_text", default="0,1", show_default=True, help="Seeds; one run per row and seed.")
@shared_options
@click.option("--out", required=True,
              help="Folder for one run folder per (row, seed) and ablation.csv/.md/.json. Re-run to resume.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@claims_out("dir")
def ablate_cmd(rows_text, seeds_text, out, quiet, **options):
    """Run the seed's Table 3 rows at one scale and write one table of mean ± std over seeds."""
    from ann2snn.pipelines.ablation import parse_rows, parse_seeds, run_ablation

    rows, seeds = parse_rows(rows_text), parse_seeds(seeds_text)
    paths = run_ablation(options, rows, seeds, out, progress=not quiet)
    click.echo(f"ablation table: {paths[1]}")
