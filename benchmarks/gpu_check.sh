#!/usr/bin/env bash
# The GPU check: one short script for a lent GPU machine (the `device` tool). It installs
# ann2snn, trains full-width VGG-16 on a CIFAR-10 subset for a few epochs, runs the ratio benchmark
# on CUDA, sweeps IF and MBIF(1+3) to T=128, and prints every timing. Everything lands in $OUT.
#
# Prepare here (no internet there, and at most 64 MiB travels):
#   echo /.gpu_data/ >> .git/info/exclude
#   python ../shared/data/unpack_cifar.py data            # if ./data is not there yet
#   python benchmarks/pack_gpu_data.py data .gpu_data      # 10,000 train + 5,000 test images, ~46 MB
# Then run it through the device tool with carry [".gpu_data"]:
#   bash benchmarks/gpu_check.sh
set -euo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-runs/gpu_check}
EPOCHS=${EPOCHS:-3}; SNN_EPOCHS=${SNN_EPOCHS:-2}; WIDTH=${WIDTH:-1}; DEVICE=${DEVICE:-cuda}; TLIST=${TLIST:-1,2,4,8,16,32,64,128}
BENCH=${BENCH:---arch vgg16 --width $WIDTH --batch 256}
# (a CPU smoke run of this script's logic: DEVICE=cpu WIDTH=0.125 EPOCHS=1 SNN_EPOCHS=1 TLIST=1,4 BENCH="--width 0.125")
mkdir -p "$OUT"
log() { echo "== $(date +%T) $*"; }
t0=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v WARNING || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
D="--data-dir .gpu_data --skip-md5 --device $DEVICE"

log "train: VGG-16 width $WIDTH, QCFS L=4, $EPOCHS epochs, bf16"
s=$(date +%s)
python3 -m ann2snn train-ann --arch vgg16 --width $WIDTH --epochs $EPOCHS --batch-size 128 --amp bf16 $D --quiet \
  --out "$OUT/vgg16" 2>&1 | tee "$OUT/train.log"
log "train took $(( $(date +%s) - s )) s"

log "benchmark ratios on $DEVICE ($BENCH)"
s=$(date +%s)
python3 benchmarks/ratios.py --device $DEVICE $BENCH --out "$OUT/bench.md"
log "benchmark took $(( $(date +%s) - s )) s"

if [ "$DEVICE" = cuda ]; then
  log "no host-device synchronisation inside the time loop"
  python3 benchmarks/no_sync_check.py
fi

for amp in none bf16; do
  log "sweep IF and MBIF(1+3) at T=$TLIST, amp $amp, automatic time chunk"
  s=$(date +%s)
  python3 -m ann2snn sweep --checkpoint "$OUT/vgg16" --neuron if --neuron mbif:1+3 --T $TLIST \
    --no-ops --amp $amp $D --quiet --out "$OUT/sweep_$amp" | tee "$OUT/sweep_$amp.log"
  log "sweep (amp $amp) took $(( $(date +%s) - s )) s"
done
log "direct training: ResNet-20 width 4 (the default), MBLIF 2+1 + IC, T = 1, $SNN_EPOCHS epochs, fused step off (CUDA)"
s=$(date +%s)
python3 -m ann2snn train-snn --arch resnet20 --width 4 --T 1 --neuron mblif:2+1 --ic \
  --epochs $SNN_EPOCHS $D --quiet --out "$OUT/resnet20-mblif21-ic" 2>&1 | tee "$OUT/train_snn.log"
python3 -m ann2snn eval-snn --checkpoint "$OUT/resnet20-mblif21-ic" --T 1,2,4 $D --quiet \
  --out "$OUT/resnet20-mblif21-ic/eval" | tee -a "$OUT/train_snn.log"
python3 benchmarks/direct_ratios.py --device $DEVICE --width 4 --out "$OUT/bench_direct.md"
log "direct training took $(( $(date +%s) - s )) s"
log "total $(( $(date +%s) - t0 )) s"
