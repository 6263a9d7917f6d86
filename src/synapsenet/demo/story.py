"""``synapsenet demo``: the whole platform story, told against a running server.

Nine steps, each through the public HTTP API (the SDK), each checked:

1. Version the training data: raw applications, a cleaning step and a feature step, two
   versions each, with the transformations recorded in the lineage graph.
2. Train a baseline and a candidate model in tracked runs; register both versions with
   their training data, metrics and background rows.
3. Put the baseline in production.
4. Start a ramped canary of the candidate with an error-rate guardrail.
5. Send simulated applicants through ``/predict`` and report each outcome by request id.
6. The decision: in the ``rollback`` scenario the v2 feature step computed ``log_income``
   from the income in thousands; the candidate trained on it looks fine offline (its holdout
   went through the same step) but meets differently computed features online, its error
   rate degrades the guardrail and the platform rolls it back (the registry archives it). In
   the ``promote`` scenario the candidate wins and is promoted.
7. Explain predictions, and the production model's global importance over a dataset.
8. Deprecate the bad data version and show everything it affected.
9. Reconstruct a run's training data from its record and verify it byte for byte.

The data is generated (seeded), never downloaded. Running the demo again reuses the dataset
versions it committed before and registers new model versions and a new experiment.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import blake3
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from synapsenet.demo.data import (
    FEATURES,
    LABEL,
    clean,
    engineer,
    loan_applications,
    matrix,
    to_csv,
)
from synapsenet.demo.training import TrainedModel, train
from synapsenet.errors import ConflictError, NotFoundError
from synapsenet.sdk import Client
from synapsenet.services.abtesting.schemas import ObservationIn
from synapsenet.services.dataversion.lineage_model import (
    NodeRef,
    Transformation,
    TransformationType,
)

Scenario = Literal["rollback", "promote"]

STEPS = 9


class DemoFailedError(RuntimeError):
    """A step of the demo did not turn out as the platform promises."""


@dataclass(frozen=True)
class DemoOptions:
    """How the demo runs.

    Attributes:
        scenario: ``rollback`` (the candidate degrades the guardrail) or ``promote`` (it
            wins and is promoted).
        requests: Most simulated prediction requests; traffic stops earlier once the
            experiment is decided (rolled back, or the canary significantly better).
        prefix: Prefix of the datasets, model and experiment the demo creates.
        seed: Seed of the generated data and models.
        concurrency: Prediction requests in flight at once.
        timeout: Seconds to wait for asynchronous effects (events, jobs).
    """

    scenario: Scenario = "rollback"
    requests: int = 6000
    prefix: str = "demo"
    seed: int = 7
    concurrency: int = 4
    timeout: float = 60.0


@dataclass
class DemoReport:
    """What the demo did, for the summary and for tests."""

    datasets: dict[str, str] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)
    model_versions: dict[str, str] = field(default_factory=dict)
    experiment_id: str = ""
    outcome: str = ""
    requests: int = 0
    served: dict[str, int] = field(default_factory=dict)
    top_features: list[str] = field(default_factory=list)
    deprecated: str = ""
    impact: dict[str, list[str]] = field(default_factory=dict)
    reconstructed: dict[str, bool] = field(default_factory=dict)


@dataclass
class _Outcome:
    request_id: str
    unit_id: str
    error: float


class DemoStory:
    """Tells the story step by step.

    Args:
        client: An SDK client of the running server (an operator or admin key).
        console: Where the story is printed.
        options: How it runs.
    """

    def __init__(self, client: Client, console: Console, options: DemoOptions) -> None:
        self.client = client
        self.console = console
        self.options = options
        self.report = DemoReport()
        self.model = f"{options.prefix}-credit"
        self.raw = f"{options.prefix}-loans-raw"
        self.cleaned = f"{options.prefix}-loans-clean"
        self.features = f"{options.prefix}-loan-features"
        self._csv: dict[str, bytes] = {}
        self._trained: dict[str, TrainedModel] = {}
        self._step = 0

    # ------------------------------------------------------------------ running

    def run(self) -> DemoReport:
        """Run every step; raise :class:`DemoFailedError` when one does not hold."""
        self.version_data()
        self.train_models()
        self.put_baseline_in_production()
        self.start_canary()
        self.send_traffic()
        self.decide()
        self.explain()
        self.deprecate()
        self.reconstruct()
        self.console.rule("[bold green]Every step succeeded")
        return self.report

    def _title(self, text: str) -> None:
        self._step += 1
        self.console.print()
        self.console.rule(f"[bold]{self._step}/{STEPS}  {text}")

    def _ok(self, text: str) -> None:
        self.console.print(f"[green]✓[/green] {text}")

    def _wait(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.options.timeout
        while not ready():
            if time.monotonic() > deadline:
                raise DemoFailedError(f"{what} did not happen within {self.options.timeout:.0f} s")
            time.sleep(0.2)

    # ------------------------------------------------------------------ 1. data

    def _dataset(self, name: str, description: str) -> None:
        with suppress(ConflictError):  # created by an earlier demo run
            self.client.datasets.create_dataset(name, format="csv", description=description)

    def _commit(self, dataset: str, number: int, content: bytes, message: str) -> str:
        """Version ``number`` of ``dataset`` with ``content``: committed now or found."""
        ref = f"{dataset}@v{number}"
        existing = {v.number: v for v in self.client.datasets.log(dataset)}
        if number in existing:
            digest = self.client.datasets.files(dataset, f"v{number}")[0].blake3
            if digest != blake3.blake3(content).hexdigest():
                raise DemoFailedError(
                    f"{ref} exists with other content; run the demo with another --prefix"
                )
            self.console.print(f"  {ref} is there from an earlier run (same bytes)")
        else:
            committed = self.client.datasets.upload(
                dataset, content, path="data.csv", message=message, parent="head"
            )
            if committed.number != number:
                raise DemoFailedError(f"expected {ref}, the server committed {committed.ref}")
            self.console.print(
                f"  committed {committed.ref}: {committed.rows:,} rows, {committed.size:,} bytes"
            )
        self._csv[ref] = content
        return ref

    def _record(
        self, kind: TransformationType, name: str, source: str, target: str, **params: Any
    ) -> None:
        now = datetime.now(UTC)
        source_name, source_version = source.rsplit("@v", 1)
        target_name, target_version = target.rsplit("@v", 1)
        transformation = Transformation(
            id=f"{self.options.prefix}-{name}-{target_version}",
            type=kind,
            name=name,
            inputs=(NodeRef.dataset_version(source_name, int(source_version)),),
            outputs=(NodeRef.dataset_version(target_name, int(target_version)),),
            started_at=now,
            finished_at=now,
            parameters=params,
        )
        # An earlier run recorded it (with other times) when the id is known: kept as is.
        with suppress(ConflictError):
            self.client.datasets.record_transformation(transformation)

    def version_data(self) -> None:
        """Step 1: raw, clean and feature datasets, two versions each, with lineage."""
        self._title("Version the training data, with its lineage")
        self._dataset(self.raw, "Loan applications as received")
        self._dataset(self.cleaned, "Applications with complete fields")
        self._dataset(self.features, "Model features and the default label")
        seed = self.options.seed
        first = loan_applications(6000, seed=seed)
        second = pd.concat(
            [first, loan_applications(1500, seed=seed + 1, start_id=6000)], ignore_index=True
        )
        skewed = self.options.scenario == "rollback"
        for number, raw in ((1, first), (2, second)):
            raw_ref = self._commit(self.raw, number, to_csv(raw), f"applications batch {number}")
            cleaned = clean(raw)
            clean_ref = self._commit(self.cleaned, number, to_csv(cleaned), "drop incomplete")
            self._record(TransformationType.CLEAN, "drop_incomplete", raw_ref, clean_ref)
            featured = engineer(cleaned, income_in_thousands=skewed and number == 2)
            features_ref = self._commit(self.features, number, to_csv(featured), "features")
            self._record(
                TransformationType.FEATURE_ENGINEERING,
                "loan_features",
                clean_ref,
                features_ref,
                features=list(FEATURES),
            )
        self.report.datasets = {"v1": f"{self.features}@v1", "v2": f"{self.features}@v2"}
        lineage = self.client.datasets.lineage(self.features, "v2")
        chain = " → ".join(sorted({n.node for n in lineage.nodes}, reverse=True))
        self._ok(f"lineage of {self.features}@v2: {chain} → dataset:{self.features}@v2")
        if skewed:
            self.console.print(
                "  [yellow]unknown to anyone yet:[/yellow] the v2 feature step computes "
                "log_income from the income in thousands; serving computes it from the income"
            )

    # ------------------------------------------------------------------ 2-3. models

    def _holdout(self, *, skewed: bool = False) -> pd.DataFrame:
        holdout = loan_applications(3000, seed=self.options.seed + 100, start_id=1_000_000)
        return engineer(clean(holdout), income_in_thousands=skewed)

    def train_models(self) -> None:
        """Step 2: a baseline on features v1, a candidate on v2, each in a tracked run."""
        self._title("Train a baseline and a candidate in tracked runs")
        skewed = self.options.scenario == "rollback"
        table = Table("run", "trained on", "model version", "holdout error", "AUC")
        for kind, ref in (
            ("baseline", self.report.datasets["v1"]),
            ("candidate", self.report.datasets["v2"]),
        ):
            with self.client.start_run(project=self.model, name=kind) as run:
                logged = run.log_dataset(ref)
                # Each model is evaluated on a holdout prepared by its own feature step.
                holdout = self._holdout(skewed=skewed and kind == "candidate")
                trained = train(kind, self._csv[ref], holdout, seed=self.options.seed)
                run.log_params({**trained.params, "data_blake3": trained.data_blake3})
                run.log_metrics(
                    {"holdout_error": trained.holdout_error, "auc": trained.holdout_auc}
                )
                version = self.client.log_model(
                    self.model,
                    trained.model,
                    feature_names=FEATURES,
                    metrics={"holdout_error": trained.holdout_error, "auc": trained.holdout_auc},
                    training_datasets=[logged],
                    run_id=run.id,
                    background=trained.background,
                    description=f"{kind}: {trained.params['algorithm']}",
                )
                run.log_model(self.model, version.version)
            self._trained[kind] = trained
            self.report.runs[kind] = run.id
            self.report.model_versions[kind] = version.version
            table.add_row(
                f"{kind} (…{run.id[-8:]})",
                logged,
                f"{self.model} v{version.version}",
                f"{trained.holdout_error:.3f}",
                f"{trained.holdout_auc:.3f}",
            )
        self.console.print(table)
        self.console.print(
            "  offline, the candidate looks better: its holdout went through the same "
            "feature step as its training data"
        )

    def put_baseline_in_production(self) -> None:
        """Step 3: promote the baseline."""
        self._title("Put the baseline in production")
        version = self.report.model_versions["baseline"]
        promoted = self.client.models.promote(self.model, version, reason="first model")
        self._ok(f"{self.model} v{promoted.version} is {promoted.stage}")

    # ------------------------------------------------------------------ 4-6. canary

    def _stop_leftovers(self) -> None:
        for experiment in self.client.experiments.list_experiments(model_name=self.model):
            if experiment.status.value in ("running", "paused"):
                self.client.experiments.stop(experiment.id, reason="superseded by a new demo run")
                self.console.print(f"  stopped {experiment.name} left running by an earlier run")

    def start_canary(self) -> None:
        """Step 4: a ramped canary with an error-rate guardrail."""
        self._title("Start a ramped canary of the candidate")
        self._stop_leftovers()
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        spec = {
            "name": f"{self.model}-canary-{stamp}",
            "model_name": self.model,
            "description": "Gradient boosting candidate against the production tree",
            "strategy": "ramping",
            "variants": [
                {
                    "name": "control",
                    "model_version": self.report.model_versions["baseline"],
                    "weight": "0.5",
                    "is_control": True,
                },
                {
                    "name": "canary",
                    "model_version": self.report.model_versions["candidate"],
                    "weight": "0.5",
                },
            ],
            "ramp": [
                {"traffic": "0.25", "min_duration_seconds": 0, "min_samples_per_arm": 100},
                {"traffic": "0.5", "min_duration_seconds": 0, "min_samples_per_arm": 200},
            ],
            "metrics": [
                {
                    "name": "error",
                    "kind": "binary",
                    "direction": "lower",
                    "guardrail": True,
                    "allowed_degradation": 0.02,
                    "min_samples": 100,
                }
            ],
            "rollback_policy": {"consecutive_breaches": 2, "cooldown_seconds": 0},
        }
        created = self.client.experiments.create_experiment(spec)
        started = self.client.experiments.start(created.id)
        self.report.experiment_id = started.id
        self._ok(
            f"{started.name}: canary at {started.treatment_share * 100:.0f}% of traffic, "
            "guardrail: the error rate may not rise more than 2%"
        )

    def _applicants(self) -> Iterator[tuple[str, list[float], int]]:
        n = self.options.requests
        frame = engineer(
            clean(loan_applications(n + n // 10, seed=self.options.seed + 200, start_id=2_000_000))
        )
        rows = matrix(frame)
        for applicant, row, label in zip(
            frame["applicant_id"], rows.tolist(), frame[LABEL], strict=True
        ):
            yield f"applicant-{applicant}", row, int(label)

    def _serve(self, unit: str, row: list[float], label: int) -> tuple[_Outcome | None, str]:
        answer = self.client.predict(self.model, [row], unit_id=unit)
        error = 0.0 if str(answer.predictions[0]) == str(label) else 1.0
        arm = answer.variant if answer.exposure and answer.variant else "outside the experiment"
        # Only exposures have outcomes in the experiment: once it has ended (a rollback by
        # the scheduler between two waves), requests go to production and are not counted.
        outcome = _Outcome(answer.request_id, unit, error) if answer.exposure else None
        return outcome, arm

    def _report_outcomes(self, outcomes: list[_Outcome]) -> str | None:
        now = datetime.now(UTC)
        observations = [
            ObservationIn(
                event_id=f"outcome-{o.request_id}",
                unit_id=o.unit_id,
                request_id=o.request_id,
                time=now,
                metric="error",
                value=o.error,
            )
            for o in outcomes
        ]
        result = self.client.experiments.ingest(self.report.experiment_id, observations)
        return None if result.guardrails is None else result.guardrails.action.value

    def _canary_wins(self) -> bool:
        results = self.client.experiments.results(self.report.experiment_id)
        error = next(m for m in results.metrics if m.metric == "error")
        return error.verdict.value == "better"

    def send_traffic(self) -> None:
        """Step 5: simulated applicants through /predict, outcomes by request id."""
        self._title("Send traffic through /predict and report outcomes")
        served: Counter[str] = Counter()
        wave = 200
        applicants = list(self._applicants())[: self.options.requests]
        progress = Progress(
            TextColumn("  predictions"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        ramp_step = 0
        with progress, ThreadPoolExecutor(self.options.concurrency) as pool:
            task = progress.add_task("predict", total=len(applicants))
            for start in range(0, len(applicants), wave):
                batch = applicants[start : start + wave]
                answers = list(pool.map(lambda a: self._serve(*a), batch))
                served.update(variant for _, variant in answers)
                progress.advance(task, len(batch))
                outcomes = [outcome for outcome, _ in answers if outcome is not None]
                action = self._report_outcomes(outcomes) if outcomes else None
                status = self.client.experiments.get_experiment(self.report.experiment_id).status
                if action == "rolled_back" or status.value == "rolled_back":
                    progress.console.print(
                        f"  [red]guardrail breached twice in a row after {start + len(batch)} "
                        "requests: rolled back[/red]"
                    )
                    break
                if self.options.scenario == "promote" and self._canary_wins():
                    progress.console.print(
                        f"  after {start + len(batch)} requests the canary is significantly "
                        "better (always-valid p-values: looking after every wave is safe)"
                    )
                    break
                decision = self.client.experiments.ramp(self.report.experiment_id)
                if decision.step_index > ramp_step and decision.action.value == "advance":
                    ramp_step = decision.step_index
                    progress.console.print(
                        f"  ramp advanced: canary now at {decision.traffic * 100:.0f}% "
                        f"({decision.detail})"
                    )
        self.report.requests = sum(served.values())
        self.report.served = dict(served)
        table = Table("arm", "requests served")
        for variant, count in sorted(served.items()):
            table.add_row(variant, f"{count:,}")
        self.console.print(table)

    def decide(self) -> None:
        """Step 6: the platform's decision, and the registry following it."""
        self._title("The decision")
        experiment_id = self.report.experiment_id
        candidate = self.report.model_versions["candidate"]
        experiment = self.client.experiments.get_experiment(experiment_id)
        if self.options.scenario == "rollback":
            if experiment.status.value != "rolled_back":
                raise DemoFailedError(
                    f"the canary was expected to be rolled back; it is {experiment.status.value}"
                )
            decision = next(
                d for d in self.client.experiments.decisions(experiment_id) if d.kind == "rollback"
            )
            self._ok(f"rolled back automatically: {decision.reason}")
            self._wait(
                "the registry archiving the canary",
                lambda: (
                    self.client.models.get_version(self.model, candidate).stage.value == "archived"
                ),
            )
            self._ok(f"the registry archived {self.model} v{candidate} (event-driven)")
            self.report.outcome = "rolled_back"
            return
        results = self.client.experiments.results(experiment_id)
        error = next(m for m in results.metrics if m.metric == "error")
        self.console.print(
            f"  error rate: control {error.control_mean:.3f} (n={error.control_n}), canary "
            f"{error.treatment_mean:.3f} (n={error.treatment_n}), p={error.p_value:.2g}"
        )
        if error.verdict.value != "better":
            raise DemoFailedError(
                f"the candidate was expected to win; the verdict is {error.verdict.value}"
            )
        self.client.experiments.complete(experiment_id, winner="canary")
        self._wait(
            "the registry promoting the winner",
            lambda: self.client.models.production_version(self.model).version == candidate,
        )
        self._ok(f"the canary won: {self.model} v{candidate} is in production (event-driven)")
        self.report.outcome = "promoted"

    # ------------------------------------------------------------------ 7. explanations

    def explain(self) -> None:
        """Step 7: per-prediction SHAP values and global importance over a dataset."""
        self._title("Explain predictions")
        production = self.client.models.production_version(self.model).version
        frame = self._holdout().head(3)
        answer = self.client.predict(self.model, matrix(frame).tolist(), explain=True)
        explanation = answer.explanation
        if explanation is None:
            raise DemoFailedError("the prediction came back without its explanation")
        output = explanation.output_names.index("1") if "1" in explanation.output_names else 0
        table = Table("applicant", "P(default)", "pushed up by", "pushed down by")
        for i, values in enumerate(explanation.values):
            contributions = sorted(
                (
                    (row[output] or 0.0, name)
                    for row, name in zip(values, explanation.feature_names, strict=True)
                ),
                reverse=True,
            )
            up, down = contributions[0], contributions[-1]
            table.add_row(
                str(frame["applicant_id"].iloc[i]),
                f"{answer.outputs[i][1]:.2f}",
                f"{up[1]} ({up[0]:+.2f})" if up[0] > 0 else "-",
                f"{down[1]} ({down[0]:+.2f})" if down[0] < 0 else "-",
            )
        self.console.print(table)
        job = self.client.explanations.submit_job(
            self.model, production, dataset_ref=self.report.datasets["v1"]
        )
        self._wait(
            "the batch explanation",
            lambda: (
                self.client.explanations.get_job(job.id).status.value in ("succeeded", "failed")
            ),
        )
        finished = self.client.explanations.get_job(job.id)
        if finished.status.value != "succeeded":
            raise DemoFailedError(f"the batch explanation failed: {finished.error}")
        importance = self.client.explanations.importance(job.id, output=output)
        table = Table("feature", "mean |SHAP|", "95% interval")
        for feature in importance.features:
            table.add_row(
                feature.feature,
                f"{feature.importance:.4f}",
                f"{feature.ci_lower:.4f} to {feature.ci_upper:.4f}",
            )
        self.console.print(
            f"  global importance of v{production} over {importance.n_explanations:,} rows "
            f"of {self.report.datasets['v1']}:"
        )
        self.console.print(table)
        self.report.top_features = [f.feature for f in importance.features[:3]]

    # ------------------------------------------------------------------ 8-9. data

    def deprecate(self) -> None:
        """Step 8: deprecate a data version and show what it affected."""
        self._title("Deprecate a data version and see what it affected")
        if self.options.scenario == "rollback":
            dataset, ref = self.features, "v2"
            reason = "log_income was computed from the income in thousands (training-serving skew)"
        else:
            dataset, ref = self.raw, "v1"
            reason = "the first batch contains test applications"
        try:
            deprecation = self.client.datasets.deprecate(dataset, ref, reason=reason)
        except ConflictError:
            self.console.print(f"  {dataset}@{ref} was deprecated by an earlier run")
            impact = self.client.datasets.impact(dataset, ref)
        else:
            impact = deprecation.impact
            self._ok(f"{dataset}@{ref} deprecated: {reason}")
        self.report.deprecated = f"{dataset}@{ref}"
        self.report.impact = {
            "dataset_versions": impact.dataset_versions,
            "runs": impact.runs,
            "model_versions": impact.model_versions,
        }
        table = Table("affected", "what")
        for node in impact.dataset_versions:
            table.add_row(node, "derived dataset version")
        for node in impact.runs:
            table.add_row(node, "training run that read it")
        for node in impact.model_versions:
            name, version = node.removeprefix("model:").rsplit("@", 1)
            try:
                stage = self.client.models.get_version(name, version).stage.value
            except NotFoundError:
                stage = "not in the registry"
            table.add_row(node, f"model version ({stage})")
        self.console.print(table)
        mine = {f"model:{self.model}@{v}" for v in self.report.model_versions.values()}
        affected = set(impact.model_versions)
        for experiment in self.client.experiments.list_experiments(model_name=self.model):
            served = {f"model:{self.model}@{v.model_version}" for v in experiment.variants}
            if not served & affected or experiment.id != self.report.experiment_id:
                continue
            self.console.print(
                f"  experiment {experiment.name} served an affected version; it is "
                f"{experiment.status.value}"
            )
        if not set(impact.model_versions) & mine:
            raise DemoFailedError("the impact analysis did not reach the models trained on it")

    def reconstruct(self) -> None:
        """Step 9: get each run's training data back and verify it byte for byte."""
        self._title("Reconstruct the training data of each run, byte for byte")
        with tempfile.TemporaryDirectory(prefix="synapsenet-demo-") as scratch:
            for kind, run_id in self.report.runs.items():
                run = self.client.runs.get_run(run_id)
                expected = str(run.params["data_blake3"])
                for ref in self.client.runs.datasets_of_run(run_id):
                    dataset, version = ref.rsplit("@", 1)
                    target = Path(scratch) / kind / dataset
                    files = self.client.datasets.checkout(dataset, version, target)
                    actual = blake3.blake3(files[0].read_bytes()).hexdigest()
                    same = actual == expected
                    self.report.reconstructed[kind] = same
                    mark = "[green]✓[/green]" if same else "[red]✗[/red]"
                    self.console.print(
                        f"{mark} run {kind} (…{run_id[-8:]}) read {ref}: BLAKE3 {actual[:16]}… "
                        f"{'matches' if same else 'differs from'} what it trained on"
                    )
        if not all(self.report.reconstructed.values()) or not self.report.reconstructed:
            raise DemoFailedError("a run's training data could not be reconstructed exactly")
