#!/usr/bin/env bash
# The real sweeps behind results/cifar10/ (after results/train_runs.sh). Full CIFAR-10 test set.
# Usage: bash results/sweep_runs.sh [RUN ...]   RUN in: vgg16-qcfs vgg16-matched resnet18-qcfs resnet18-matched
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS_DIR:-runs}
T=1,2,4,8,16,32,64,128
for run in "${@:-vgg16-qcfs}"; do
  case $run in
    *-qcfs)    neurons="--neuron if --neuron mbif:1+3 --v-init half-lsb --v-init half-threshold" ;;
    *-matched) neurons="--neuron if --neuron mbif:1+3 --v-init half-lsb" ;;
    *) echo "unknown run $run" >&2; exit 2 ;;
  esac
  # accuracy on the full test set (operation counting off: it costs ~1.6x simulation time)
  echo "== ann2snn sweep --checkpoint $RUNS/cifar10-$run $neurons --T $T --no-ops --plots --out results/cifar10/$run --quiet"
  ann2snn sweep --checkpoint "$RUNS/cifar10-$run" $neurons --T $T --no-ops --plots --out "results/cifar10/$run" --quiet
  # operation counts, energy and per-layer diagnostics on a fixed class-balanced 1,000-image test subset
  echo "== ann2snn sweep --checkpoint $RUNS/cifar10-$run $neurons --T $T --subset 1000 --diagnostics --plots --out results/cifar10/$run/costs --quiet"
  ann2snn sweep --checkpoint "$RUNS/cifar10-$run" $neurons --T $T --subset 1000 --diagnostics --plots --out "results/cifar10/$run/costs" --quiet
done
python results/combine.py results/cifar10   # stacks results/cifar10/*/sweep.csv (the full-test-set tables)
