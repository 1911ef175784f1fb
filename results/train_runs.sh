#!/usr/bin/env bash
# The real CPU training runs behind results/ (each resumes if its checkpoint exists, so a run that was
# cut off continues where it stopped when the script is run again).
# Usage: OMP_NUM_THREADS=1 bash results/train_runs.sh [RUN ...]
#   RUN = DATASET-ARCH-ACTIVATION[-seedS], e.g. cifar10-vgg16-qcfs, cifar100-resnet18-matched,
#   cifar10-vgg16-matched-seed1.   DATASET: cifar10|cifar100  ARCH: vgg16|resnet18
#   ACTIVATION: qcfs (L=4) | matched (1+3) | relu (plain ReLU; thresholds come from data at conversion).
#   Seed 0 when no -seedS suffix.
# Every run: width 0.25, 30 epochs, lambda init auto (unused by relu), the plain QCFS/matched activation
# (--fuse off: the runs behind results/ were trained before --fuse existed, and a fused backward sums dL/dλ in
# another order, so a retrain with it would not repeat them bit for bit). CIFAR-100 is the offline copy (--skip-md5).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS_DIR:-runs}
for run in "${@:-cifar10-vgg16-qcfs}"; do
  IFS=- read -r dataset arch act seed extra <<<"$run"
  seed=${seed#seed}; seed=${seed:-0}
  case "$dataset/$arch/$act/$extra" in
    cifar10/vgg16/*/|cifar10/resnet18/*/|cifar100/vgg16/*/|cifar100/resnet18/*/) ;;
    *) echo "unknown run '$run' (want DATASET-ARCH-ACTIVATION[-seedS])" >&2; exit 2 ;;
  esac
  case $act in
    qcfs) actflags="--activation qcfs --levels 4" ;;
    matched) actflags="--activation matched --bits 1+3" ;;
    relu) actflags="--activation relu" ;;
    *) echo "unknown activation '$act' in '$run' (qcfs|matched|relu)" >&2; exit 2 ;;
  esac
  md5=""; [ "$dataset" = cifar100 ] && md5="--skip-md5"
  resume=""; [ -f "$RUNS/$run/checkpoint.pt" ] && resume="--resume"
  cmd="ann2snn train-ann --dataset $dataset $md5 --arch $arch $actflags --width 0.25 --epochs 30 --seed $seed"
  fuse="--fuse off"; [ -n "$resume" ] && fuse=""   # a resumed run keeps the setting it was started with
  cmd="$cmd --lambda-init auto $fuse --quiet --out $RUNS/$run $resume"
  echo "== $run: $cmd"
  $cmd
done
