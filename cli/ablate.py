"""``ann2snn ablate``: the seed's Table 3 ablation (LIF, LIF+IC, MBLIF 2+0 / 1+1 / 2+1, 2+1+IC) over seeds.

Register it on the main group with ``cli.add_command(ablate_cmd)``. It takes train-snn's shared
training flags (width, epochs, T, subset, ...) once for all rows; the rows set the neuron, its bits
and ``--ic`` themselves (a row is a neuron ``NAME[:M+N]`` with an optional ``+ic``: ``mblif:2+1+ic``).
Running the same command again resumes an ablation that was cut off.
"""

from __future__ import annotations

import click
from ann2snn.cli.claims import claims_out

from ann2snn.cli import types as T
from ann2snn.cli.options import compute_options
from ann2snn.cli.train_snn import AMP_HELP, shared_options


@click.command("ablate", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--rows", "rows_text", default="all", show_default=True,
              help="Comma list of rows: lif, lif+ic, mblif:2+0, mblif:1+1, mblif:2+1, mblif:2+1+ic ('all' = every "
                   "one).")
@click.option("--seeds", "seeds_text", default="0,1", show_default=True, help="Seeds; one run per row and seed.")
@shared_options
@compute_options(amp_help=AMP_HELP)
@click.option("--out", type=T.OUT_DIR, required=True,
              help="Folder for one run folder per (row, seed) and ablation.csv/.md/.json. Re-run to resume.")
@claims_out("dir")
def ablate_cmd(rows_text, seeds_text, out, quiet, **options):
    """Run the seed's Table 3 rows at one scale and write one table of mean ± std over seeds."""
    from ann2snn.pipelines.ablation import OLD_ROW_NAMES, parse_rows, parse_seeds, run_ablation

    rows, seeds = parse_rows(rows_text), parse_seeds(seeds_text)
    old = [r.strip() for r in rows_text.split(",") if r.strip() in OLD_ROW_NAMES]
    if old:
        verb = "is" if len(old) == 1 else "are"
        click.echo(f"note: row name{'s' if len(old) > 1 else ''} {', '.join(old)} {verb} deprecated; write "
                   f"{', '.join(OLD_ROW_NAMES[r] for r in old)}", err=True)
    paths = run_ablation(options, rows, seeds, out, progress=not quiet)
    click.echo(f"ablation table: {paths[1]}")
