"""The one params loader: reads params.yaml and validates every key before any work starts.

A mistake in params.yaml (an unknown key, a wrong type, a negative learning rate, a batch size
of 0, a decay outside (0, 1]) raises `ParamsError` naming the key and what is allowed, so a
stage fails in its first second instead of an hour into training.

The schema below is the single description of params.yaml: each leaf is a `Rule` that checks
one value. Ablation entries (`ablate.<model>: ["baseline", "reg=0.001", ...]`) are parsed with
the same rules as the baseline key they change.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scratchnet.attacks import NORMS, TARGET_RULES
from scratchnet.errors import UserError
from scratchnet.nn.init import INITS
from scratchnet.nn.normalize import METHODS

BASELINE = "baseline"


class ParamsError(UserError, ValueError):
    """params.yaml holds a value the study cannot run with; the message names the key."""


@dataclass(frozen=True)
class Rule:
    """Checks one value; `describe` is what the error message says is allowed."""

    check: Callable[[Any], Any]  # returns the normalised value or raises ValueError
    describe: str


def _rule(describe: str, ok: Callable[[Any], Any], convert: Callable[[Any], Any] = lambda v: v) -> Rule:
    def check(value):
        if not ok(value):
            raise ValueError
        return convert(value)

    return Rule(check, describe)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def real(low: float | None = None, high: float | None = None, *, low_open=False, high_open=False):
    lo, hi = "(" if low_open else "[", ")" if high_open else "]"
    return _rule(
        f"a number in {lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}",
        lambda v: (
            _is_number(v)
            and (low is None or v > low or (not low_open and v == low))
            and (high is None or v < high or (not high_open and v == high))
        ),
        float,
    )


def integer(low: int = 0, optional: bool = False):
    return _rule(
        f"a whole number >= {low}" + (" or null" if optional else ""),
        lambda v: (optional and v is None) or (isinstance(v, int) and not isinstance(v, bool) and v >= low),
    )


def choice(*options: str):
    return _rule("one of " + ", ".join(repr(o) for o in sorted(options)), lambda v: v in options)


def text():
    return _rule("a non-empty string", lambda v: isinstance(v, str) and v.strip())


def mapping(describe: str):
    return _rule(describe, lambda v: isinstance(v, dict))


def boolean():
    return _rule("true or false", lambda v: isinstance(v, bool))


def list_of(rule: Rule, *, min_len: int = 1, unique: bool = False):
    def check(value):
        if not isinstance(value, list) or len(value) < min_len:
            raise ValueError
        items = [rule.check(v) for v in value]
        if unique and len(set(items)) != len(items):
            raise ValueError
        return items

    extra = ", no repeats" if unique else ""
    return Rule(check, f"a list of at least {min_len} items, each {rule.describe}{extra}")


# ------------------------------------------------------------------------------ the model registry


@dataclass(frozen=True)
class ModelKind:
    """A model the study can train, declared once. params.yaml's `models` lists the ones a study
    runs, each with its section (TRAINING keys plus `arch`), `train.epochs.<name>`,
    `ablate.epochs.<name>` and `ablate.<name>`; the stages, dvc.yaml (`foreach: ${models}`), the
    sweep's scheduling and the report loop over that list."""

    name: str  # its params.yaml section, results folder and MLflow tag
    kind: str  # scratchnet.nn.build_model's kind
    title: str  # how the report names it
    arch: dict[str, Rule]  # the architecture keys of its section, each validated
    width: Callable[[dict], float]  # multiply-adds per example per input feature (sweep.cost)
    part: str | None = None  # its part of the study's report; None: a model the study did not have


def _mlp_width(config: dict) -> float:
    sizes = [*config["hidden_dims"], 10]
    return sizes[0] + sum(a * b for a, b in zip(sizes, sizes[1:])) / 3072


REGISTRY: dict[str, ModelKind] = {
    m.name: m
    for m in (
        ModelKind("softmax", "softmax", "softmax classifier", {}, lambda c: 10, "Part 2: softmax classifier"),
        ModelKind(
            "twolayer",
            "twolayer",
            "two-layer network",
            {"hidden_dim": integer(1)},
            lambda c: 10 + c["hidden_dim"],
            "Part 3: two-layer network",
        ),
        ModelKind("mlp", "mlp", "multi-layer network", {"hidden_dims": list_of(integer(1))}, _mlp_width),
    )
}
MODELS = tuple(REGISTRY)  # every kind there is; a study runs params["models"]

TRAINING = {  # the keys every model section has besides its architecture
    "normalize": choice(*METHODS),
    "lr": real(0, low_open=True),
    "lr_decay": real(0, 1, low_open=True),
    "batch_size": integer(1),
    "reg": real(0),
    "init": choice(*INITS),
    "init_scale": real(0, low_open=True),
}


def model_schema(model: str) -> dict[str, Rule]:
    return {**REGISTRY[model].arch, **TRAINING}


def schema(models: list[str]) -> dict:
    """The description of a params.yaml that runs `models`."""
    per_model = lambda rule: {model: rule for model in models}  # noqa: E731
    return {
        "models": list_of(choice(*MODELS), unique=True),
        "data": {"source": text(), "timeout": real(0, low_open=True)},
        "preprocess": {
            "val_size": integer(1),
            "train_limit": integer(1, optional=True),
            "test_limit": integer(1, optional=True),
            "seed": integer(0),
        },
        "fit": {
            "lr": real(0, low_open=True),
            "steps": integer(1),
            "num_points": integer(2),
            "degree": integer(1),
            "noise": real(0),
            "seed": integer(0),
        },
        **{model: model_schema(model) for model in models},
        "train": {"seed": integer(0), "epochs": per_model(integer(1))},
        "ablate": {
            "seeds": list_of(integer(0), unique=True),
            "epochs": per_model(integer(1)),
            # Each model's sweeps; their keys and values are checked against its section in _check_ablations.
            **per_model(mapping("a mapping of sweeps, `key: [value, ...]` (or {} for none)")),
        },
        "attack": {
            "example": {
                "true_class": text(),
                "target_class": text(),
                "norm": choice(*NORMS),
                "epsilon": real(0),
                "steps": integer(1),
            },
            "sweep": {
                "sample_size": integer(1),
                "seed": integer(0),
                "target": choice(*TARGET_RULES),
                "steps": integer(1),
                "step_fraction": real(0, low_open=True),
                "epsilons": {norm: list_of(real(0), unique=True) for norm in NORMS},
            },
        },
        # Every trained run's robustness (attacks.robustness, study.classifier.run_robustness).
        "robustness": {
            "enabled": boolean(),
            "sample_size": integer(1),
            "seed": integer(0),
            "norm": choice(*NORMS),
            "budget": real(0, low_open=True),
            "grid": list_of(real(0, low_open=True), unique=True),
            "steps": integer(1),
            "step_fraction": real(0, low_open=True),
        },
        "tracking": {"experiment": text()},
    }


def _validate(node: Any, schema: Any, where: str) -> Any:
    if isinstance(schema, Rule):
        try:
            return schema.check(node)
        except (ValueError, TypeError):
            raise ParamsError(f"params: {where} is {node!r}; expected {schema.describe}") from None
    if not isinstance(node, dict):
        raise ParamsError(f"params: {where or 'the file'} must be a mapping of keys, got {node!r}")
    prefix = f"{where}." if where else ""
    unknown = sorted(set(node) - set(schema))
    if unknown:
        raise ParamsError(f"params: unknown key {prefix}{unknown[0]}; known keys here: {', '.join(sorted(schema))}")
    missing = sorted(set(schema) - set(node))
    if missing:
        raise ParamsError(f"params: missing key {prefix}{missing[0]}")
    return {k: _validate(node[k], schema[k], prefix + k) for k in schema}


def _coerce(section: dict, key: str, value: Any, where: str) -> Any:
    """`value` checked by the rule of `section[key]`, as if it stood in the model section."""
    if isinstance(value, str):  # YAML 1.1 reads '1e-3' as text; the rule decides if it is a number
        try:
            value = float(value)
        except ValueError:
            pass
    try:
        if isinstance(value, float) and value.is_integer() and isinstance(section[key].check(1), int):
            value = int(value)  # 128.0 for a whole-number key is 128
        return section[key].check(value)
    except (ValueError, TypeError):
        raise ParamsError(f"params: {where}: {key} must be {section[key].describe}; got {value!r}") from None


def entry_name(key: str, value: Any) -> str:
    """The name of the run group that sets `key` to `value`: 'lr=0.05' (results file, MLflow run name)."""
    return f"{key}={value!r}"


def parse_entry(params: dict, model: str, entry: str) -> tuple[str | None, Any]:
    """'reg=0.001' -> ('reg', 0.001), checked like params[model]['reg']; 'baseline' -> (None, None)."""
    where = f"ablate.{model} entry {entry!r}"
    if entry == BASELINE:
        return None, None
    key, sep, raw = entry.partition("=")
    key = key.strip()
    if not sep or not raw.strip():
        raise ParamsError(f"params: {where} must be 'baseline' or 'key=value' (e.g. 'lr=0.01')")
    section = model_schema(model)
    if key not in section:
        raise ParamsError(f"params: {where} changes unknown key {key!r}; keys of {model}: {', '.join(section)}")
    return key, _coerce(section, key, yaml.safe_load(raw), where)


def sweeps(params: dict, model: str) -> dict[str, list]:
    """ablate.<model> as validated: swept key -> its values in the order listed."""
    return params["ablate"][model]


def ablation_entries(params: dict, model: str) -> list[str]:
    """Every run group of a model's ablation: 'baseline' first, then one 'key=value' per swept
    value that differs from the baseline (a value equal to the baseline's is the baseline run)."""
    entries = [BASELINE]
    for key, values in sweeps(params, model).items():
        entries += [entry_name(key, v) for v in values if v != params[model][key]]
    return entries


def _check_ablations(params: dict) -> None:
    """Each sweep names a key of its model's section and lists valid, distinct values."""
    for model in params["models"]:
        section = model_schema(model)
        checked = {}
        for key, values in params["ablate"][model].items():
            where = f"ablate.{model}.{key}"
            if key not in section:
                raise ParamsError(f"params: {where} sweeps an unknown key; keys of {model}: {', '.join(section)}")
            if not isinstance(values, list) or not values:
                raise ParamsError(f"params: {where} is {values!r}; expected a list of values, e.g. [0.01, 0.05]")
            values = [_coerce(section, key, v, where) for v in values]
            repeated = [v for i, v in enumerate(values) if v in values[:i]]
            if repeated:
                raise ParamsError(f"params: {where} lists {repeated[0]!r} twice")
            checked[key] = values
        params["ablate"][model] = checked


def validate(raw: Any) -> dict:
    """Checks a params mapping (as read from YAML); returns it with numbers normalised."""
    models = raw.get("models") if isinstance(raw, dict) else None
    models = _validate(models, schema([])["models"], "models")
    params = _validate(raw, schema(models), "")
    _check_ablations(params)
    return params


def load_params(path: str | Path = "params.yaml") -> dict:
    """Reads and validates params.yaml. Raises ParamsError naming the bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"params: {path} not found (run from the project root)") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"params: {path} is not valid YAML: {err}") from None
    return validate(raw)


def model_config(params: dict, model: str) -> dict:
    """The architecture part of a model section, as `scratchnet.nn.build_model` takes it."""
    section = params[model]
    return {
        "kind": REGISTRY[model].kind,
        "init": section["init"],
        "init_scale": section["init_scale"],
        **{key: section[key] for key in REGISTRY[model].arch},
    }


def run_config(params: dict, model: str, entry: str, epochs: int) -> dict:
    """Every hyper-parameter of one run: the model's baseline with `entry` applied."""
    if model not in params["models"]:
        raise ParamsError(f"params: {model} is not in models ({', '.join(params['models'])}); add it with its sections")
    config = copy.deepcopy(params[model])
    key, value = parse_entry(params, model, entry)
    if key is not None:
        config[key] = value
    config["epochs"] = epochs
    return config
