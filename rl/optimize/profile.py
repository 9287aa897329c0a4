"""A study's result as a strategy profile: profiles/NAME.json.

    {"format": 1, "profile": NAME, "created": ISO UTC,
     "params": {dotted StrategyParams key: value, ...},     # what STRATEGY_PROFILE applies
     "full_params": {every key: value},                       # the whole parameter set, for reading
     "provenance": {study, storage, sampler, seed, objective, search_space, folds (date ranges,
                    best trial, in- and out-of-sample figures), chosen_from_fold, symbols,
                    data_files (with SHA-256)},
     "objective": {"in_sample": the chosen fold's window score,
                   "out_of_sample": the stitched out-of-sample score}}

`params` are the parameters chosen on the LAST fold (the most recent training window): the
ones a trader would run next. They hold only the searched keys, so settings in .env that the
study did not search (MAX_RISK_PERCENT, leverage, fees) still apply. config.py reads `params`
(`read_profile`) and StrategyParams.from_settings applies them, for `python -m web.app
--profile NAME`, `python -m rl.backtest --profile NAME` and STRATEGY_PROFILE=NAME in .env.
"""
from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import optuna

from config import PROFILES_DIR
from rl.optimize import space
from rl.optimize.oos_baselines import compact
from rl.optimize.walkforward import WalkForwardResult, objective_doc

FORMAT = 1


def profile_doc(result: WalkForwardResult, name: str) -> dict:
    if not result.folds:
        raise ValueError("the walk-forward has no fold: there are no parameters to save")
    last = result.folds[-1]
    base = space.apply_base(result.base_params)
    chosen = space.apply(base, last.params)
    cfg = result.config
    return {
        "format": FORMAT, "profile": name,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "params": dict(last.params), "full_params": chosen.to_flat(),
        "provenance": {
            "study": cfg.study, "storage": cfg.public()["storage"], "sampler": "optuna TPESampler",
            "optuna": str(optuna.__version__), "seed": cfg.seed, "trials_per_fold": cfg.trials,
            "walk_forward": "anchored" if cfg.anchored else "rolling",
            "train_months": cfg.train_months, "test_months": cfg.test_months,
            "objective": objective_doc(cfg.min_trades_per_run), "search_space": space.describe(),
            "chosen_from_fold": last.fold.index, "folds": result.fold_table(),
            "symbols": list(cfg.symbols), "months": result.months, "data_files": result.data_files,
            "out_of_sample_baselines": None if result.baselines is None else compact(result.baselines)},
        "objective": {"in_sample": last.in_sample.to_dict(), "out_of_sample": result.out_of_sample.to_dict()},
    }


def write_profile(result: WalkForwardResult, name: str, directory: Path | None = None) -> Path:
    """Write profiles/NAME.json atomically (a reader never sees half a file)."""
    directory = PROFILES_DIR if directory is None else directory
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    tmp = path.with_suffix(f".json.tmp{os.getpid()}")
    tmp.write_text(json.dumps(profile_doc(result, name), indent=1, sort_keys=True, allow_nan=False) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_result(result: WalkForwardResult, name: str, directory: Path | None = None) -> Path:
    """The full walk-forward result (fold table, every trial, curves) beside the profile:
    profiles/NAME.walkforward.json (what a report reads)."""
    directory = PROFILES_DIR if directory is None else directory
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.walkforward.json"
    tmp = path.with_suffix(f".json.tmp{os.getpid()}")
    tmp.write_text(json.dumps(result.to_json(), indent=1, sort_keys=True, allow_nan=False) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)
    return path



def _write_json(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(f".json.tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def profile_path_for(result_path: Path) -> Path:
    """profiles/NAME.json beside profiles/NAME.walkforward.json."""
    name = result_path.name.removesuffix(".walkforward.json")
    return result_path.with_name(f"{name}.json")


def save_baselines(result_path: Path, result_doc: dict, section: dict) -> list[Path]:
    """Store an out-of-sample baseline section (rl.optimize.oos_baselines.compute) in a saved
    walk-forward result and, compacted, in its profile's provenance (when the profile is there
    and was made from the same study). Returns the files written."""
    result_doc["out_of_sample_baselines"] = section
    _write_json(result_path, result_doc)
    written = [result_path]
    prof = profile_path_for(result_path)
    if prof.is_file():
        doc = json.loads(prof.read_text(encoding="utf-8"))
        same = (doc.get("provenance") or {}).get("study") == (result_doc.get("config") or {}).get("study")
        if same:
            doc["provenance"]["out_of_sample_baselines"] = compact(section)
            _write_json(prof, doc)
            written.append(prof)
    return written
