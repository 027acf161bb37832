"""CASC: ANN trained with ClipQuan_L, converted to Consistent IF neurons with wake-sleep conversion.

ANN side. A hidden activation is ``ClipQuan_L`` with a learned scale ``lam``::

    y = lam * floor(L clamp(x / lam, 0, 1)) / L

and its gradient is the clipped straight-through estimate: ``dy/dx = 1`` for ``0 <= x <= lam``,
0 outside. ``sw.train.models.ClipFloor`` is the special case ``L = 2^T - 1`` (SpikePack's levels);
here ``L`` is any positive integer, and for conversion to rate-coded IF neurons ``L = T``.

SNN side: Consistent IF (CIF) neurons, soft reset, threshold ``theta = lam``. At step ``t``
(``1 <= t <= T_wake + T_sleep``) a neuron with membrane ``v`` and spike count ``n`` receives its
current ``x_t`` and then::

    v += x_t
    s_t = +1  if v >= theta and n < min(t, L)      (count kept within [0, t], and at most L)
    s_t = -1  if v <  0     and n > 0              (signed spike: takes back an early spike)
    s_t =  0  otherwise
    v -= theta s_t;   n += s_t

A spike carries ``theta`` to the next layer: ``x_t = W (theta_prev s_prev,t) + b``. The first
layer receives the analog input as a constant current ``W x + b``.

Wake-sleep conversion (WSC): ``T_wake = L`` wake steps with biases (and the analog input), then
``T_sleep`` sleep steps in which biases and input are zero, so the spikes still travelling through
the network settle without integrating the bias more than ``L`` times. Once every neuron has
settled, ``n = clip(floor(sum_t x_t / theta), 0, L)`` with ``sum_t x_t = L (W a_prev + b)``, which
is exactly ``L ClipQuan_L`` of the ANN: the conversion is exact and the readout (``sum_t x_t / L``)
equals the ANN's logits.

# Ref: arXiv 2406.05371 (CASC), Sec. 3 -- ClipQuan_L, CIF neurons, wake-sleep conversion.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _check_L(L) -> int:
    try:
        L = operator.index(L)
    except TypeError:
        raise TypeError(f"L must be an integer number of levels, not {L!r}") from None
    if not 1 <= L <= 1 << 16:
        raise ValueError(f"L must be in 1..65536, not {L}")
    return L


class ClipQuan(nn.Module):
    """``ClipQuan_L``: ``lam floor(L clamp(x / lam, 0, 1)) / L`` with the clipped STE gradient.

    Parameters
    ----------
    L : int
        Number of quantization steps (``L + 1`` levels, 0 included), ``>= 1``.
    lam : float
        Initial clipping scale (``> 0``); the CIF threshold after conversion.
    learn_lam : bool
        Train ``lam`` (gradient through ``lam * clamp(x / lam, 0, 1)``).
    """

    def __init__(self, L: int, lam: float = 1.0, *, learn_lam: bool = True):
        super().__init__()
        self.L = _check_L(L)
        if not lam > 0:
            raise ValueError(f"lam must be positive, not {lam}")
        self.lam = nn.Parameter(torch.tensor(float(lam)), requires_grad=learn_lam)

    def scale(self) -> torch.Tensor:
        return self.lam.abs().clamp_min(1e-8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lam = self.scale()
        c = torch.clamp(x / lam, 0.0, 1.0)
        q = torch.floor(self.L * c) / self.L
        return lam * (c + (q - c).detach())

    def extra_repr(self) -> str:
        return f"L={self.L}, lam={float(self.lam.detach()):.4g}"


def casc_ann(sizes: Sequence[int], L: int, lam: float = 1.0) -> nn.Sequential:
    """ANN ``Linear, ClipQuan_L, ..., Linear`` for CASC conversion."""
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least input and output sizes, got {list(sizes)}")
    layers: list[nn.Module] = []
    pairs = list(zip(sizes, sizes[1:], strict=False))
    for i, (a, b) in enumerate(pairs):
        layers.append(nn.Linear(a, b))
        if i < len(pairs) - 1:
            layers.append(ClipQuan(L, lam))
    return nn.Sequential(*layers)


@dataclasses.dataclass(frozen=True)
class CIFLayer:
    """One converted layer: float64 ``weight``, ``bias (n_out,)``, threshold.

    Dense layers have ``weight (n_out, n_in)``; conv layers (``kind="conv"``) ``weight (C_out,
    C_in, kh, kw)`` with ``stride`` and zero ``padding``, shared over positions. ``in_shape`` is
    the ``(C, H, W)`` map the layer receives (a dense layer after a conv one reads it flattened);
    ``avg_pool = k`` average-pools it over ``k x k`` windows (stride ``k``) before the weights.
    Both are linear, so a spike train's sum goes through them as the ANN's activation does.
    """

    weight: np.ndarray
    bias: np.ndarray
    theta: float
    readout: bool = False
    kind: str = "dense"
    in_shape: tuple[int, ...] | None = None
    stride: int = 1
    padding: int = 0
    avg_pool: int = 0

    def apply(self, h: np.ndarray) -> np.ndarray:
        """The layer's linear map (no bias) on a batch ``h`` of received activations."""
        if self.in_shape is not None:
            h = h.reshape((len(h),) + tuple(self.in_shape))
        if self.avg_pool:
            h = F.avg_pool2d(torch.from_numpy(np.ascontiguousarray(h)), self.avg_pool).numpy()
        if self.kind == "conv":
            return F.conv2d(torch.from_numpy(np.ascontiguousarray(h)),
                            torch.from_numpy(self.weight), None, self.stride,
                            self.padding).numpy()
        return h.reshape(len(h), -1) @ self.weight.T

    def expand_bias(self, current: np.ndarray) -> np.ndarray:
        """The bias shaped to broadcast over ``current`` (per output channel)."""
        return self.bias.reshape((-1,) + (1,) * (current.ndim - 2))


@dataclasses.dataclass
class CIFResult:
    """What a CIF run did.

    Members
    -------
    logits : ndarray, shape (batch, classes)
        Readout: the summed readout current over all steps, divided by ``L``.
    counts : list of ndarray
        Final spike count per hidden layer, ``(batch, n_out)``, each in ``[0, L]``.
    spikes : list of int
        Spikes (positive and negative) per hidden layer, summed over batch and steps.
    negative_spikes : list of int
        The negative ones among them.
    steps : int
        Wake plus sleep steps run.
    trace : list of dict or None
        With ``trace=True``, per step and layer: ``current``, ``spikes``, ``count`` arrays.
    """

    logits: np.ndarray
    counts: list[np.ndarray]
    spikes: list[int]
    negative_spikes: list[int]
    steps: int
    trace: list[list[dict]] | None = None

    def predictions(self) -> np.ndarray:
        return np.argmax(self.logits, axis=-1)


def _check_cif_layer(index: int, layer: CIFLayer) -> None:
    """Refuse a layer the conversion cannot run: non-finite values or a threshold <= 0."""
    for name in ("weight", "bias"):
        bad = int(np.sum(~np.isfinite(getattr(layer, name))))
        if bad:
            raise ValueError(f"CIF layer {index}: {name} holds {bad} NaN/infinite value(s) (did "
                             "the ANN's training diverge?); retrain or fix the ANN")
    if not layer.readout and not (math.isfinite(layer.theta) and layer.theta > 0):
        raise ValueError(f"CIF layer {index}: threshold {layer.theta:g} must be a positive "
                         "number (the ClipQuan scale lambda); retrain or fix the ANN")


class CIFNetwork:
    """A converted CASC network of Consistent IF layers and a readout.

    Parameters
    ----------
    layers : sequence of CIFLayer
        Hidden layers then one readout layer.
    L : int
        Quantization steps of the ANN = wake steps of the SNN.
    """

    def __init__(self, layers: Sequence[CIFLayer], L: int):
        self.layers = tuple(layers)
        self.L = _check_L(L)
        if not self.layers or not self.layers[-1].readout:
            raise ValueError("a CIF network ends with a readout layer")
        if any(layer.readout for layer in self.layers[:-1]):
            raise ValueError("only the last CIF layer may be a readout")
        for i, layer in enumerate(self.layers):
            _check_cif_layer(i, layer)

    @classmethod
    @torch.no_grad()
    def from_ann(cls, ann: nn.Sequential) -> CIFNetwork:
        """Convert ``Linear, ClipQuan_L, ..., Linear`` (all with the same ``L``)."""
        mods = list(ann)
        layers, L = [], None
        for i in range(0, len(mods), 2):
            lin = mods[i]
            act = mods[i + 1] if i + 1 < len(mods) else None
            bad_act = act is not None and not isinstance(act, ClipQuan)
            if not isinstance(lin, nn.Linear) or bad_act:
                raise TypeError("expected nn.Sequential(Linear, ClipQuan, ..., Linear), as built "
                                "by sw.train.casc.casc_ann")
            if act is not None:
                lam = float(act.lam.detach())
                if not (math.isfinite(lam) and lam > 0):
                    raise ValueError(f"module {i + 1}: ClipQuan lam = {lam:g} is not a positive "
                                     "number (the forward pass uses |lam|, the CIF threshold "
                                     "must be positive): set lam and re-check, or retrain")
                if L is not None and act.L != L:
                    raise ValueError(f"all ClipQuan layers need the same L, got {L} and {act.L}")
                L = act.L
            bias = lin.bias if lin.bias is not None else torch.zeros(lin.out_features)
            layers.append(CIFLayer(lin.weight.double().numpy().copy(), bias.double().numpy().copy(),
                                   float(act.scale()) if act is not None else 1.0, act is None))
        if L is None:
            raise ValueError("the ANN has no ClipQuan activation to convert")
        return cls(layers, L)

    @classmethod
    @torch.no_grad()
    def from_cnn(cls, ann: nn.Sequential, in_shape=None) -> CIFNetwork:
        """Convert a ClipQuan CNN (``sw.train.conv_models.cnn(..., activation="clipquan")``):
        ``Conv2d, ClipQuan, [AvgPool2d] ..., Flatten, [Linear, ClipQuan] ..., Linear``.

        An average pooling is carried into the next layer (``CIFLayer.avg_pool``). Max pooling,
        BatchNorm and residual blocks are refused: signed spikes take back earlier ones, so the
        maximum of a window's spike trains is not the spike train of the ANN's maximum.
        """
        in_shape = in_shape if in_shape is not None else getattr(ann, "in_shape", None)
        if in_shape is None:
            raise ValueError("the model does not say its input shape; pass in_shape=(C, H, W)")
        shape = tuple(int(v) for v in in_shape)
        mods = list(ann)
        layers, L, avg, i = [], None, 0, 0
        while i < len(mods):
            m = mods[i]
            if isinstance(m, nn.Flatten | nn.Identity | nn.Dropout):
                i += 1
                continue
            if isinstance(m, nn.AvgPool2d):
                k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
                if avg or m.stride not in (k, (k, k), None) or m.padding not in (0, (0, 0)):
                    raise ValueError(f"module {i}: only one AvgPool2d(k) (stride k, no padding) "
                                     "between two layers converts")
                avg, i = k, i + 1
                continue
            if not isinstance(m, nn.Conv2d | nn.Linear):
                raise TypeError(f"module {i} is {type(m).__name__}; a CASC CNN converts Conv2d, "
                                "ClipQuan, AvgPool2d, Flatten and Linear (use average pooling, "
                                "no max pooling, BatchNorm or residual blocks)")
            act = mods[i + 1] if i + 1 < len(mods) else None
            if act is not None and not isinstance(act, ClipQuan):
                raise TypeError(f"module {i + 1} is {type(act).__name__}; expected ClipQuan "
                                "after a hidden Conv2d or Linear")
            if act is not None:
                if L is not None and act.L != L:
                    raise ValueError(f"all ClipQuan layers need the same L, got {L} and {act.L}")
                L = act.L
            bias = (m.bias if m.bias is not None else torch.zeros(m.weight.shape[0]))
            geom = dict(in_shape=shape, avg_pool=avg)
            c, h, w = shape if len(shape) == 3 else (None, None, None)
            if avg:
                h, w = h // avg, w // avg
            if isinstance(m, nn.Conv2d):
                if len(shape) != 3 or m.groups != 1 or m.dilation not in (1, (1, 1)):
                    raise ValueError(f"module {i}: a Conv2d must come before Flatten, with "
                                     "groups 1 and dilation 1")
                st = m.stride[0] if isinstance(m.stride, tuple) else m.stride
                pd = m.padding[0] if isinstance(m.padding, tuple) else m.padding
                kh = m.kernel_size[0]
                geom.update(kind="conv", stride=int(st), padding=int(pd))
                size = (h + 2 * pd - kh) // st + 1, (w + 2 * pd - kh) // st + 1
                shape = (m.out_channels, *size)
            else:
                if len(shape) == 1:
                    geom.update(in_shape=None)
                shape = (m.out_features,)
            theta = float(act.scale()) if act is not None else 1.0
            layers.append(CIFLayer(m.weight.double().numpy().copy(),
                                   bias.double().numpy().copy(), theta, act is None, **geom))
            avg = 0
            i += 2 if act is not None else 1
        if L is None:
            raise ValueError("the ANN has no ClipQuan activation to convert")
        return cls(layers, L)

    def run(self, x, *, sleep_steps: int = 0, signed: bool = True,
            trace: bool = False) -> CIFResult:
        """Run ``L`` wake steps then ``sleep_steps`` sleep steps (biases and input zeroed).

        ``signed=False`` and ``sleep_steps=0`` give plain soft-reset IF neurons (only positive
        spikes), the baseline CASC improves on.
        """
        sleep_steps = operator.index(sleep_steps)
        if sleep_steps < 0:
            raise ValueError(f"sleep_steps must be >= 0, not {sleep_steps}")
        x = self._check_input(x)
        hidden = self.layers[:-1]
        drive = self.layers[0].apply(x)  # the analog input's current, wake steps only
        v, n = [None] * len(hidden), [None] * len(hidden)  # shaped by the first current
        spikes = [0] * len(hidden)
        negative = [0] * len(hidden)
        readout = 0.0
        steps = self.L + sleep_steps
        log = [] if trace else None
        for t in range(1, steps + 1):
            wake = t <= self.L
            cap = min(t, self.L)
            h = None  # spikes times threshold from the previous layer at this step
            step_log = []
            for i, layer in enumerate(self.layers):
                if i == 0:
                    current = drive.copy() if wake else np.zeros_like(drive)
                else:
                    current = layer.apply(h)
                if wake:
                    current = current + layer.expand_bias(current)
                if layer.readout:
                    readout = readout + current
                    if trace:
                        step_log.append({"current": current})
                    continue
                if v[i] is None:
                    v[i], n[i] = np.zeros_like(current), np.zeros_like(current)
                v[i] += current
                pos = (v[i] >= layer.theta) & (n[i] < cap)
                neg = (v[i] < 0) & (n[i] > 0) if signed else np.zeros_like(pos)
                s = pos.astype(np.float64) - neg.astype(np.float64)
                v[i] -= layer.theta * s
                n[i] += s
                spikes[i] += int(np.abs(s).sum())
                negative[i] += int(neg.sum())
                h = layer.theta * s
                if trace:
                    step_log.append({"current": current, "spikes": s, "count": n[i].copy()})
            if trace:
                log.append(step_log)
        return CIFResult(readout / self.L, n, spikes, negative, steps, log)

    def _check_input(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        first = self.layers[0]
        n_in = (math.prod(first.in_shape) if first.in_shape is not None
                else first.weight.shape[1])
        if x.ndim < 2 or math.prod(x.shape[1:]) != n_in or (first.in_shape is None
                                                             and x.ndim != 2):
            want = first.in_shape if first.in_shape is not None else (n_in,)
            raise ValueError(f"input must have shape (batch, {', '.join(map(str, want))}), got "
                             f"{x.shape}")
        return x

    def ann_forward(self, x) -> np.ndarray:
        """The ANN this network was converted from (float64): the reference for conversion."""
        return self._ann(x)[0]

    def ann_counts(self, x) -> list[np.ndarray]:
        """Per hidden layer, the ANN's level ``floor(L clamp(z / theta, 0, 1))`` (a spike count)."""
        return self._ann(x)[1]

    def count_agreement(self, result: CIFResult, x) -> list[float]:
        """Per hidden layer, the fraction of neurons whose CIF spike count equals the ANN level."""
        pairs = zip(result.counts, self.ann_counts(x), strict=True)
        return [float(np.mean(c == a)) for c, a in pairs]

    def _ann(self, x):
        h = self._check_input(x)
        counts = []
        for layer in self.layers:
            z = layer.apply(h)
            z = z + layer.expand_bias(z)
            if layer.readout:
                return z, counts
            c = np.floor(self.L * np.clip(z / layer.theta, 0.0, 1.0))
            counts.append(c)
            h = layer.theta * c / self.L
        raise AssertionError("unreachable: the last layer is a readout")


@dataclasses.dataclass
class CascRun:
    """CASC on one split for one ``L = T``.

    Members
    -------
    ann_accuracy : float
        The ClipQuan_L ANN (float32 torch forward).
    if_accuracy : float
        Plain IF conversion: ``T`` steps, positive spikes only, no sleep.
    cif_accuracy : float
        CIF (signed spikes), ``T`` wake steps, no sleep.
    wsc_accuracy : float
        CIF with wake-sleep conversion, ``T`` wake + ``sleep_steps`` sleep steps.
    wsc_matches_ann : float
        Fraction of test samples whose WSC prediction equals the ANN's.
    count_agreement : dict of str to float
        For ``"if"``, ``"cif"``, ``"wsc"``: fraction of hidden neurons (all layers, all test
        samples) whose spike count equals the ANN's activation level.
    firing_rates : list of float
        WSC run, per hidden layer: spikes (either sign) per neuron per step.
    """

    T: int
    sleep_steps: int
    ann_accuracy: float
    if_accuracy: float
    cif_accuracy: float
    wsc_accuracy: float
    wsc_matches_ann: float
    count_agreement: dict[str, float]
    firing_rates: list[float]
    seconds_per_epoch: float
    ann: nn.Sequential | None = None


def run_casc(split, T: int, *, hidden: Sequence[int] = (128, 64), epochs: int = 15, seed: int = 0,
             sleep_steps: int | None = None, lr: float = 3e-3) -> CascRun:
    """Train a ClipQuan_T ANN on ``split`` (float inputs in [0, 1]) and measure its conversions.

    ``sleep_steps`` defaults to ``2 T (number of hidden layers)``.
    """
    from .train import accuracy, predict, seed_everything, train_classifier

    T = _check_L(T)
    sizes = (split.n_features, *hidden, split.n_classes)
    seed_everything(seed)
    ann = casc_ann(sizes, T)
    hist = train_classifier(ann, split.x_train, split.y_train, epochs=epochs, seed=seed, lr=lr)
    ann_pred = predict(ann, split.x_test)
    net = CIFNetwork.from_ann(ann)
    sleep = 2 * T * len(hidden) if sleep_steps is None else sleep_steps
    plain = net.run(split.x_test, signed=False)
    cif = net.run(split.x_test)
    wsc = net.run(split.x_test, sleep_steps=sleep)
    rates = [s / (len(split.x_test) * layer.weight.shape[0] * wsc.steps)
             for s, layer in zip(wsc.spikes, net.layers[:-1], strict=True)]
    y = split.y_test
    ann_counts = net.ann_counts(split.x_test)
    agree = {name: float(sum(int((c == a).sum()) for c, a in zip(r.counts, ann_counts, strict=True))
                         / sum(a.size for a in ann_counts))
             for name, r in (("if", plain), ("cif", cif), ("wsc", wsc))}
    return CascRun(T, sleep, accuracy(ann_pred, y), accuracy(plain.predictions(), y),
                   accuracy(cif.predictions(), y), accuracy(wsc.predictions(), y),
                   float(np.mean(wsc.predictions() == ann_pred)), agree, rates,
                   float(np.mean(hist.seconds)), ann)
