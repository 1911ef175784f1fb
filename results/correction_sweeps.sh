#!/usr/bin/env bash
# The correction and per-site-bit results of one ANN of results/correction_runs.sh (results/correction/).
# Usage: OMP_NUM_THREADS=1 bash results/correction_sweeps.sh RUN [STEP ...]
#   RUN  = cifar10-vgg16-relu | cifar100-resnet18-relu | cifar10-vgg16-qcfs (trained by correction_runs.sh)
#   STEP = tcal | correct | uniform | plan (default: all four, in this order). A step whose output exists is
#          skipped, so the script continues where a cut-off session stopped.
#   tcal     T_cal chosen on the held-out split (results/correction_tcal.py): none, bias and bias+potential at
#            T_cal = 1, 2, 4, 8, IF and MBIF(1+3), T = 1..8.
#   correct  the test set at T = 1, 2, 4, 8: IF and MBIF(1+3) with --correct none, bias, bias+potential
#            (the default T_cal, 1,000 training images), operation counts on.
#   uniform  the test set at T = 1..128 (powers of two), uniform IF and MBIF(1+3), operation counts on: the
#            first T within a drop, and its energy.
#   plan     `ann2snn plan --max-drop D --T-max 8` for D = 0.5 and 1 (held-out split), then `convert --plan`
#            and a sweep of the planned SNN on the test set at T = 1..8.
# θ: percentile:99.9 of 10 training batches for a ReLU ANN, λ for the QCFS one. CIFAR-100 needs --skip-md5
# (the offline copy).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS_DIR:-runs}
run=${1:?give a RUN (see the usage at the top of $0)}
shift
steps=${*:-tcal correct uniform plan}
case $run in
  cifar10-vgg16-relu|cifar100-resnet18-relu) threshold="percentile:99.9" ;;
  cifar10-vgg16-qcfs) threshold="lambda" ;;
  *) echo "unknown run '$run' (see the usage at the top of $0)" >&2; exit 2 ;;
esac
md5=""; [[ $run == cifar100-* ]] && md5="--skip-md5"
ann=$RUNS/holdout-$run
out=results/correction/$run
mkdir -p "$out"
for step in $steps; do
  case $step in
    tcal)
      [ -f "$out/tcal.md" ] && continue
      cmd="python results/correction_tcal.py $ann $out/tcal-tmp $md5"
      echo "== $cmd"; $cmd
      mv "$out"/tcal-tmp/tcal_*.md "$out/tcal.md"; mv "$out"/tcal-tmp/tcal_*.csv "$out/tcal.csv"; rmdir "$out/tcal-tmp" ;;
    correct)
      [ -f "$out/correct/sweep.md" ] && continue
      cmd="ann2snn sweep --checkpoint $ann --neuron if --neuron mbif:1+3 --threshold $threshold --correct none --correct bias --correct bias+potential --T 1,2,4,8 $md5 --quiet --out $out/correct"
      echo "== $cmd"; $cmd ;;
    uniform)
      [ -f "$out/uniform/sweep.md" ] && continue
      cmd="ann2snn sweep --checkpoint $ann --neuron if --neuron mbif:1+3 --threshold $threshold --T 1,2,4,8,16,32,64,128 $md5 --quiet --out $out/uniform"
      echo "== $cmd"; $cmd ;;
    plan)
      for drop in 0.5 1; do
        if [ ! -f "$out/plan-$drop.json" ]; then
          cmd="ann2snn plan --checkpoint $ann --max-drop $drop --T-max 8 --threshold $threshold $md5 --quiet --out $out/plan-$drop.json"
          echo "== $cmd"; $cmd
        fi
        if [ ! -f "$out/planned-$drop/sweep.md" ]; then
          cmd="ann2snn convert --checkpoint $ann --plan $out/plan-$drop.json $md5 --quiet --out $out/planned-$drop.pt"
          echo "== $cmd"; $cmd
          cmd="ann2snn sweep --checkpoint $out/planned-$drop.pt --T 1,2,4,8 $md5 --quiet --out $out/planned-$drop"
          echo "== $cmd"; $cmd
          rm -f "$out/planned-$drop.pt"  # an SNN checkpoint is not committed; the plan and the command rebuild it
        fi
      done ;;
    *) echo "unknown step '$step' (tcal, correct, uniform or plan)" >&2; exit 2 ;;
  esac
done
