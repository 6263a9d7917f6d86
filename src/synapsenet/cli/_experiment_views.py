"""Rich renderings of A/B testing API answers for ``synapsenet experiment``."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from synapsenet.services.abtesting.models import ExperimentStatus
from synapsenet.services.abtesting.result_schemas import (
    MetricResultPublic,
    ResultsPublic,
    SRMPublic,
)
from synapsenet.services.abtesting.schemas import (
    DecisionPublic,
    ExperimentPublic,
    GuardrailCheckPublic,
    RampDecisionPublic,
    TickReportPublic,
)
from synapsenet.services.abtesting.statistics.results import ResultCode, Verdict

_STATUS_STYLE = {
    ExperimentStatus.DRAFT: "dim",
    ExperimentStatus.RUNNING: "green",
    ExperimentStatus.PAUSED: "yellow",
    ExperimentStatus.COMPLETED: "blue",
    ExperimentStatus.ROLLED_BACK: "red",
    ExperimentStatus.STOPPED: "dim",
}
_VERDICT_STYLE = {Verdict.BETTER: "green", Verdict.WORSE: "red", Verdict.INCONCLUSIVE: "dim"}
_ACTION_STYLE = {
    "rolled_back": "bold red",
    "watching": "yellow",
    "breach": "red",
    "healthy": "green",
    "inconclusive": "dim",
    "not_running": "dim",
}


def when(moment: datetime | None) -> str:
    """A UTC timestamp to the second, or ``-``."""
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def status_text(status: ExperimentStatus) -> str:
    """The status, coloured."""
    return f"[{_STATUS_STYLE[status]}]{status.value}[/]"


def allocation_text(experiment: ExperimentPublic) -> str:
    """``control 0.9 / canary 0.1``."""
    return " / ".join(f"{escape(name)} {w}" for name, w in experiment.allocation.items())


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _interval(
    estimate: float | None, lower: float | None, upper: float | None, *, percent: bool
) -> str:
    if estimate is None:
        return "-"

    def fmt(value: float) -> str:
        return f"{value:+.2%}" if percent else f"{value:+.4g}"

    # A confidence sequence may be unbounded on one side early on (a null bound).
    low = fmt(lower) if lower is not None else "-inf"
    high = fmt(upper) if upper is not None else "+inf"
    return f"{fmt(estimate)} ({low}, {high})"


def print_experiment(console: Console, experiment: ExperimentPublic) -> None:
    """An experiment's definition and state."""
    e = experiment
    console.print(
        f"[bold]{escape(e.name)}[/] ({e.id}) on model {escape(e.model_name)}: "
        f"{status_text(e.status)}, {e.strategy.value}, coverage {e.coverage}"
    )
    if e.description:
        console.print(escape(e.description))
    console.print(
        f"created {when(e.created_at)}, started {when(e.started_at)}, ended {when(e.ended_at)}"
        + (f", winner {escape(e.winner)}" if e.winner else "")
    )
    variants = Table("variant", "model version", "control", "target weight", "current weight")
    for v in e.variants:
        variants.add_row(
            escape(v.name),
            escape(v.model_version),
            "yes" if v.is_control else "",
            str(v.weight),
            str(e.allocation.get(v.name, "-")),
        )
    console.print(variants)
    if e.metrics:
        metrics = Table("metric", "kind", "better", "guardrail", "allowed degradation", "limit")
        for m in e.metrics:
            metrics.add_row(
                escape(m.name),
                m.kind.value,
                m.direction.value,
                "yes" if m.guardrail else "",
                f"{m.allowed_degradation:.0%}" if m.guardrail else "",
                _number(m.hard_threshold) if m.hard_threshold is not None else "",
            )
        console.print(metrics)
    if e.ramp:
        held = " (held)" if e.ramp_held else ""
        steps = Table("step", "traffic", "min duration (s)", "min samples per arm")
        for i, step in enumerate(e.ramp):
            marker = f" <- current{held}" if i == e.ramp_step else ""
            steps.add_row(
                f"{i}{marker}",
                str(step.traffic),
                f"{step.min_duration_seconds:g}",
                str(step.min_samples_per_arm),
            )
        console.print(steps)
    p = e.rollback_policy
    console.print(
        f"rollback: alpha {p.alpha:g}, {p.consecutive_breaches} breach(es) in a row, "
        f"cooldown {p.cooldown_seconds:g} s, data stale after {p.stale_after_seconds:g} s"
    )


def _metric_row(result: MetricResultPublic, sequential: bool) -> list[str]:
    if sequential and result.sequential is not None:
        absolute = result.sequential
        relative = result.sequential_relative
        abs_text = _interval(absolute.estimate, absolute.ci_lower, absolute.ci_upper, percent=False)
        rel_text = (
            _interval(relative.estimate, relative.ci_lower, relative.ci_upper, percent=True)
            if relative is not None
            else "-"
        )
    else:
        a, r = result.absolute_lift, result.relative_lift
        abs_text = _interval(a.estimate, a.ci_lower, a.ci_upper, percent=False)
        rel_text = _interval(r.estimate, r.ci_lower, r.ci_upper, percent=True)
    verdict = f"[{_VERDICT_STYLE[result.verdict]}]{result.verdict.value}[/]"
    return [
        escape(result.variant),
        f"{result.control_n:,} / {result.treatment_n:,}",
        f"{_number(result.control_mean)} -> {_number(result.treatment_mean)}",
        abs_text,
        rel_text,
        _p(result.p_value),
        _p(result.adjusted_p_value),
        verdict,
        "yes" if result.cuped else "",
    ]


def _srm_text(srm: SRMPublic | None) -> str:
    if srm is None:
        return "SRM: not checked (the allocation changed during the experiment, or no start)"
    counts = " / ".join(f"{n:,}" for n in srm.observed)
    expected = " / ".join(f"{x:,.1f}" for x in srm.expected)
    if srm.code is not ResultCode.OK:
        return f"SRM: {srm.code.value} ({escape(srm.reason)}); observed {counts}"
    verdict = "[bold red]MISMATCH[/]" if srm.mismatch else "[green]ok[/]"
    return (
        f"SRM: {verdict} (p={_p(srm.p_value)}, alpha {srm.alpha:g}); "
        f"observed {counts}, expected {expected}"
    )


def print_results(console: Console, page: ResultsPublic) -> None:
    """The results page: one table per metric, the SRM check and the traffic per variant."""
    mode = "sequential (always valid)" if page.sequential else "fixed horizon"
    console.print(
        f"[bold]{escape(page.name)}[/] ({page.experiment_id}): {status_text(page.status)}; "
        f"{mode}, alpha {page.alpha:g}, {page.correction.value} correction; "
        f"computed {when(page.computed_at)} UTC"
    )
    level = f"{1 - page.alpha:.0%}"
    interval = "CS" if page.sequential else "CI"
    caption = (
        f"CS: {level} confidence sequence and p-value, both valid at every look"
        if page.sequential
        else f"CI: {level} confidence interval, valid at one planned look"
    ) + f"; adj. p: {page.correction.value} across all metrics and variants"
    by_metric: dict[str, list[MetricResultPublic]] = {}
    for result in page.metrics:
        by_metric.setdefault(result.metric, []).append(result)
    if not by_metric:
        console.print("The experiment has no metrics.")
    for name, rows in by_metric.items():
        first = rows[0]
        better = "higher" if first.direction.value == "higher" else "lower"
        guard = ", guardrail" if first.guardrail else ""
        table = Table(
            "variant",
            "n (ctl / var)",
            "mean (ctl -> var)",
            f"abs lift ({level} {interval})",
            f"rel lift ({level} {interval})",
            "p",
            "adj. p",
            "verdict",
            "CUPED",
            title=f"{escape(name)} ({first.kind.value}, {better} is better{guard})",
            title_justify="left",
        )
        notes = []
        for result in rows:
            table.add_row(*_metric_row(result, page.sequential))
            if result.code is not ResultCode.OK:
                notes.append(f"{escape(result.variant)}: {escape(result.reason)}")
        console.print(table)
        for note in notes:
            console.print(f"  [dim]{note}[/]")
    if by_metric:
        console.print(f"[dim]{caption}[/]")
    console.print(_srm_text(page.srm))
    traffic = Table("variant", "model version", "control", "weight", "exposures", title="traffic")
    for v in page.variants:
        traffic.add_row(
            escape(v.name),
            escape(v.model_version),
            "yes" if v.is_control else "",
            str(v.weight),
            f"{v.exposures:,}",
        )
    console.print(traffic)


def print_decisions(console: Console, log: list[DecisionPublic]) -> None:
    """The decision log, newest first."""
    if not log:
        console.print("No decisions yet.")
        return
    table = Table("#", "at (UTC)", "kind", "outcome", "reason")
    for d in log:
        style = _ACTION_STYLE.get(d.outcome)
        outcome = f"[{style}]{escape(d.outcome)}[/]" if style else escape(d.outcome)
        table.add_row(str(d.id), when(d.at), escape(d.kind), outcome, escape(d.reason))
    console.print(table)


def ramp_text(decision: RampDecisionPublic) -> str:
    """One line for a ramp decision."""
    return (
        f"ramp {decision.action.value} ({decision.reason.value}): {escape(decision.detail)} "
        f"Step {decision.step_index}, traffic {decision.traffic}."
    )


def _checks_table(checks: list[GuardrailCheckPublic]) -> Table:
    table = Table("metric", "variant", "status", "n (control / variant)", "means", "p", "streak")
    for c in checks:
        status = f"[{_ACTION_STYLE[c.status.value]}]{c.status.value}[/]"
        table.add_row(
            escape(c.metric),
            escape(c.variant),
            status,
            f"{c.control_n:,} / {c.treatment_n:,}",
            f"{_number(c.control_mean)} -> {_number(c.treatment_mean)}",
            _p(c.p_value),
            str(c.consecutive_breaches),
        )
    return table


def print_tick(console: Console, report: TickReportPublic) -> None:
    """What a check did: the guardrail decision with its checks, then ramp or bandit."""
    g = report.guardrails
    style = _ACTION_STYLE.get(g.action.value, "")
    console.print(f"guardrails: [{style}]{g.action.value}[/]: {escape(g.reason)}")
    if g.checks:
        console.print(_checks_table(g.checks))
    if report.ramp is not None:
        console.print(ramp_text(report.ramp))
    if report.reweighted:
        console.print("bandit: arms reweighted")
