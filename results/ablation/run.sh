#!/usr/bin/env bash
# The CPU-scale Table 3 ablation behind results/ablation/ (CIFAR-10, spiking ResNet-20).
# Run folders go to $RUNS_DIR/ablation (ignored by git); the table is copied here when all runs finish.
# Re-running the same command resumes an ablation that was cut off.
# Usage: OMP_NUM_THREADS=1 bash results/ablation/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS_DIR:-runs}
ann2snn ablate --rows all --seeds 0,1,2 --dataset cifar10 --arch resnet20 --width 0.5 --T 4 --epochs 4 \
  --subset 4000 --test-subset 1000 --quiet --out "$RUNS/ablation"
cp "$RUNS/ablation/ablation.csv" "$RUNS/ablation/ablation.md" "$RUNS/ablation/ablation.json" results/ablation/
