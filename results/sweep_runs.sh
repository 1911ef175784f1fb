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
  echo "== ann2snn sweep --checkpoint $RUNS/cifar10-$run $neurons --T $T --diagnostics --plots --out results/cifar10/$run --quiet"
  ann2snn sweep --checkpoint "$RUNS/cifar10-$run" $neurons --T $T --diagnostics --plots --out "results/cifar10/$run" --quiet
done
python results/combine.py results/cifar10
