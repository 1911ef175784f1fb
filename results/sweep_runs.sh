#!/usr/bin/env bash
# The real sweeps behind results/cifar10/ (after results/train_runs.sh). Full CIFAR-10 test set.
# Usage: OMP_NUM_THREADS=1 bash results/sweep_runs.sh [RUN ...]
#   RUN in: vgg16-qcfs vgg16-matched (CIFAR-10, with costs and plots: the first runs), or
#   DATASET-ARCH-ACTIVATION (e.g. cifar100-vgg16-qcfs, cifar10-resnet18-matched): accuracy on the full
#   test set only, into results/DATASET/ARCH-ACTIVATION[-if|-mbif]/ (QCFS: IF and MBIF(1+3) with
#   half-lsb and half-threshold in one sweep; matched: IF and MBIF(1+3) half-lsb as two sweeps), or
#   cifar10-ARCH-ACTIVATION-costs: operation counts on the 1,000-image subset, into <that folder>/costs, or
#   calibrated ReLU networks and the per-step cap:
#   cifar10-ARCH-relu-costs, cifar10-ARCH-qcfs-cap-costs: operation counts for the energy-to-parity table
#     (results/energy_parity.py), on the 1,000-image subset;
#   cifar10-vgg16-relu-settings: choose the threshold mode on a fixed 2,000-image test subset, with and
#     without --fold-bn (two processes), into results/cifar10/relu-settings/{no-fold,fold-bn}/;
#   DATASET-ARCH-relu: the full test set with the chosen mode (RELU_THRESHOLD below): IF zero, IF half-lsb,
#     MBIF(1+3) half-lsb, and MBIF(1+3) half-lsb capped at θ, one process each, into results/DATASET/ARCH-relu-*;
#   DATASET-ARCH-qcfs-cap: a QCFS(L=4) ANN (the run folder DATASET-ARCH-qcfs) as IF, MBIF(1+2) capped at K = 4
#     (exact at T = 1) and MBIF(1+3) capped at θ, in one process into results/DATASET/ARCH-qcfs-cap; with
#     CAP_ROWS (e.g. CAP_ROWS="mbif:1+2 if"), only those neurons, one process each (JOBS at a time), into
#     results/DATASET/ARCH-qcfs-cap-NEURON (e.g. resnet18-qcfs-cap-mbif-1+2), so that a ResNet-18's rows can run apart.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS_DIR:-runs}
T=1,2,4,8,16,32,64,128
# the threshold mode chosen on results/cifar10/relu-settings: percentile:99.9 gives the best IF
# and MBIF rows there at almost every T; --fold-bn changes no row by more than 0.2 points, so it is left off
RELU_THRESHOLD=${RELU_THRESHOLD:-percentile:99.9}
RELU_FOLD=${RELU_FOLD:-}
# rows of one DATASET-ARCH-relu entry run as separate processes, at most JOBS at a time (default 2, one per
# core; JOBS=1 runs them one after another, e.g. beside another background run)
JOBS=${JOBS:-2}
# the rows of a DATASET-ARCH-relu entry, as NEURON/V_INIT/CAP, in this order (default: all four)
#   e.g. RELU_ROWS="mbif:1+3/half-lsb/full if/half-lsb/full if/zero/full" (the capped row once, on CIFAR-10 VGG-16)
throttle() { while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done; }
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
    # energy to parity: operation counts on the 1,000-image subset for the best rows of the
    # calibrated ReLU path (IF and MBIF(1+3), half-lsb, the chosen threshold mode) and of the capped QCFS
    # path (IF, MBIF(1+2) K=4, MBIF(1+3) K=8), into results/cifar10/ARCH-relu/costs and ARCH-qcfs-cap/costs
    cifar10-*-relu-costs)
      IFS=- read -r dataset arch act _ <<<"$run"
      costs "$arch-relu" --checkpoint "$RUNS/$dataset-$arch-relu" --threshold $RELU_THRESHOLD $RELU_FOLD \
        --neuron if --neuron mbif:1+3 --v-init half-lsb ;;
    cifar10-*-qcfs-cap-costs)
      IFS=- read -r dataset arch act _ <<<"$run"
      costs "$arch-qcfs-cap" --checkpoint "$RUNS/$dataset-$arch-qcfs" --neuron if --neuron mbif:1+2 --neuron mbif:1+3 \
        --cap theta --v-init half-lsb ;;
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
    cifar10-vgg16-relu-settings)
      common="--checkpoint $RUNS/cifar10-vgg16-relu --neuron if --neuron mbif:1+3 --v-init half-lsb --v-init zero
              --v-init half-threshold --threshold max --threshold percentile:99.9 --threshold percentile:99.99
              --T $T --subset 2000 --no-ops --quiet"
      echo "== ann2snn sweep $(echo $common) --out results/cifar10/relu-settings/no-fold"
      ann2snn sweep $common --out results/cifar10/relu-settings/no-fold &
      echo "== ann2snn sweep $(echo $common) --fold-bn --out results/cifar10/relu-settings/fold-bn"
      ann2snn sweep $common --fold-bn --out results/cifar10/relu-settings/fold-bn &
      wait
      python results/combine.py results/cifar10/relu-settings ;;
    cifar10-*-relu|cifar100-*-relu)
      IFS=- read -r dataset arch act <<<"$run"
      md5=""; [ "$dataset" = cifar100 ] && md5="--skip-md5"
      common="--checkpoint $RUNS/$run --threshold $RELU_THRESHOLD $RELU_FOLD $md5 --T $T --no-ops --quiet"
      # one process per row (a process writes its table when its row is done)
      rows=${RELU_ROWS:-if/zero/full if/half-lsb/full mbif:1+3/half-lsb/full mbif:1+3/half-lsb/theta}
      for row in $rows; do  # checked before any row starts (the folder names know IF and MBIF(1+3) only)
        IFS=/ read -r neuron vinit cap extra <<<"$row"
        case "$neuron/$vinit/$cap/$extra" in
          if/*/full/|mbif:1+3/*/full/|mbif:1+3/*/theta/) ;;
          *) echo "bad RELU_ROWS entry '$row' (want NEURON/V_INIT/CAP: if|mbif:1+3, a --v-init, full|theta)" >&2; exit 2 ;;
        esac
      done
      pids=()
      for row in $rows; do
        IFS=/ read -r neuron vinit cap <<<"$row"
        out="results/$dataset/$arch-relu-${neuron%%:*}-$vinit"; [ "$cap" = theta ] && out="$out-cap-theta"
        throttle
        echo "== ann2snn sweep $(echo $common) --neuron $neuron --v-init $vinit --cap $cap --out $out"
        ann2snn sweep $common --neuron $neuron --v-init $vinit --cap $cap --out "$out" &
        pids+=($!)
      done
      for pid in "${pids[@]}"; do wait "$pid"; done   # a failed row stops the script (set -e)
      python results/combine.py "results/$dataset" ;;
    cifar10-*-qcfs-cap|cifar100-*-qcfs-cap)
      IFS=- read -r dataset arch act _ <<<"$run"
      md5=""; [ "$dataset" = cifar100 ] && md5="--skip-md5"
      if [ -z "${CAP_ROWS:-}" ]; then  # all three neurons in one process (as the two VGG-16 sweeps ran)
        echo "== ann2snn sweep --checkpoint $RUNS/$dataset-$arch-qcfs --neuron if --neuron mbif:1+2 --neuron mbif:1+3 --cap theta --v-init half-lsb $md5 --T $T --no-ops --out results/$dataset/$arch-qcfs-cap --quiet"
        ann2snn sweep --checkpoint "$RUNS/$dataset-$arch-qcfs" --neuron if --neuron mbif:1+2 --neuron mbif:1+3 --cap theta \
          --v-init half-lsb $md5 --T $T --no-ops --out "results/$dataset/$arch-qcfs-cap" --quiet
      else  # CAP_ROWS="if mbif:1+2 mbif:1+3" (any of them): one process per neuron, into ARCH-qcfs-cap-NEURON
        for neuron in $CAP_ROWS; do
          case $neuron in if|mbif:1+2|mbif:1+3) ;;
            *) echo "bad CAP_ROWS entry '$neuron' (want if, mbif:1+2 or mbif:1+3)" >&2; exit 2 ;; esac
        done
        pids=()
        for neuron in $CAP_ROWS; do
          out="results/$dataset/$arch-qcfs-cap-${neuron/:/-}"
          cap="--cap theta"; [ "$neuron" = if ] && cap=""   # IF sends at most θ per step already (sweep refuses a cap on IF alone)
          throttle
          echo "== ann2snn sweep --checkpoint $RUNS/$dataset-$arch-qcfs --neuron $neuron $cap --v-init half-lsb $md5 --T $T --no-ops --out $out --quiet"
          ann2snn sweep --checkpoint "$RUNS/$dataset-$arch-qcfs" --neuron $neuron $cap --v-init half-lsb $md5 --T $T \
            --no-ops --out "$out" --quiet &
          pids+=($!)
        done
        for pid in "${pids[@]}"; do wait "$pid"; done
      fi
      python results/combine.py "results/$dataset" ;;
    *) echo "unknown run $run (known: vgg16-qcfs vgg16-matched DATASET-ARCH-ACTIVATION cifar10-ARCH-ACTIVATION-costs cifar10-ARCH-relu-costs cifar10-ARCH-qcfs-cap-costs cifar10-vgg16-relu-settings DATASET-ARCH-relu DATASET-ARCH-qcfs-cap)" >&2; exit 2 ;;
  esac
done
[ -d results/cifar10/vgg16-qcfs ] && python results/combine.py results/cifar10   # stacks results/cifar10/*/sweep.csv
