"""Print the gradient-check table: every spec in tests/specs.py -> max relative error seen.

    python tests/gradcheck_report.py            # markdown table on stdout
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from nnlite.gradcheck import check_gradients, check_module  # noqa: E402
from specs import LAYER_SPECS, LOSS_SPECS  # noqa: E402


def main():
    print("| layer / loss | mode | tensors checked | max relative error |")
    print("|---|---|---|---|")
    worst = 0.0
    for spec in LAYER_SPECS:
        for mode in spec.modes:
            rng = np.random.default_rng(0)
            module = spec.make(rng, np.float64)
            report = check_module(module, spec.make_input(rng, np.float64), mode=mode, seed=1, max_coords=150)
            worst = max(worst, report.max_error)
            print(f"| {spec.name} | {mode} | {len(report.rows)} | {report.max_error:.1e}"
                  f"{'' if report.ok else ' FAIL'} |")
    for spec in LOSS_SPECS:
        rng = np.random.default_rng(0)
        loss = spec.make(np.float64)
        pred, target = spec.make_pred(rng, np.float64), spec.make_target(rng)
        loss.forward(pred, target)
        report = check_gradients(lambda: loss.forward(pred, target), {"pred": pred},
                                 {"pred": loss.backward().copy()}, max_coords=None)
        worst = max(worst, report.max_error)
        print(f"| {spec.name} | - | 1 | {report.max_error:.1e}{'' if report.ok else ' FAIL'} |")
    print(f"\nworst: {worst:.1e} (tolerance 1e-6)")


if __name__ == "__main__":
    main()
