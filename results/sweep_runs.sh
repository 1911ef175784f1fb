#!/usr/bin/env bash
# The real sweeps behind results/cifar10/ (after results/train_runs.sh). Full CIFAR-10 test set.
# Usage: OMP_NUM_THREADS=1 bash results/sweep_runs.sh [RUN ...]
#   RUN in: vgg16-qcfs vgg16-matched (CIFAR-10, with costs and plots: the first runs), or
#   DATASET-ARCH-ACTIVATION (e.g. cifar100-vgg16-qcfs, cifar10-resnet18-matched): accuracy on the full
#   test set only, into results/DATASET/ARCH-ACTIVATION[-if|-mbif]/ (QCFS: IF and MBIF(1+3) with
#   half-lsb and half-threshold in one sweep; matched: IF and MBIF(1+3) half-lsb as two sweeps), or
#   cifar10-ARCH-ACTIVATION-costs: operation counts on the 1,000-image subset, into <that folder>/costs.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS_DIR:-runs}
T=1,2,4,8,16,32,64,128
# Each sweep: accuracy on the full test set (operation counting off: it adds simulation time;
# --plots also gathers per-layer diagnostics), then operation counts, energy and diagnostics on a fixed
# class-balanced 1,000-image test subset (written under <run>/costs, which combine.py leaves out).
costs() {  # out-folder, then flags: operation counts on the subset, into results/cifar10/<out>/costs
  local out=$1; shift
  echo "== ann2snn sweep $* --T $T --subset 1000 --diagnostics --plots --out results/cifar10/$out/costs --quiet"
  ann2snn sweep "$@" --T $T --subset 1000 --diagnostics --plots --out "results/cifar10/$out/costs" --quiet
}
sweep() {  # out-folder, then flags: the full test set, then costs
  local out=$1; shift
  echo "== ann2snn sweep $* --T $T --no-ops --plots --out results/cifar10/$out --quiet"
  ann2snn sweep "$@" --T $T --no-ops --plots --out "results/cifar10/$out" --quiet
  costs "$out" "$@"
}
for run in "${@:-vgg16-qcfs}"; do
  case $run in
    vgg16-qcfs) sweep vgg16-qcfs --checkpoint "$RUNS/cifar10-vgg16-qcfs" --neuron if --neuron mbif:1+3 \
                  --v-init half-lsb --v-init half-threshold ;;
    # the matched ANN's two neurons ran as two processes (one per core); its costs sweep covers both
    vgg16-matched)
      ann2snn sweep --checkpoint "$RUNS/cifar10-vgg16-matched" --neuron mbif:1+3 --v-init half-lsb --T $T --no-ops \
        --plots --out results/cifar10/vgg16-matched-mbif --quiet &
      ann2snn sweep --checkpoint "$RUNS/cifar10-vgg16-matched" --neuron if --v-init half-lsb --T $T --no-ops \
        --plots --out results/cifar10/vgg16-matched-if --quiet &
      wait
      costs vgg16-matched-mbif --checkpoint "$RUNS/cifar10-vgg16-matched" --neuron if --neuron mbif:1+3 --v-init half-lsb ;;
    # operation counts, energy and diagnostics for the other CIFAR-10 networks (1,000-image subset),
    # beside the accuracy-only sweeps below: e.g. cifar10-resnet18-qcfs-costs, cifar10-resnet18-matched-costs
    cifar10-*-qcfs-costs|cifar10-*-matched-costs)
      IFS=- read -r dataset arch act _ <<<"$run"
      if [ "$act" = qcfs ]; then neurons="--neuron if --neuron mbif:1+3 --v-init half-lsb --v-init half-threshold"; out=$arch-qcfs
      else neurons="--neuron if --neuron mbif:1+3 --v-init half-lsb"; out=$arch-matched-mbif; fi
      costs "$out" --checkpoint "$RUNS/$dataset-$arch-$act" $neurons ;;
    cifar10-*-qcfs|cifar100-*-qcfs|cifar10-*-matched|cifar100-*-matched)
      IFS=- read -r dataset arch act <<<"$run"
      md5=""; [ "$dataset" = cifar100 ] && md5="--skip-md5"
      if [ "$act" = qcfs ]; then
        echo "== ann2snn sweep --checkpoint $RUNS/$run --neuron if --neuron mbif:1+3 --v-init half-lsb --v-init half-threshold $md5 --T $T --no-ops --out results/$dataset/$arch-qcfs --quiet"
        ann2snn sweep --checkpoint "$RUNS/$run" --neuron if --neuron mbif:1+3 --v-init half-lsb --v-init half-threshold \
          $md5 --T $T --no-ops --out "results/$dataset/$arch-qcfs" --quiet
      else
        for neuron in mbif:1+3 if; do
          out="results/$dataset/$arch-matched-${neuron%%:*}"
          echo "== ann2snn sweep --checkpoint $RUNS/$run --neuron $neuron --v-init half-lsb $md5 --T $T --no-ops --out $out --quiet"
          ann2snn sweep --checkpoint "$RUNS/$run" --neuron $neuron --v-init half-lsb $md5 --T $T --no-ops --out "$out" --quiet
        done
      fi
      python results/combine.py "results/$dataset" ;;
    *) echo "unknown run $run (known: vgg16-qcfs vgg16-matched DATASET-ARCH-ACTIVATION cifar10-ARCH-ACTIVATION-costs)" >&2; exit 2 ;;
  esac
done
[ -d results/cifar10/vgg16-qcfs ] && python results/combine.py results/cifar10   # stacks results/cifar10/*/sweep.csv
