#!/usr/bin/env bash
# A network trained elsewhere, on an image folder, with its max-pool: the row behind results/folder/.
# Usage: OMP_NUM_THREADS=1 bash results/folder_runs.sh
# 1. CIFAR-10 written out as a PNG folder tree (real pixels; train/<class>/, val/<class>/) in $FOLDER.
# 2. torchvision's ResNet-18 (its max-pool kept), a plain ReLU network, trained on the whole training
#    folder at 64 px (RandomResizedCrop 64 + flip; evaluation: resize 73, centre crop 64), 4 epochs, seed 0,
#    SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, cosine. Resumable, also mid-epoch.
# 3. Its weights saved as a plain state_dict file, as another training script would save them.
# 4. Swept from that file without retraining: calibrated thresholds (99.9th percentile on 10 training
#    batches), the max-pool as a spiking max-pool, IF and MBIF(1+3), T = 1..64, the whole val folder.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS_DIR:-runs}
FOLDER=${FOLDER:-$RUNS/cifar10-png}
RUN=$RUNS/folder-cifar10-resnet18-relu
OUT=${OUT:-results/folder/cifar10-resnet18}
if [ ! -d "$FOLDER" ]; then
  echo "== python -m ann2snn.plumbing.make_folder $FOLDER"
  python -m ann2snn.plumbing.make_folder "$FOLDER"
fi
resume=""; [ -f "$RUN/checkpoint.pt" ] && resume="--resume"
cmd="ann2snn train-ann --arch torchvision:resnet18 --activation relu --dataset imagefolder --data-dir $FOLDER --image-size 64 --epochs 4 --batch-size 128 --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --seed 0 --quiet --out $RUN $resume"
echo "== $cmd"
$cmd   # a resumed run that is already complete says so and returns
python -c "import sys, torch; from ann2snn.ann.build import load_ann; m, _ = load_ann(sys.argv[1]); torch.save(m.state_dict(), sys.argv[2])" \
  "$RUN" "$RUN/resnet18-weights.pt"
cmd="ann2snn sweep --arch torchvision:resnet18 --weights $RUN/resnet18-weights.pt --dataset imagefolder --data-dir $FOLDER --image-size 64 --neuron if --neuron mbif:1+3 --threshold percentile:99.9 --calib-batches 10 --maxpool spiking --T 1,2,4,8,16,32,64 --quiet --out $OUT"
echo "== $cmd"
$cmd
