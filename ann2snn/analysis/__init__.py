"""Analysis of a converted network: operation counts and energy, bit planes, per-layer diagnostics,
spike entropy and plots."""
