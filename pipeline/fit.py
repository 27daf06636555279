"""Stage `fit`: part 1, least-squares fitting by gradient descent.

Reads params `fit`, runs scratchnet.fitting.run_fit, and writes layout.FIT_RESULT (the whole
record as JSON) and layout.FIT_CURVE (CSV: step, loss, optimum_loss), each atomically.
"""

from __future__ import annotations

import json
import time

from scratchnet.files import write_text
from scratchnet.fitting import run_fit
from scratchnet.study import layout
from scratchnet.study.cli import stage_main
from scratchnet.study.params import load_params


def main() -> None:
    started = time.perf_counter()
    result = run_fit(**load_params()["fit"])
    write_text(layout.FIT_RESULT, json.dumps(result, indent=1, allow_nan=False) + "\n")
    rows = ["step,loss,optimum_loss"]
    rows += [f"{step},{loss!r},{result['optimum_loss']!r}" for step, loss in enumerate(result["losses"])]
    write_text(layout.FIT_CURVE, "\n".join(rows) + "\n")
    print(
        f"fit: loss {result['losses'][0]:.4g} -> {result['final_loss']:.6g} in {result['steps']} steps "
        f"(closed-form optimum {result['optimum_loss']:.6g}) in {time.perf_counter() - started:.1f} s; "
        f"wrote {layout.FIT_RESULT}, {layout.FIT_CURVE}"
    )


if __name__ == "__main__":
    stage_main("fit", main)
