"""Pool the per-market rows that `bench_model.py` logs (one JSON line per market) across several logs.

A figure of record may come from more than one invocation (markets run on different evenings); this prints
the table `bench_model.py` would have printed had one invocation run them all — mean ± s.d. over the markets,
the mean and the largest per-market Newey-West |t|, the paired table — and each market's 1-day share of the oracle, with the two ways of
pooling it (ratio of the means, mean of the per-market ratios) and the latter's standard error.
Run: python bench/pool_markets.py LOG [LOG ...] [--preset realistic] [--markets 1005 1006 ...] [--replace 1001]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from bench_model import DEPLOYED_ROWS, agreement_table, model_table, paired_table, spread


def market_rows(
    logs: list[Path],
    preset: str,
    replace: set[int] = frozenset(),
    oracle_versions: dict[int, int] | None = None,
    agreements: dict[int, dict] | None = None,
) -> dict[int, dict]:
    """market seed -> {(model, horizon): (RankIC, t) or, for single_seed, a list of them}. A market logged
    twice must have logged the same figures (a re-run that disagrees is an error, not a choice) unless it is
    in ``replace``: re-measured under newer defaults, the later log's figures stand. ``oracle_versions``, if
    given, receives each market's ``ORACLE_VERSION`` (0 where the log predates the field); ``agreements``,
    each market's agreement with the oracle where its line has one (logged since 2026-12-07)."""
    rows: dict[int, dict] = {}
    versions = oracle_versions if oracle_versions is not None else {}
    for log in logs:
        for line in log.read_text().splitlines():
            if not line.startswith("{"):
                continue
            rec = json.loads(line)
            if rec.get("preset") != preset or "rank_ic_t" not in rec:
                continue
            parsed = {}
            for key, value in rec["rank_ic_t"].items():
                name, _, h = key.rpartition(" ")
                parsed[(name, int(h.removesuffix("d")))] = value
            seed = rec["market_seed"]
            if seed in rows and rows[seed] != parsed and seed not in replace:
                raise ValueError(f"market {seed} logged twice with different figures ({log})")
            rows[seed] = parsed
            versions[seed] = rec.get("oracle_version", 0)  # 0: logged before versions were recorded (<= 2)
            if agreements is not None and "oracle_agreement" in rec:
                agreements[seed] = rec["oracle_agreement"]
    return rows


def oracle_shares(seeds: list[int], results: list[dict], horizon: int, model: str = "ensemble") -> list[str]:
    if (model, horizon) not in results[0]:
        return []
    ens = np.array([r[(model, horizon)][0] for r in results])
    ora = np.array([r[("oracle", horizon)][0] for r in results])
    if np.isnan(ora).all():
        return ["the oracle is constant on these markets (equal expected returns): no share of it", ""]
    share = ens / ora
    se = spread(share) / np.sqrt(len(share))
    per = ", ".join(f"{s} {x:.2f}" for s, x in zip(seeds, share, strict=True))
    return [
        f"{model}: {horizon}-day share of the oracle per market: {per}",
        f"ratio of the means {ens.mean() / ora.mean():.3f}; mean of the shares {share.mean():.3f} "
        f"(s.d. {spread(share):.3f}, s.e. {se:.3f}) over {len(share)} markets",
        "",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("logs", nargs="+", type=Path)
    ap.add_argument("--preset", default="realistic")
    ap.add_argument("--markets", nargs="*", type=int, help="these markets only (default: every one logged)")
    ap.add_argument(
        "--replace",
        nargs="*",
        type=int,
        default=[],
        help="markets re-measured later: the later log's row stands",
    )
    args = ap.parse_args()
    versions: dict[int, int] = {}
    agreements: dict[int, dict] = {}
    rows = market_rows(args.logs, args.preset, set(args.replace), versions, agreements)
    seeds = args.markets or sorted(rows)
    if not seeds:
        raise SystemExit(f"no {args.preset} market row (a JSON line) in {[str(p) for p in args.logs]}")
    missing = [s for s in seeds if s not in rows]
    if missing:
        raise SystemExit(f"no {args.preset} row for market(s) {missing} in {[str(p) for p in args.logs]}")
    common = set.intersection(*(set(rows[s]) for s in seeds))  # a row only where every market has it
    dropped = sorted({name for s in seeds for (name, _) in rows[s]} - {name for (name, _) in common})
    results = [{k: v for k, v in rows[s].items() if k in common} for s in seeds]
    if dropped:
        print(f"(not on every market, left out: {', '.join(dropped)})")
    horizons = sorted({h for (_, h) in results[0]})
    mixed = sorted({versions[s] for s in seeds})
    if len(mixed) > 1:
        print(
            "**Caution: the oracle rows mix definitions** (ORACLE_VERSION "
            + ", ".join(f"{v or '<= 2'}: {[s for s in seeds if versions[s] == v]}" for v in mixed)
            + "); re-score the older markets with bench/bench_oracle_premium.py before reading the oracle or "
            "its shares.\n"
        )
    print(f"**{args.preset}**, markets {' '.join(map(str, seeds))}\n")
    print("\n".join(model_table(results, horizons) + paired_table(results, horizons)))
    print("\n".join(paired_table(results, horizons, DEPLOYED_ROWS["ensemble"])))
    print("\n".join(oracle_shares(seeds, results, horizons[0])))
    print("\n".join(oracle_shares(seeds, results, horizons[0], DEPLOYED_ROWS["ensemble"])))
    if all(s in agreements for s in seeds):
        print("\n".join(agreement_table([agreements[s] for s in seeds], horizons)))


if __name__ == "__main__":
    main()
