#!/usr/bin/env bash
# λ-init comparison: the same short training with λ init 8.0 (QCFS), 2.0 and auto.
# VGG-16 width 0.25, QCFS L=4, CIFAR-10, a fixed class-balanced 10,000-image training subset,
# 5 epochs, full 10,000-image test set, seed 0. Writes results/lambda_init/table.{csv,md}.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS_DIR:-runs}/lambda_init
for li in 8.0 2.0 auto; do
  [ -f "$RUNS/$li/checkpoint.pt" ] && resume=--resume || resume=
  ann2snn train-ann --arch vgg16 --width 0.25 --dataset cifar10 --levels 4 --epochs 5 --subset 10000 \
    --seed 0 --lambda-init "$li" --quiet --out "$RUNS/$li" $resume
done
python - "$RUNS" <<'PY'
import sys, pandas as pd
runs = sys.argv[1]
rows = []
for li in ["8.0", "2.0", "auto"]:
    m = pd.read_csv(f"{runs}/{li}/metrics.csv")
    rows.append({"lambda_init": li, "epochs": int(m.epoch.iloc[-1]),
                 **{f"test_acc_ep{int(e)}": round(100 * a, 2) for e, a in zip(m.epoch, m.test_acc)},
                 "final_train_loss": round(float(m.loss.iloc[-1]), 4)})
df = pd.DataFrame(rows)
df.to_csv("results/lambda_init/table.csv", index=False)
with open("results/lambda_init/table.md", "w") as f:
    f.write("Test accuracy (%) after each epoch, VGG-16 ×0.25, QCFS L=4, CIFAR-10 (10k-image train subset, "
            "full test set), seed 0.\n\n" + df.to_markdown(index=False) + "\n\nMade by `bash results/lambda_init/run.sh`.\n")
print(df.to_markdown(index=False))
PY
