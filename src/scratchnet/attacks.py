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

An attack norm is declared once, in NORMS (register_norm): its steepest step, its projection,
and the names a figure or a sentence gives it. PGD, the sweeps, params validation and the
figures loop over that registry.

Beyond one image: `attack_class` runs the study's example on every correctly classified image
of a class (how often does the study's step fool one?), `robustness_sweep` runs PGD over a grid
of budgets on a sample, and `robustness` condenses one trained network's robustness into a few
numbers, on a sample of test images fixed by a seed whatever the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

TARGET_RULES = ("next", "random")
PIXEL_MIN, PIXEL_MAX = 0.0, 255.0


def row_norms(a: np.ndarray) -> np.ndarray:
    """(N, D) -> (N,) L2 norm of each row, in one pass without an (N, D) temporary."""
    return np.sqrt(np.einsum("ij,ij->i", a, a))


# --------------------------------------------------------------------------------------------
# Attack norms: declared once


@dataclass(frozen=True)
class Norm:
    """An attack norm, in pixel units over the D values of one image.

    steepest(grad (N, D)) -> (N, D): the unit-norm step that increases a linear function with
        gradient `grad` fastest, per row; a row whose gradient is exactly zero gets zeros.
    project(delta (N, D), epsilon) -> (N, D): the nearest perturbations of norm <= epsilon.
    title: a figure panel's title; label: its symbol in axis labels and sentences ("L2").
    """

    name: str
    steepest: Callable[[np.ndarray], np.ndarray]
    project: Callable[[np.ndarray, float], np.ndarray]
    title: str
    label: str


NORMS: dict[str, Norm] = {}  # name -> Norm, in the order figures and tables show them


def register_norm(norm: Norm) -> Norm:
    """Adds (or replaces) an attack norm; every loop over NORMS then includes it."""
    NORMS[norm.name] = norm
    return norm


def _l2_steepest(grad: np.ndarray) -> np.ndarray:
    length = row_norms(grad)
    inverse = np.divide(1.0, length, out=np.zeros_like(length), where=length > 0)
    return grad * inverse[:, None]


def _l2_project(delta: np.ndarray, epsilon: float) -> np.ndarray:
    length = row_norms(delta)
    shrink = np.minimum(1.0, np.divide(epsilon, length, out=np.ones_like(length), where=length > 0))
    return delta * shrink[:, None]


register_norm(Norm("l2", _l2_steepest, _l2_project, title="L2 ball (normalised steps)", label="L2"))
# L-inf: every pixel moves by the full step (sign of the gradient); projecting clips each pixel.
register_norm(
    Norm(
        "linf",
        np.sign,
        lambda delta, epsilon: np.clip(delta, -epsilon, epsilon),
        title="L∞ ball (sign steps)",
        label="L∞",
    )
)


def _norm(name: str) -> Norm:
    if name not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {name!r}")
    return NORMS[name]


def steepest_direction(grad: np.ndarray, norm: str) -> np.ndarray:
    """grad: (N, D) -> (N, D) the unit step of `norm` that increases the linear function fastest
    (L-inf: sign(grad); L2: grad / ||grad||_2 per row). A zero gradient gives zeros, not NaN."""
    return _norm(norm).steepest(grad)


def project(delta: np.ndarray, norm: str, epsilon: float) -> np.ndarray:
    """delta: (N, D) perturbations -> the nearest perturbations with norm <= epsilon, per row."""
    return _norm(norm).project(delta, epsilon)


def _flat(images: np.ndarray) -> np.ndarray:
    """(N, ...) -> (N, D) view (or copy) of the images, one row per image."""
    return np.asarray(images).reshape(len(images), -1)


def _flat_pixels(images: np.ndarray) -> np.ndarray:
    """(N, ...) pixels -> (N, D) float64 copy, checked to lie in [0, 255]."""
    x = np.array(images, dtype=np.float64).reshape(len(images), -1)
    if x.size and (not np.isfinite(x).all() or x.min() < PIXEL_MIN or x.max() > PIXEL_MAX):
        raise ValueError(f"images must be finite pixels in [0, 255]; got values in [{x.min()}, {x.max()}]")
    return x


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
    their loss). epsilon, step_size: pixel units of `norm` (a name in NORMS).

    Each step moves by `step_size` along the steepest direction for `norm`, projects back onto
    the epsilon-ball around the image, then clips to [0, 255]. Clipping after projecting keeps
    the ball: it moves each pixel towards [0, 255], which contains the original pixel, so no
    coordinate of the perturbation grows. With steps=1 and step_size=epsilon this is the
    study's single gradient step of L2 length epsilon (shorter only where pixels clip).

    Returns (N, ...) float64 adversarial images in [0, 255], the shape of `images`.
    """
    ball = _norm(norm)
    if epsilon < 0 or step_size < 0 or steps < 0:
        raise ValueError(f"epsilon, step_size and steps must be >= 0; got {epsilon}, {step_size}, {steps}")
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
        x += (sign * step_size) * ball.steepest(grad)
        np.add(x0, ball.project(x - x0, epsilon), out=x)
        np.clip(x, PIXEL_MIN, PIXEL_MAX, out=x)
    return x.reshape(np.shape(images))


# --------------------------------------------------------------------------------------------
# The study's example: one targeted attack, on one image or on every image of a class


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


def _targeted(model, originals: np.ndarray, target_label: int, norm: str, epsilon: float, steps: int):
    """`steps` targeted steps of epsilon / steps on (B, ...) float64 pixel images ->
    (adversarial (B, ...), probs_before (B, C), probs_after (B, C)). Steps of epsilon / steps
    add up to exactly the budget along a straight path; steps=1 is the study's single step."""
    adversarial = pgd(
        model,
        originals,
        np.full(len(originals), target_label),
        norm=norm,
        epsilon=epsilon,
        steps=steps,
        step_size=epsilon / steps,
        targeted=True,
    )
    probs = model.probabilities(_flat(np.concatenate([originals, adversarial])))
    return adversarial, probs[: len(originals)], probs[len(originals) :]


def _example(
    model, index, original, adversarial, probs_before, probs_after, *, true_label, target_label, norm, epsilon, steps
) -> FoolingExample:
    """The FoolingExample of one attacked image (original, adversarial: one image's pixels)."""
    l2, linf = perturbation_norms(original[None], adversarial[None])
    rounded = np.round(adversarial)[None]  # what a PNG of the adversarial image holds
    return FoolingExample(
        index=int(index),
        true_label=int(true_label),
        target_label=int(target_label),
        norm=norm,
        epsilon=float(epsilon),
        steps=int(steps),
        step_size=float(epsilon / steps),
        original=original,
        adversarial=adversarial,
        l2=float(l2[0]),
        linf=float(linf[0]),
        probs_before=np.asarray(probs_before, dtype=np.float64),
        probs_after=np.asarray(probs_after, dtype=np.float64),
        pred_before=int(np.argmax(probs_before)),
        pred_after=int(np.argmax(probs_after)),
        pred_after_uint8=int(model.predict(_flat(rounded))[0]),
    )


def fooling_example(
    model, image: np.ndarray, true_label: int, target_label: int, *, index: int, norm: str, epsilon: float, steps: int
) -> FoolingExample:
    """Targeted PGD on one image (e.g. (32, 32, 3) pixels), `steps` steps of epsilon / steps."""
    original = np.asarray(image, dtype=np.float64)[None]
    adversarial, before, after = _targeted(model, original, target_label, norm, epsilon, steps)
    return _example(
        model,
        index,
        original[0],
        adversarial[0],
        before[0],
        after[0],
        true_label=true_label,
        target_label=target_label,
        norm=norm,
        epsilon=epsilon,
        steps=steps,
    )


@dataclass(frozen=True)
class ClassAttack:
    """The study's example on a whole class: one targeted attack (one norm, budget and step
    count) on every correctly classified image of the true class, in test order.

    indices[k]: the test index of the k-th correctly classified image of the class; fooled[k]:
    whether the attack made the network predict the target class. first_correct is the
    attack on indices[0] (the study's image); first_fooled the attack on the first image it
    fooled, `before` images after the first correct one (None when it fooled none).
    """

    true_label: int
    target_label: int
    norm: str
    epsilon: float
    steps: int
    indices: np.ndarray  # (M,) int64, ascending
    fooled: np.ndarray  # (M,) bool
    first_correct: FoolingExample
    first_fooled: FoolingExample | None

    @property
    def n(self) -> int:
        return int(self.indices.size)

    @property
    def fooled_count(self) -> int:
        return int(self.fooled.sum())

    @property
    def share(self) -> float:
        """The fraction of the class's correctly classified images that the attack fools."""
        return self.fooled_count / self.n

    @property
    def before(self) -> int | None:
        """How many correctly classified images of the class precede the first fooled one
        (none of them fooled); None when none is fooled."""
        return None if self.first_fooled is None else int(np.argmax(self.fooled))

    @property
    def shown(self) -> FoolingExample:
        """The example the study shows: the first fooled image, else the first correct one."""
        return self.first_fooled or self.first_correct


def attack_class(
    model,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    true_label: int,
    target_label: int,
    norm: str,
    epsilon: float,
    steps: int,
    batch_size: int = 500,
) -> ClassAttack:
    """`steps` targeted steps of epsilon / steps (pixel units of `norm`) toward `target_label`
    on every image of `true_label` that the model classifies correctly, `batch_size` at a time.

    images: (N, ...) pixels in [0, 255] (e.g. the (N, 32, 32, 3) uint8 test set); labels: (N,).
    Raises ValueError when the model classifies no image of the class correctly. The examples
    are taken from the batched attack itself (not recomputed), so they agree with `fooled`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    predictions = model.predict(_flat(images))
    indices = np.flatnonzero((labels == true_label) & (predictions == true_label))
    if indices.size == 0:
        raise ValueError(f"no image of class {true_label} is classified correctly; nothing to attack")
    fooled = np.zeros(indices.size, dtype=bool)
    found: dict[str, FoolingExample] = {}
    spec = dict(true_label=true_label, target_label=target_label, norm=norm, epsilon=epsilon, steps=steps)
    for start in range(0, indices.size, batch_size):
        part = indices[start : start + batch_size]
        originals = np.asarray(images[part], dtype=np.float64)
        adversarial, before, after = _targeted(model, originals, target_label, norm, epsilon, steps)
        fooled[start : start + len(part)] = after.argmax(axis=1) == target_label
        wanted = {"first_correct": 0} if start == 0 else {}
        hits = np.flatnonzero(fooled[start : start + len(part)])
        if "first_fooled" not in found and hits.size:
            wanted["first_fooled"] = int(hits[0])
        for name, k in wanted.items():
            found[name] = _example(model, part[k], originals[k], adversarial[k], before[k], after[k], **spec)
    return ClassAttack(
        true_label=int(true_label),
        target_label=int(target_label),
        norm=norm,
        epsilon=float(epsilon),
        steps=int(steps),
        indices=indices,
        fooled=fooled,
        first_correct=found["first_correct"],
        first_fooled=found.get("first_fooled"),
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
    _norm(norm)
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
                model,
                original,
                labels[part],
                norm=norm,
                epsilon=float(epsilon),
                steps=steps,
                step_size=step_fraction * float(epsilon),
                targeted=targeted,
            )
            pred = model.predict(_flat(adversarial))
            success[e, part] = pred == labels[part] if targeted else pred != labels[part]
            l2[e, part] = perturbation_norms(original, adversarial)[0]
    return SweepResult(norm=norm, targeted=targeted, epsilons=eps, success=success, l2=l2)


# --------------------------------------------------------------------------------------------
# One trained network's robustness, in a few numbers


def robustness_sample(num_images: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of `size` of `num_images` test images (all if fewer), drawn by `seed`
    alone: every network is measured on the same images, each counting those it gets right."""
    if size >= num_images:
        return np.arange(num_images)
    return np.sort(np.random.default_rng(seed).choice(num_images, size=size, replace=False))


def robustness(
    model,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    sample_size: int,
    seed: int,
    norm: str,
    budget: float,
    grid,
    steps: int,
    step_fraction: float,
) -> dict:
    """How hard one trained network is to fool, on a seeded sample of test images.

    images: (N, ...) test pixels in [0, 255] (e.g. (N, 3072) uint8); labels: (N,).
    The sample (robustness_sample) does not depend on the model; of its images, the n the model
    classifies correctly are attacked, each toward a target class fixed by `seed`
    (choose_targets "random"), by PGD of `steps` steps of step_fraction * epsilon (pixel units
    of `norm`). Returns, as plain numbers:
      n             the sample's correctly classified images;
      targeted      the share of them that targeted PGD with budget `budget` fools;
      untargeted    the share that untargeted PGD with that budget moves off the true class;
      median_budget the median over them of the smallest budget of `grid` (`budget` joins it)
                    whose targeted PGD fools the image: the budget that fools half.
    A share is None when n = 0; median_budget is None when half or more resist every budget.
    Cost: (len(grid with budget) + 1) * steps input gradients of n images.
    """
    sample = robustness_sample(len(images), sample_size, seed)
    y = np.asarray(labels[sample], dtype=np.int64)
    targets = choose_targets(y, "random", model.num_classes, seed)  # per sample image, not per model
    x = np.asarray(images[sample])
    correct = model.predict(_flat(x)) == y
    n = int(correct.sum())
    if n == 0:
        return {"n": 0, "targeted": None, "untargeted": None, "median_budget": None}
    x, y, targets = x[correct], y[correct], targets[correct]
    grid = sorted({float(e) for e in grid} | {float(budget)})
    swept = robustness_sweep(
        model, x, targets, norm=norm, epsilons=grid, steps=steps, step_fraction=step_fraction, targeted=True
    )
    away = robustness_sweep(
        model, x, y, norm=norm, epsilons=[budget], steps=steps, step_fraction=step_fraction, targeted=False
    )
    median = swept.median_min_epsilon
    return {
        "n": n,
        "targeted": float(swept.raw_success_rate[grid.index(float(budget))]),
        "untargeted": float(away.raw_success_rate[0]),
        "median_budget": median if np.isfinite(median) else None,
    }
