"""The one way to write a neuron and its bits: ``NAME[:M+N]`` (``if``, ``mbif``, ``mbif:1+3``, ``lif``,
``mblif:2+1``), and bits alone as ``M+N`` (``1+3``).

``M`` is the number of integer bits and ``N`` the number of fractional bits of a multi-bit spike
(:func:`ann2snn.ann.quantizer.check_bits`: ``M, N >= 0`` and ``1 <= M+N <= 16``). Each family has a
binary name, which is ``M+N = 1+0`` (IF, LIF) and takes no other bits, and a multi-bit name (MBIF,
MBLIF) whose bits are optional (its own default applies without them). The conversion side
(:mod:`ann2snn.conversion.snn`) reads :data:`CONVERSION_NEURONS`, the direct-training side
(:mod:`ann2snn.pipelines.train_snn`, the command line's ``train-snn``) :data:`DIRECT_NEURONS`.
"""

from __future__ import annotations

from ann2snn.ann.quantizer import check_bits
from ann2snn.plumbing.errors import UserError

#: (binary name, multi-bit name) of the converted neurons
CONVERSION_NEURONS = ("if", "mbif")
#: (binary name, multi-bit name) of the directly trained neurons
DIRECT_NEURONS = ("lif", "mblif")
#: the grammar as messages show it
GRAMMAR = "NAME[:M+N]"
#: the arguments a spec is read for, as messages name them (in backticks, so that the command line
#: shows each as its option: ann2snn.plumbing.errors)
ARGUMENTS = {"neuron": "`neuron`", "neurons": "`neurons`", "bits": "`bits`"}


def _whole(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_bits(text: str, argument: str = "bits") -> tuple[int, int]:
    """``"M+N"`` → ``(M, N)``, e.g. ``"1+3"`` → ``(1, 3)`` (spaces around the numbers are allowed).

    Args:
        argument: the argument's name in messages, a key of :data:`ARGUMENTS`.

    Raises:
        UserError: not two whole numbers joined by ``+``, or bits out of range (:func:`check_bits`).
    """
    m, plus, n = str(text).partition("+")
    m, n = m.strip(), n.strip()
    if not (plus and _whole(m) and _whole(n)):
        raise UserError(f"bad {ARGUMENTS[argument]} {text!r}: bits are written M+N (M integer bits, N fractional "
                        "bits), e.g. 1+3")
    bits = (int(m), int(n))
    check_bits(*bits)
    return bits


def parse_neuron(spec: str, names: tuple[str, str] = CONVERSION_NEURONS, argument: str = "neuron") -> dict:
    """``NAME[:M+N]`` → ``{"neuron": NAME}``, plus ``"int_bits": M, "frac_bits": N`` when bits are given.

    ``names`` is ``(binary, multi-bit)``: :data:`CONVERSION_NEURONS` (``if`` / ``mbif``) or
    :data:`DIRECT_NEURONS` (``lif`` / ``mblif``). The binary name takes no bits but ``1+0``
    (``if:1+0`` is ``if``); the multi-bit name takes any bits :func:`check_bits` allows.

    Args:
        argument: the argument's name in messages, a key of :data:`ARGUMENTS`.

    Raises:
        UserError: another name, bits not written ``M+N``, bits other than 1+0 on the binary name,
            or bits out of range; the message shows the grammar.
    """
    binary, multi = names
    grammar = f"{GRAMMAR}: {binary}, {multi} or {multi}:M+N (M integer bits, N fractional bits, e.g. {multi}:" \
              f"{'1+3' if multi == 'mbif' else '2+1'})"
    name, colon, bits = str(spec).strip().partition(":")
    if name not in names:
        raise UserError(f"bad {ARGUMENTS[argument]} {spec!r}: write {grammar}")
    if not colon:
        return {"neuron": name}
    m, plus, n = bits.partition("+")
    if not (plus and _whole(m.strip()) and _whole(n.strip())):
        raise UserError(f"bad {ARGUMENTS[argument]} {spec!r}: write {grammar}")
    m, n = int(m), int(n)
    if name == binary and (m, n) != (1, 0):
        raise UserError(f"bad {ARGUMENTS[argument]} {spec!r}: {binary} is {multi}:1+0 (one-bit spikes); write {binary}, or "
                        f"{multi}:{m}+{n} for multi-bit spikes")
    check_bits(m, n)
    return {"neuron": name, "int_bits": m, "frac_bits": n}


def format_neuron(neuron: str, int_bits: int | None = None, frac_bits: int | None = None) -> str:
    """The ``NAME[:M+N]`` spelling of a neuron (``format_neuron("mbif", 1, 3)`` → ``"mbif:1+3"``);
    ``NAME`` alone when either bit count is None or the neuron is binary (a name in the first place of
    :data:`CONVERSION_NEURONS` / :data:`DIRECT_NEURONS`)."""
    if int_bits is None or frac_bits is None or neuron in (CONVERSION_NEURONS[0], DIRECT_NEURONS[0]):
        return neuron
    return f"{neuron}:{int_bits}+{frac_bits}"
