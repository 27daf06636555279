"""Fooling images: targeted PGD against a trained network, and how robust it really is.

Part 4 of the study: one gradient step moved the first correctly classified test truck to
"automobile", with an L2 difference of 91 on the [0, 255] 3x32x32 image. So everything here
works on images in pixel units: the network takes pixels through the input normaliser it was
trained with (scratchnet.nn.Normalizer, saved inside the model), its input gradient is carried
back through it, and every epsilon, step size and norm is in pixels of the [0, 255] scale.

    model = load_model("models/twolayer.npz")
    adversarial = pgd(model, images, targets, norm="l2", epsilon=91.0, steps=1, step_size=91.0)

Shapes: `images` is (N, ...) pixels in [0, 255] (e.g. (N, 32, 32, 3) uint8 or float) whose
trailing dimensions flatten, in the training order (HWC), to the model's D = 3072 inputs.
Norms of a perturbation are taken over those D values of one image.

Beyond the single example, `robustness_sweep` runs PGD over a grid of epsilons on a sample of
correctly classified images and records, per image, whether each epsilon fooled it and how
large (in L2) the fooling perturbation was.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np

NORMS = ("l2", "linf")
SWEEP_COLUMNS = ("norm", "epsilon", "mode", "success_rate", "median_l2", "n")  # SweepResult.rows()
TARGET_RULES = ("next", "random")
PIXEL_MIN, PIXEL_MAX = 0.0, 255.0


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")


def _flat(images: np.ndarray) -> np.ndarray:
    """(N, ...) -> (N, D) view (or copy) of the images, one row per image."""
    return np.asarray(images).reshape(len(images), -1)


def _flat_pixels(images: np.ndarray) -> np.ndarray:
    """(N, ...) pixels -> (N, D) float64 copy, checked to lie in [0, 255]."""
    x = np.array(images, dtype=np.float64).reshape(len(images), -1)
    if x.size and (not np.isfinite(x).all() or x.min() < PIXEL_MIN or x.max() > PIXEL_MAX):
        raise ValueError(
            f"images must be finite pixels in [0, 255]; got values in [{x.min()}, {x.max()}]"
        )
    return x


def row_norms(a: np.ndarray) -> np.ndarray:
    """(N, D) -> (N,) L2 norm of each row, in one pass without an (N, D) temporary."""
    return np.sqrt(np.einsum("ij,ij->i", a, a))


def steepest_direction(grad: np.ndarray, norm: str) -> np.ndarray:
    """The unit-norm step that increases a linear function with gradient `grad` fastest.

    grad: (N, D). L-inf: sign(grad) (every pixel moves by the full step); L2: grad / ||grad||_2
    per row. A row whose gradient is exactly zero gets no direction (zeros) rather than NaN.
    """
    _check_norm(norm)
    if norm == "linf":
        return np.sign(grad)
    length = row_norms(grad)
    inverse = np.divide(1.0, length, out=np.zeros_like(length), where=length > 0)
    return grad * inverse[:, None]


def project(delta: np.ndarray, norm: str, epsilon: float) -> np.ndarray:
    """delta: (N, D) perturbations -> the nearest perturbations with norm <= epsilon, per row."""
    _check_norm(norm)
    if norm == "linf":
        return np.clip(delta, -epsilon, epsilon)
    length = row_norms(delta)
    shrink = np.minimum(1.0, np.divide(epsilon, length, out=np.ones_like(length), where=length > 0))
    return delta * shrink[:, None]


def perturbation_norms(original: np.ndarray, adversarial: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, ...) pixel images, twice -> (l2, linf), each (N,) in pixel units."""
    delta = np.asarray(adversarial, np.float64).reshape(len(adversarial), -1) - np.asarray(
        original, np.float64
    ).reshape(len(original), -1)
    return row_norms(delta), np.abs(delta).max(axis=1, initial=0.0)


def pgd(
    model,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    norm: str,
    epsilon: float,
    steps: int,
    step_size: float,
    targeted: bool = True,
) -> np.ndarray:
    """Projected gradient descent in pixel space. Deterministic: it starts at the image itself.

    images: (N, ...) pixels in [0, 255]. labels: (N,) int, the target classes when `targeted`
    (each step descends the loss toward them) or the true classes otherwise (each step ascends
    their loss). epsilon, step_size: pixel units of `norm` ("l2" or "linf").

    Each step moves by `step_size` along the steepest direction for `norm`, projects back onto
    the epsilon-ball around the image, then clips to [0, 255]. Clipping after projecting keeps
    the ball: it moves each pixel towards [0, 255], which contains the original pixel, so no
    coordinate of the perturbation grows. With steps=1 and step_size=epsilon this is the
    study's single gradient step of L2 length epsilon (shorter only where pixels clip).

    Returns (N, ...) float64 adversarial images in [0, 255], the shape of `images`.
    """
    _check_norm(norm)
    if epsilon < 0 or step_size < 0 or steps < 0:
        raise ValueError(
            f"epsilon, step_size and steps must be >= 0; got {epsilon}, {step_size}, {steps}"
        )
    x0 = _flat_pixels(images)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.shape != (len(x0),):
        raise ValueError(f"labels must have one class per image ({len(x0)}); got shape {labels.shape}")
    x = x0.copy()
    if epsilon == 0 or step_size == 0:
        steps = 0  # the ball is a point / no step: the image itself, without gradient work
    sign = -1.0 if targeted else 1.0
    for _ in range(steps):
        grad = model.input_gradient(x, labels)  # (N, D) d loss_i / d pixels, the model's dtype
        x += (sign * step_size) * steepest_direction(grad, norm)
        np.add(x0, project(x - x0, norm, epsilon), out=x)
        np.clip(x, PIXEL_MIN, PIXEL_MAX, out=x)
    return x.reshape(np.shape(images))


# --------------------------------------------------------------------------------------------
# The study's example: one image, one target


def first_correct(predictions: np.ndarray, labels: np.ndarray, cls: int) -> int:
    """Index of the first image of class `cls` that the model classifies correctly."""
    hits = np.flatnonzero((np.asarray(labels) == cls) & (np.asarray(predictions) == cls))
    if hits.size == 0:
        raise ValueError(f"no image of class {cls} is classified correctly; nothing to attack")
    return int(hits[0])


@dataclass(frozen=True)
class FoolingExample:
    """One targeted attack on one image; images in pixel units [0, 255], shape of the input."""

    index: int
    true_label: int
    target_label: int
    norm: str
    epsilon: float
    steps: int
    step_size: float
    original: np.ndarray
    adversarial: np.ndarray
    l2: float  # pixel units, over all D values of the image
    linf: float
    probs_before: np.ndarray  # (C,)
    probs_after: np.ndarray  # (C,)
    pred_before: int
    pred_after: int
    pred_after_uint8: int  # the prediction once the adversarial image is rounded to a saved PNG

    @property
    def fooled(self) -> bool:
        return self.pred_after == self.target_label

    @property
    def difference(self) -> np.ndarray:
        """adversarial - original, signed pixel units."""
        return self.adversarial - self.original

    def record(self, class_names: list[str]) -> dict:
        """The JSON record of layout.ATTACK_EXAMPLE (classes by name; norms in pixel units)."""
        names = [str(c) for c in class_names]
        return {
            "index": self.index,
            "true_class": names[self.true_label],
            "target_class": names[self.target_label],
            "norm": self.norm,
            "epsilon": self.epsilon,
            "steps": self.steps,
            "step_size": self.step_size,
            "l2": self.l2,
            "linf": self.linf,
            "probs_before": dict(zip(names, map(float, self.probs_before))),
            "probs_after": dict(zip(names, map(float, self.probs_after))),
            "pred_before": names[self.pred_before],
            "pred_after": names[self.pred_after],
            "fooled": self.fooled,
            "pred_after_uint8": names[self.pred_after_uint8],
            "fooled_after_uint8": self.pred_after_uint8 == self.target_label,
        }


def fooling_example(
    model,
    image: np.ndarray,
    true_label: int,
    target_label: int,
    *,
    index: int,
    norm: str,
    epsilon: float,
    steps: int,
) -> FoolingExample:
    """Targeted PGD on one image (e.g. (32, 32, 3) pixels), `steps` steps of epsilon / steps.

    Steps of epsilon / steps add up to exactly the budget along a straight path; with steps=1
    it is the study's single step of size epsilon.
    """
    original = np.asarray(image, dtype=np.float64)[None]
    step_size = epsilon / steps
    adversarial = pgd(
        model, original, [target_label], norm=norm, epsilon=epsilon, steps=steps,
        step_size=step_size, targeted=True,
    )
    l2, linf = perturbation_norms(original, adversarial)
    probs = model.probabilities(_flat(np.concatenate([original, adversarial])))
    rounded = np.round(adversarial)  # what a PNG of the adversarial image holds
    return FoolingExample(
        index=int(index),
        true_label=int(true_label),
        target_label=int(target_label),
        norm=norm,
        epsilon=float(epsilon),
        steps=int(steps),
        step_size=float(step_size),
        original=original[0],
        adversarial=adversarial[0],
        l2=float(l2[0]),
        linf=float(linf[0]),
        probs_before=np.asarray(probs[0], dtype=np.float64),
        probs_after=np.asarray(probs[1], dtype=np.float64),
        pred_before=int(np.argmax(probs[0])),
        pred_after=int(np.argmax(probs[1])),
        pred_after_uint8=int(model.predict(_flat(rounded))[0]),
    )


# --------------------------------------------------------------------------------------------
# Beyond the study: success rate vs epsilon on a sample


def sample_correct(predictions: np.ndarray, labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of `size` correctly classified images, drawn uniformly without replacement
    (all of them if fewer are correct). Same predictions + seed -> the same sample."""
    correct = np.flatnonzero(np.asarray(predictions) == np.asarray(labels))
    if size >= correct.size:
        return correct
    return np.sort(np.random.default_rng(seed).choice(correct, size=size, replace=False))


def choose_targets(labels: np.ndarray, rule: str, num_classes: int, seed: int) -> np.ndarray:
    """(N,) target classes, never the true class.

    "next": (true + 1) mod C, the same every run and easy to read off a table.
    "random": uniform over the C - 1 other classes, from a stream seeded by `seed` that is
    independent of the one `sample_correct` draws from.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if rule == "next":
        return (labels + 1) % num_classes
    if rule == "random":
        shift = np.random.default_rng([seed, 1]).integers(1, num_classes, size=labels.shape)
        return (labels + shift) % num_classes
    raise ValueError(f"target rule must be one of {', '.join(TARGET_RULES)}; got {rule!r}")


@dataclass(frozen=True)
class SweepResult:
    """PGD at each epsilon of a grid on the same N images.

    success[e, i]: the attack run with budget epsilons[e] fooled image i (reached the target
    class if targeted, left the true class otherwise). l2[e, i]: the L2 size of that
    perturbation, in pixel units.

    Any perturbation found within a smaller budget is also within a larger one, so an image
    counts as fooled at epsilon e when some budget <= e fooled it (`fooled`): that makes the
    success rate non-decreasing in epsilon by construction, even where PGD's fixed step
    schedule at a larger epsilon overshoots. `raw_success_rate` is the per-budget rate.
    """

    norm: str
    targeted: bool
    epsilons: np.ndarray  # (E,) ascending, pixel units of `norm`
    success: np.ndarray  # (E, N) bool
    l2: np.ndarray  # (E, N) float64

    @property
    def mode(self) -> str:
        return "targeted" if self.targeted else "untargeted"

    @property
    def n(self) -> int:
        return self.success.shape[1]

    @property
    def fooled(self) -> np.ndarray:
        """(E, N) bool: fooled by some budget <= epsilons[e]."""
        return np.logical_or.accumulate(self.success, axis=0)

    @property
    def success_rate(self) -> np.ndarray:
        """(E,) fraction of the N images fooled within each epsilon (NaN when N = 0)."""
        return self.fooled.mean(axis=1) if self.n else np.full(len(self.epsilons), np.nan)

    @property
    def raw_success_rate(self) -> np.ndarray:
        """(E,) fraction fooled by the run at exactly that epsilon."""
        return self.success.mean(axis=1) if self.n else np.full(len(self.epsilons), np.nan)

    @property
    def best_l2(self) -> np.ndarray:
        """(E, N): smallest L2 of a fooling perturbation found within each epsilon (inf if none)."""
        return np.minimum.accumulate(np.where(self.success, self.l2, np.inf), axis=0)

    @property
    def median_l2(self) -> np.ndarray:
        """(E,) median over the images fooled within each epsilon of their smallest fooling
        L2 (pixel units); NaN where no image is fooled."""
        best = self.best_l2
        out = np.full(len(self.epsilons), np.nan)
        for e in range(len(self.epsilons)):
            found = best[e][np.isfinite(best[e])]
            if found.size:
                out[e] = np.median(found)
        return out

    @property
    def min_epsilon(self) -> np.ndarray:
        """(N,) the smallest epsilon of the grid that fooled each image; inf if none did."""
        first = np.argmax(self.success, axis=0)
        return np.where(self.success.any(axis=0), self.epsilons[first], np.inf)

    @property
    def median_min_epsilon(self) -> float:
        """Median of `min_epsilon` over all N images: the budget that fools half of them.
        inf when more than half are never fooled within the grid."""
        return float(np.median(self.min_epsilon)) if self.n else float("nan")

    def metrics(self) -> dict[str, float | None]:
        """The DVC/MLflow metrics of this sweep: success_eps_<epsilon> for each epsilon, the
        median minimal epsilon and the median smallest L2 of the fooled images; None where a
        value is not finite (JSON has no NaN or inf)."""
        def finite(value) -> float | None:
            return float(value) if math.isfinite(value) else None

        section = {f"success_eps_{np.format_float_positional(e, trim='-')}": finite(r)
                   for e, r in zip(self.epsilons, self.success_rate)}
        section["median_min_epsilon"] = finite(self.median_min_epsilon)
        section["median_l2"] = finite(self.median_l2[-1])  # at the largest budget: every fooled image
        return section

    def rows(self) -> list[dict]:
        """One row per epsilon: norm, epsilon, mode, success_rate, median_l2, n (layout.ATTACK_SWEEP_CSV)."""
        return [
            {
                "norm": self.norm,
                "epsilon": float(eps),
                "mode": self.mode,
                "success_rate": float(rate),
                "median_l2": float(l2),
                "n": self.n,
            }
            for eps, rate, l2 in zip(self.epsilons, self.success_rate, self.median_l2)
        ]


def robustness_sweep(
    model,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    norm: str,
    epsilons,
    steps: int,
    step_fraction: float,
    targeted: bool = True,
    batch_size: int = 500,
) -> SweepResult:
    """PGD with `steps` steps of step_fraction * epsilon, for every epsilon (pixel units).

    images: (N, ...) pixels in [0, 255]; labels: (N,) targets if `targeted`, else true classes.
    Batches of `batch_size` images bound the memory of the float64 copies: (batch, D) each.
    """
    _check_norm(norm)
    eps = np.sort(np.asarray(epsilons, dtype=np.float64).reshape(-1))
    if eps.size == 0 or eps[0] < 0:
        raise ValueError(f"epsilons must be a non-empty list of numbers >= 0; got {list(epsilons)}")
    labels = np.asarray(labels, dtype=np.int64)
    n = len(images)
    success = np.zeros((eps.size, n), dtype=bool)
    l2 = np.zeros((eps.size, n))
    for e, epsilon in enumerate(eps):
        for start in range(0, n, batch_size):
            part = slice(start, start + batch_size)
            original = images[part]
            adversarial = pgd(
                model, original, labels[part], norm=norm, epsilon=float(epsilon),
                steps=steps, step_size=step_fraction * float(epsilon), targeted=targeted,
            )
            pred = model.predict(_flat(adversarial))
            success[e, part] = pred == labels[part] if targeted else pred != labels[part]
            l2[e, part] = perturbation_norms(original, adversarial)[0]
    return SweepResult(norm=norm, targeted=targeted, epsilons=eps, success=success, l2=l2)


# --------------------------------------------------------------------------------------------
# The attack stage's work: the study's example, then the sweeps, and their headline numbers


@dataclass(frozen=True)
class AttackStudy:
    """What the attack stage reports. Images in pixel units; classes as indices."""

    test_acc: float  # the attacked model on every test image
    example: FoolingExample
    sample: np.ndarray  # (n,) indices of the swept test images
    sweeps: list[SweepResult]  # per norm in params order: targeted, then untargeted
    headline_budget: tuple[str, float]  # (norm, epsilon) of the study's example

    def headline(self) -> dict:
        """The attack's one number for `dvc metrics show` and `dvc exp show`: `fooled`, the
        targeted success rate on the sample at the study's budget (the example's norm and
        epsilon, which joins that norm's grid), to 4 decimals; None when nothing was sampled or
        that norm is not swept. Whether the example itself was fooled is in example.json; every
        curve is in the sweep CSVs and the MLflow run (details())."""
        norm, epsilon = self.headline_budget
        rates = [float(s.success_rate[list(s.epsilons).index(epsilon)])
                 for s in self.sweeps if s.targeted and s.norm == norm]
        return {"fooled": round(rates[0], 4) if rates and not math.isnan(rates[0]) else None}

    def rows(self) -> list[dict]:
        """Every sweep's rows (SweepResult.rows, SWEEP_COLUMNS), in sweep order."""
        return [row for sweep in self.sweeps for row in sweep.rows()]

    def details(self) -> dict:
        """Every number, for the MLflow run (the DVC metrics file keeps only the headline):
        test_acc, sample_size, the example's, and each sweep's metrics (SweepResult.metrics,
        the full curves) by mode and norm."""
        ex = self.example
        out: dict = {"test_acc": self.test_acc, "sample_size": int(self.sample.size),
                     "example": {"fooled": ex.fooled, "l2": ex.l2, "linf": ex.linf,
                                 "confidence": float(ex.probs_after[ex.target_label])}}
        for sweep in self.sweeps:
            out.setdefault(sweep.mode, {})[sweep.norm] = sweep.metrics()
        return out

    def plot_rows(self, norm: str) -> list[dict]:
        """[{epsilon, targeted, untargeted}] success rates of one norm, one row per epsilon."""
        by_mode = {s.mode: s for s in self.sweeps if s.norm == norm}
        return [{"epsilon": float(e), "targeted": float(t), "untargeted": float(u)} for e, t, u in
                zip(by_mode["targeted"].epsilons, by_mode["targeted"].success_rate,
                    by_mode["untargeted"].success_rate)]


def attack_study(model, images: np.ndarray, labels: np.ndarray, *, true_label: int,
                 target_label: int, example: dict, sweep: dict, log=print) -> AttackStudy:
    """The study's example and the robustness sweeps against `model`, on test images.

    images: (N, 32, 32, 3) uint8 test pixels; labels: (N,) int64 classes. example, sweep:
    params.yaml's attack.example and attack.sweep sections (example: norm, epsilon, steps;
    sweep: sample_size, seed, target, steps, step_fraction, epsilons {norm: [pixel units]}).
    The example's epsilon joins its norm's sweep grid, so success at the study's budget is
    measured rather than read off a neighbouring epsilon. log(line) reports each sweep.
    """
    predictions = model.predict(_flat(images))
    index = first_correct(predictions, labels, true_label)
    found = fooling_example(model, images[index], true_label, target_label, index=index,
                            norm=example["norm"], epsilon=example["epsilon"], steps=example["steps"])
    sample = sample_correct(predictions, labels, sweep["sample_size"], sweep["seed"])
    targets = choose_targets(labels[sample], sweep["target"], model.num_classes, sweep["seed"])
    sweeps = []
    for norm, grid in sweep["epsilons"].items():
        extra = [float(example["epsilon"])] if norm == example["norm"] else []
        for targeted in (True, False):
            result = robustness_sweep(
                model, images[sample], targets if targeted else labels[sample], norm=norm,
                epsilons=sorted(set(grid) | set(extra)), steps=sweep["steps"],
                step_fraction=sweep["step_fraction"], targeted=targeted,
            )
            sweeps.append(result)
            rates = ", ".join(f"{e:g}: {r:.2f}" for e, r in zip(result.epsilons, result.success_rate))
            log(f"attack: {result.mode} {norm} success by epsilon {{{rates}}}")
    return AttackStudy(test_acc=float(np.mean(predictions == labels)), example=found, sample=sample,
                       sweeps=sweeps,
                       headline_budget=(example["norm"], float(example["epsilon"])))
