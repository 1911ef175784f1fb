#!/usr/bin/env bash
# The three ANNs behind the correction and per-layer-bit results (results/correction/), each resumable:
# a run cut off by the end of a session continues where it stopped when the script is run again.
# Usage: OMP_NUM_THREADS=1 bash results/correction_runs.sh RUN [RUN ...]
#   RUN = cifar10-vgg16-relu      the CIFAR-10 VGG-16 ReLU ANN (the smallest calibrated-ReLU gap)
#         cifar100-resnet18-relu  the CIFAR-100 ResNet-18 ReLU ANN (the largest gap)
#         cifar10-vgg16-qcfs      the CIFAR-10 VGG-16 QCFS (L = 4) ANN
# The recipe is the committed one of results/train_runs.sh (width 0.25, 30 epochs, seed 0, lambda init
# auto), except that 5,000 training images are held out (--holdout 5000: a class-balanced draw, the same
# for every run, recorded in the checkpoint) and never trained on: correction checks and the planner
# read them, never the test set. The activations take the default --fuse (auto).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS_DIR:-runs}
for run in "$@"; do
  case $run in
    cifar10-vgg16-relu) flags="--dataset cifar10 --arch vgg16 --activation relu" ;;
    cifar100-resnet18-relu) flags="--dataset cifar100 --skip-md5 --arch resnet18 --activation relu" ;;
    cifar10-vgg16-qcfs) flags="--dataset cifar10 --arch vgg16 --activation qcfs --levels 4" ;;
    *) echo "unknown run '$run' (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
  dir=$RUNS/holdout-$run
  resume=""; [ -f "$dir/checkpoint.pt" ] && resume="--resume"
  cmd="ann2snn train-ann $flags --width 0.25 --epochs 30 --seed 0 --lambda-init auto --holdout 5000 --quiet --out $dir $resume"
  echo "== $run: $cmd"
  $cmd   # a resumed run that is already complete says so and returns
done
