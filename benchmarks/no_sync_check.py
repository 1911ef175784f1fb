"""Check on CUDA that the simulation's time loop never waits for the host.

Runs the step loop of ``ann2snn.conversion.simulate.simulate_snn`` (and a chunked one) for a converted VGG-16
under ``torch.cuda.set_sync_debug_mode("error")``, which raises on any synchronising call. Only the
per-batch read-back of the counts, after the loop, synchronises. Usage: python benchmarks/no_sync_check.py
"""

from __future__ import annotations

import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from ratios import build, snn_of  # noqa: E402


def main() -> None:
    from ann2snn.plumbing.device import place
    from ann2snn.conversion.simulate import neurons_of, reset_neurons

    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this check needs a GPU")
    dev = torch.device("cuda")
    snn = place(snn_of(build("vgg16", 0.25).eval()), dev)
    x = torch.randn(64, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.zeros(64, dtype=torch.long, device=dev)
    T = 16
    with torch.inference_mode():
        for chunk in (1, 4):
            for n in neurons_of(snn):
                n.time_chunk = chunk
            reset_neurons(snn)
            hits = torch.zeros(T, dtype=torch.int64, device=dev)
            snn(x.repeat(chunk, 1, 1, 1))  # warm-up outside the checked region
            reset_neurons(snn)
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            acc = None
            for start in range(0, T, chunk):  # the same operations as simulate_snn's loops
                out = snn(x.repeat(chunk, 1, 1, 1)).reshape(chunk, len(y), -1)
                for t in range(chunk):
                    acc = out[t] if acc is None else acc + out[t]
                    hits[start + t] = (acc.argmax(1) == y).sum()
            torch.cuda.set_sync_debug_mode("default")
            print(f"time chunk {chunk}: {T} steps without a host-device synchronisation; hits {hits.cpu().tolist()[:4]}...")


if __name__ == "__main__":
    main()
