"""Where everything lives under the data directory: the one place that names its folders and files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path


@dataclass(frozen=True)
class DataLayout:
    """The data directory's layout. Records store paths relative to ``root`` (:meth:`relative`), so a
    data directory can be moved or mounted elsewhere; :meth:`resolve` turns them back (an absolute path,
    as written by earlier versions, is returned as is)."""

    root: Path

    @property
    def tables_dir(self) -> Path:
        """Asset outputs (Parquet tables, JSON records)."""
        return self.root / "tables"

    @property
    def features_manifest(self) -> Path:
        return self.tables_dir / "enriched_features.manifest.json"

    @property
    def graph_config(self) -> Path:
        """The config the current stock_graph was built with (recorded with every checkpoint)."""
        return self.tables_dir / "stock_graph.config.json"

    @property
    def landing_dir(self) -> Path:
        return self.root / "landing"

    @property
    def quarantine_dir(self) -> Path:
        return self.landing_dir / "_quarantine"

    @property
    def champion_file(self) -> Path:
        """Where versions before the MLflow alias was the champion's pointer kept its state; read only when
        no alias is set (a data directory of such a version)."""
        return self.root / "champion.json"

    def champion_record(self, version: str) -> Path:
        """The record (members, folds, data end) of the registered model version promoted to champion,
        written once when it is promoted; the MLflow alias says which version is champion."""
        return self.root / "champions" / f"v{version}.json"

    @property
    def ops_dir(self) -> Path:
        return self.root / "ops"

    @property
    def failures_log(self) -> Path:
        return self.ops_dir / "failures.jsonl"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    def report_dir(self, run_id: str) -> Path:
        return self.root / "reports" / run_id

    def fold_dir(self, training_key: str, fold: int) -> Path:
        """One walk-forward fold's members, and what they share (the deployment refit's solve)."""
        return self.root / "models" / training_key / f"fold_{fold}"

    def member_dir(self, training_key: str, fold: int, seed: int) -> Path:
        """Checkpoints of one seed of one walk-forward fold. Keyed by what is trained (config, data, graph),
        not by the run, so a re-executed run finds its interrupted training and resumes it."""
        return self.fold_dir(training_key, fold) / f"seed_{seed}"

    @property
    def timing_dir(self) -> Path:
        """Skip timing's pass kept between daily predictions (training/timing_state.py); a cache: deleting
        it costs the next prediction one whole-history pass."""
        return self.root / "timing"

    def predictions_csv(self, day: date) -> Path:
        return self.root / "predictions" / f"{day}.csv"

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the root (POSIX separators); a path outside the root stays absolute."""
        p = Path(path)
        try:
            return p.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(p)

    def resolve(self, path: str | Path) -> Path:
        return self.root / path
