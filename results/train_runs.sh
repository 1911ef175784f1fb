#!/usr/bin/env bash
# The real CPU training runs behind results/ (each resumes if its checkpoint exists).
# Usage: bash results/train_runs.sh [RUN ...]   RUN in: vgg16-qcfs vgg16-matched resnet18-qcfs resnet18-matched
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS_DIR:-runs}
common="--dataset cifar10 --width 0.25 --epochs 30 --seed 0 --lambda-init auto --quiet"
train() {  # name, then flags
  local name=$1; shift
  local resume=""; [ -f "$RUNS/$name/checkpoint.pt" ] && resume="--resume"
  echo "== $name: ann2snn train-ann $common $* --out $RUNS/$name $resume"
  ann2snn train-ann $common "$@" --out "$RUNS/$name" $resume
}
for run in "${@:-vgg16-qcfs}"; do
  case $run in
    vgg16-qcfs)       train cifar10-vgg16-qcfs --arch vgg16 --activation qcfs --levels 4 ;;
    vgg16-matched)    train cifar10-vgg16-matched --arch vgg16 --activation matched --int-bits 1 --frac-bits 3 ;;
    resnet18-qcfs)    train cifar10-resnet18-qcfs --arch resnet18 --activation qcfs --levels 4 ;;
    resnet18-matched) train cifar10-resnet18-matched --arch resnet18 --activation matched --int-bits 1 --frac-bits 3 ;;
    *) echo "unknown run $run" >&2; exit 2 ;;
  esac
done
