"""Per-layer diagnostics of a converted SNN, gathered during the one sweep simulation.

For every neuron site, :class:`LayerDiagnostics` (an :class:`~ann2snn.conversion.simulate.Observer`) records

* ``firing_rate``: mean of ``k_t / K`` over elements, steps 1..T_max and images (0..1);
* ``never_fired``: fraction of neuron elements (per image) whose count stayed 0 for all T_max steps;
* ``saturated``: fraction of (element, step) pairs at the largest count K;
* ``first_spike_step``: the first step (1-based) at which the layer emits anything, over all images
  (its minimum; ``None`` if it never does);
* ``err_T=<T>``: mean ``|r_T − a|`` at each requested T, where ``r_T = (Σ_{t≤T} s_t) / T`` is the
  layer's time-averaged output (rate·θ, in the units of θ) and ``a`` the source ANN activation of
  the same site on the same image (computed in ANN mode at the start of each batch).
"""

from __future__ import annotations

import torch
from torch import nn

from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.conversion.simulate import Observer


class LayerDiagnostics(Observer):
    """Collect per-site statistics during :func:`~ann2snn.conversion.simulate.simulate_snn`.

    Args:
        snn: the converted network (its neurons get forward hooks; call :meth:`remove` after).
        T_list: the steps at which ``err_T`` is measured (each <= the simulated T).
    """

    def __init__(self, snn: nn.Module, T_list: list[int]):
        self.snn = snn
        self.T_set = set(T_list)
        self.T_list = sorted(T_list)
        self.sites = {n: m for n, m in snn.named_modules() if isinstance(m, MultiBitIF)}
        z = {n: 0.0 for n in self.sites}
        self.rate_sum, self.rate_n = dict(z), dict(z)
        self.sat_sum = dict(z)
        self.never_sum, self.never_n = dict(z), dict(z)
        self.first_step: dict[str, int | None] = {n: None for n in self.sites}
        self.err_sum = {n: {T: 0.0 for T in self.T_list} for n in self.sites}
        self.err_n = {n: {T: 0 for T in self.T_list} for n in self.sites}
        self._active = False
        self._t = 0
        self._ann: dict[str, torch.Tensor] = {}
        self._cum: dict[str, torch.Tensor] = {}
        self._fired: dict[str, torch.Tensor] = {}
        self._scratch: dict[str, tuple] = {}
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.sites.items()]

    def _hook(self, name):
        def hook(mod, inp, out):
            if not self._active:
                return
            if mod.mode == "ann":
                self._ann[name] = out.detach()
                return
            # scratch tensors made once per batch and reused every step (see OpCounter._buffers)
            if name not in self._cum:
                self._scratch[name] = (torch.empty_like(out), torch.empty(out.shape, dtype=torch.bool,
                                                                           device=out.device))
            k, flag = self._scratch[name]
            torch.div(out, mod.quantum(), out=k).round_()
            self.rate_sum[name] += float(k.sum()) / mod.k_max
            self.rate_n[name] += k.numel()
            self.sat_sum[name] += float(torch.eq(k, mod.k_max, out=flag).sum())
            nz = torch.ne(k, 0, out=flag)
            if name not in self._cum:
                self._fired[name] = nz.clone()
                self._cum[name] = out.detach().clone()
            else:
                self._fired[name].logical_or_(nz)
                self._cum[name].add_(out)
            if self.first_step[name] is None or self._t + 1 < self.first_step[name]:
                if bool(nz.any()):
                    self.first_step[name] = self._t + 1
        return hook

    def begin_batch(self, x, y):
        from ann2snn.conversion.simulate import set_mode

        self._active = True
        self._t = 0
        self._cum, self._fired = {}, {}
        set_mode(self.snn, "ann")
        try:
            self.snn(x)
        finally:
            set_mode(self.snn, "snn")

    def end_step(self, t):
        T = t + 1
        if T in self.T_set:
            for name in self.sites:
                if name in self._cum:
                    err = (self._cum[name] / T - self._ann[name]).abs()
                    self.err_sum[name][T] += float(err.sum())
                    self.err_n[name][T] += err.numel()
        self._t = t + 1

    def end_batch(self):
        for name, fired in self._fired.items():
            self.never_sum[name] += float((~fired).sum())
            self.never_n[name] += fired.numel()
        self._active = False

    def remove(self):
        for h in self._handles:
            h.remove()
        self._handles = []

    def rows(self) -> list[dict]:
        """One dict per site (in module order) with the statistics above and θ."""
        out = []
        for name, m in self.sites.items():
            row = {"site": name, "theta": float(m.theta), "bits": f"{m.int_bits}+{m.frac_bits}",
                   "firing_rate": self.rate_sum[name] / max(self.rate_n[name], 1),
                   "never_fired": self.never_sum[name] / max(self.never_n[name], 1),
                   "saturated": self.sat_sum[name] / max(self.rate_n[name], 1),
                   "first_spike_step": self.first_step[name]}
            for T in self.T_list:
                row[f"err_T={T}"] = self.err_sum[name][T] / max(self.err_n[name][T], 1)
            out.append(row)
        return out
