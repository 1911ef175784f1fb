"""Shared by the results/ scripts that pick rows out of committed tables (energy_parity.py, mbif_vs_if.py):
a user mistake exits 2 with one line, and a report is written as OUT.md and OUT.csv, each through a temporary
file and a rename, so a reader never sees half of one."""

import os
import sys

from ann2snn.plumbing.checkpoint import atomic_write_text


def fail(msg):
    """Print `error: msg` on stderr and exit with status 2."""
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def check_out_stem(out, example):
    """Refuse an OUT that names a folder (OUT is a file stem: OUT.md and OUT.csv are written)."""
    if not os.path.basename(out):
        fail(f"OUT '{out}' names a folder; give a file stem such as {example}")


def write_report(out, text, table):
    """Write `text` to OUT.md and the DataFrame `table` to OUT.csv (atomically); exit 2 if OUT is unwritable."""
    try:
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        atomic_write_text(out + ".md", text)
        atomic_write_text(out + ".csv", table.to_csv(index=False))
    except OSError as e:
        fail(f"cannot write {out}.md/.csv: {e.strerror}; give a writable OUT")
