"""The differential soundness harness of the convergence report (issue 10, item 6), in full.

    python benchmarks/soundness_harness.py [--seeds 3] [--layers 1200] [--net-layers 6]
                                           [--families fista,heavy_ball] [--no-measure] [-v]

For every family of tests/harness_families.py, every configuration of its grid (parameters on
both sides of each textbook condition) and every seed: build the network with the same
parameters on every layer, read `convergence_report()`, iterate `--layers` layers, and measure
the Lipschitz constants of one layer map and of the `--net-layers`-layer map. Prints

- the number of sampled configurations and the verdict counts per family;
- false certificates (certified, but diverging or not converging: must be 0);
- false violations (violated, though every textbook condition of the family holds) and
  failing conditions whose kind is independently satisfied;
- false alarms (violated or uncertified while the iteration converges), split into those where
  a textbook condition fails too (conservative by the book) and those where none does;
- bounds below a measured constant (unsound; must be 0) and the median ratio bound / measured
  constant, per layer and for the whole network (finite bounds only);
- reports that raised.

Reads the report's new API (`verdict`, `layer_bounds`, `network_bound`) when the generated
modules have it, else the old one (`ok` -> "certified"): see harness_families.verdict_of.
Exit status 1 when there is a false certificate, an unsound bound or a crashing report.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness_families import FAMILIES, Result, evaluate, named_configs  # noqa: E402


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def run(seeds: int, layers: int, net_layers: int, families: list[str] | None, measure: bool,
        verbose: bool) -> list[Result]:
    results = []
    for seed in range(seeds):
        for name, fam in FAMILIES.items():
            if families and name not in families:
                continue
            for cfg in fam.configs(seed):
                res = evaluate(cfg, K=layers, K_net=net_layers if measure else 0,
                               layers=(0, layers - 1) if cfg.schedules else (0,),
                               measure=measure)
                results.append(res)
                if verbose:
                    print(res.line(), flush=True)
    return results


def summarize(results: list[Result]) -> int:
    n = len(results)
    api = "new (verdict)" if any(r.new_api for r in results) else "old (ok -> certified)"
    print(f"\nreport API: {api}")
    print(f"sampled configurations: {n}")
    by_family: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        by_family[r.cfg.family][r.verdict] += 1
        by_family[r.cfg.family]["converges" if r.dyn.converges else r.dyn.status] += 1
    print(f"\n{'family':22s} {'certified':>9s} {'violated':>8s} {'uncert.':>7s} {'error':>5s}"
          f"   {'converges':>9s} {'bounded':>7s} {'diverged':>8s}")
    for fam, c in by_family.items():
        print(f"{fam:22s} {c['certified']:9d} {c['violated']:8d} {c['uncertified']:7d} "
              f"{c['error']:5d}   {c['converges']:9d} {c['bounded']:7d} {c['diverged']:8d}")

    false_cert = [r for r in results if r.false_certificate]
    false_viol = [r for r in results if r.false_violation]
    kind_wrong = [(r, k) for r in results for k in sorted(r.failing & set(r.cfg.kinds))
                  if not r.cfg.kinds[k]]
    alarms = [r for r in results if r.false_alarm]
    alarms_book = [r for r in alarms if not r.cfg.textbook_ok]
    unsound = [(r, u) for r in results for u in r.unsound_bounds(1e-9)]
    errors = [r for r in results if r.error]
    layer_ratio = [b / m for r in results for _, b, m in r.layers
                   if math.isfinite(b) and m > 0]
    net_ratio = [r.network[1] / r.network[2] for r in results if r.network is not None
                 and math.isfinite(r.network[1]) and r.network[2] > 0]
    finite_layer = sum(math.isfinite(b) for r in results for _, b, _ in r.layers)
    all_layer = sum(1 for r in results for _ in r.layers)
    finite_net = sum(r.network is not None and math.isfinite(r.network[1]) for r in results)
    all_net = sum(r.network is not None for r in results)

    print(f"\nfalse certificates (certified, does not converge): {len(false_cert)}")
    for r in false_cert:
        print("   ", r.line())
    print(f"false violations (violated, every textbook condition holds): {len(false_viol)}")
    for r in false_viol:
        print("   ", r.line(), "|", "; ".join(r.reasons)[:200])
    print(f"failing conditions of a kind that holds independently: {len(kind_wrong)}")
    for r, k in kind_wrong:
        print(f"    {r.cfg.name}: {k}")
    print(f"false alarms (not certified, converges): {len(alarms)} "
          f"({len(alarms_book)} with a textbook condition violated, "
          f"{len(alarms) - len(alarms_book)} with none, listed)")
    for r in alarms:
        if r.cfg.textbook_ok:
            print("   ", r.line(), "|", "; ".join(r.reasons)[:160])
    if any(r.layers for r in results):
        print(f"bounds below a measured constant: {len(unsound)}")
        for r, u in unsound:
            print(f"    {r.cfg.name}: {u}")
        nan = sum(math.isnan(m) for r in results for _, _, m in r.layers) + sum(
            r.network is not None and math.isnan(r.network[2]) for r in results)
        print(f"measurements without a point where the map stays finite: {nan}")
        print(f"median layer bound / measured: {_median(layer_ratio):.4g} "
              f"({finite_layer} of {all_layer} layer bounds finite)")
        print(f"median network_bound / measured: {_median(net_ratio):.4g} "
              f"({finite_net} of {all_net} network bounds finite)")
    api = [(r, p) for r in results for p in r.api_problems]
    print(f"inconsistencies of the new API (ok vs verdict, bounds per layer, reasons): "
          f"{len(api)}")
    for r, p in api:
        print(f"    {r.cfg.name}: {p}")
    print(f"reports that raised: {len(errors)}")
    for r in errors:
        print(f"    {r.cfg.name}: {r.error}")
    return 1 if false_cert or unsound or errors or api else 0


def named() -> None:
    print("\nthe issue's named false alarms (must not be 'violated'):")
    for name, cfg in named_configs().items():
        res = evaluate(cfg, K=200, measure=False)
        print(f"    {name:40s} {res.verdict:11s} {'; '.join(res.reasons)[:150]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="problem draws per family")
    ap.add_argument("--layers", type=int, default=1200, help="layers iterated (1000+)")
    ap.add_argument("--net-layers", type=int, default=6,
                    help="depth of the network whose network_bound is measured")
    ap.add_argument("--families", default="", help="comma-separated subset of the families")
    ap.add_argument("--no-measure", action="store_true", help="skip the Lipschitz measurement")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per configuration")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    families = [f for f in args.families.split(",") if f] or None
    unknown = set(families or ()) - set(FAMILIES)
    if unknown:
        ap.error(f"unknown families {sorted(unknown)}; known: {', '.join(FAMILIES)}")
    start = time.perf_counter()
    results = run(args.seeds, args.layers, args.net_layers, families, not args.no_measure,
                  args.verbose)
    status = summarize(results)
    named()
    print(f"\n{time.perf_counter() - start:.0f} s")
    sys.exit(status)


if __name__ == "__main__":
    main()
