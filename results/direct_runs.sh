#!/usr/bin/env bash
# The direct-training runs on the full CIFAR-10 training set at a single time step (the seed's Table 4
# setting), each resumable: a run that was cut off continues where it stopped when the
# script is run again with the same RUN.
# Usage: OMP_NUM_THREADS=1 bash results/direct_runs.sh RUN [RUN ...]
#   RUN = cifar10-resnet20-lif        LIF, no interlaminar connection (the seed's Table 3 row 1)
#         cifar10-resnet20-mblif21-ic MBLIF 2+1 with the interlaminar connection (Table 3 row 6)
#         cifar10-resnet20-mblif21    MBLIF 2+1 without it (the connection's share)
#         cifar10-resnet20-relu       the ReLU ResNet-20 ANN with the same recipe (the baseline)
#   (cifar100-... for the same four on CIFAR-100, with --skip-md5 for this project's offline copy)
# The recipe (fixed before the runs start: the cosine schedule's length depends on the epochs):
# ResNet-20 at width 1 (16/32/64 channels, He et al.), T = 1, seed 0, 20 epochs, and the seed's
# optimizer settings: SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 64, cosine schedule,
# crop-flip augmentation. The SNNs take the fused neuron step (--fuse on: the same spikes and
# gradients as the plain step, tests/test_fused_mblif.py). After training, every SNN is evaluated at
# T = 1, 2 and 4 (eval-snn), into RUNS/RUN/eval.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS_DIR:-runs}
EPOCHS=20
for run in "$@"; do
  IFS=- read -r dataset arch kind ic extra <<<"$run"
  case "$dataset/$arch/$kind/$ic/$extra" in
    cifar10/resnet20/lif//|cifar10/resnet20/mblif21/ic/|cifar10/resnet20/mblif21//|cifar10/resnet20/relu//) ;;
    cifar100/resnet20/lif//|cifar100/resnet20/mblif21/ic/|cifar100/resnet20/mblif21//|cifar100/resnet20/relu//) ;;
    *) echo "unknown run '$run' (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
  md5=""; [ "$dataset" = cifar100 ] && md5="--skip-md5"
  resume=""; [ -f "$RUNS/$run/checkpoint.pt" ] && resume="--resume"
  common="--dataset $dataset $md5 --arch resnet20 --width 1 --epochs $EPOCHS --batch-size 64 --lr 0.1 --momentum 0.9 --weight-decay 1e-4 --seed 0"
  case $kind in
    relu) cmd="ann2snn train-ann $common --activation relu --quiet --out $RUNS/$run $resume" ;;
    lif) cmd="ann2snn train-snn $common --T 1 --neuron lif --no-ic --fuse on --quiet --out $RUNS/$run $resume" ;;
    mblif21) icflag="--no-ic"; [ "$ic" = ic ] && icflag="--ic"
             cmd="ann2snn train-snn $common --T 1 --neuron mblif --int-bits 2 --frac-bits 1 $icflag --fuse on --quiet --out $RUNS/$run $resume" ;;
  esac
  echo "== $run: $cmd"
  $cmd   # a resumed run that is already complete says so and returns
  if [ "$kind" != relu ]; then
    evalcmd="ann2snn eval-snn --checkpoint $RUNS/$run --T 1,2,4 $md5 --quiet --out $RUNS/$run/eval"
    echo "== $run: $evalcmd"
    $evalcmd
  fi
done
