"""The exposure log: buffered counting of served requests and attribution of outcomes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from synapsenet.core.db import Database
from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.engine import ABTestingEngine
from synapsenet.services.abtesting.exposures import ExposureLog, PendingOutcome
from synapsenet.services.abtesting.models import Exposure, Observation
from tests.fixtures.redis import wait_until
from tests.services.abtesting.conftest import canary_spec

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def running(engine: ABTestingEngine) -> str:
    experiment = engine.create(canary_spec())
    engine.start(experiment.id)
    return experiment.id


def exposure(request_id: str, unit_id: str, variant: str, seconds: int = 0) -> Exposure:
    return Exposure(request_id, unit_id, variant, T0 + timedelta(seconds=seconds))


def outcome(event_id: str, unit_id: str, *, variant: str = "") -> Observation:
    return Observation(event_id, unit_id, variant, T0, metric="conversion", value=1.0)


def exposure_counts(engine: ABTestingEngine, experiment_id: str) -> dict[str, int]:
    _, _, exposures = engine.statistics(experiment_id)
    return {name: count for name, (count, _) in exposures.items()}


def test_buffered_exposures_are_counted_once_per_request_after_a_flush(
    engine: ABTestingEngine, running: str
) -> None:
    log = ExposureLog(engine)
    log.record(running, exposure("r1", "alice", "control"))
    log.record(running, exposure("r2", "bob", "canary"))
    log.record(running, exposure("r2", "bob", "canary"))  # a retried request
    assert log.pending == 3
    assert exposure_counts(engine, running) == {}
    assert log.flush() == 3
    assert log.pending == 0
    assert exposure_counts(engine, running) == {"control": 1, "canary": 1}
    assert log.flush() == 0


def test_outcomes_are_attributed_by_request_then_by_the_units_latest_request(
    engine: ABTestingEngine, running: str
) -> None:
    log = ExposureLog(engine)
    log.record(running, exposure("r1", "alice", "control", 0))
    log.record(running, exposure("r2", "alice", "canary", 5))  # the unit moved arms
    log.record(running, exposure("r3", "bob", "control", 1))
    named = outcome("e0", "carol", variant="canary")
    resolved = log.attribute(
        running,
        [
            PendingOutcome(outcome("e1", "alice"), "r1", resolve=True),
            PendingOutcome(outcome("e2", "alice"), None, resolve=True),
            PendingOutcome(outcome("e3", "bob"), None, resolve=True),
            PendingOutcome(named, None, resolve=False),
        ],
    )
    assert [o.variant for o in resolved] == ["control", "canary", "control", "canary"]
    assert resolved[3] is named
    assert log.pending == 0  # attribution flushed the buffer first


def test_attribution_without_anything_to_resolve_reads_nothing(
    engine: ABTestingEngine, running: str
) -> None:
    log = ExposureLog(engine)
    log.record(running, exposure("r1", "alice", "control"))
    named = outcome("e1", "alice", variant="control")
    assert log.attribute(running, [PendingOutcome(named, None, resolve=False)]) == [named]
    assert log.pending == 1


@pytest.mark.parametrize(
    ("request_id", "unit_id", "names"),
    [("r-unknown", "alice", "request 'r-unknown'"), (None, "nobody", "unit 'nobody'")],
)
def test_an_outcome_of_a_request_or_unit_never_served_is_refused_by_name(
    engine: ABTestingEngine, running: str, request_id: str | None, unit_id: str, names: str
) -> None:
    log = ExposureLog(engine)
    log.record(running, exposure("r1", "alice", "control"))
    with pytest.raises(InvalidError, match=names) as caught:
        log.attribute(running, [PendingOutcome(outcome("e1", unit_id), request_id, resolve=True)])
    assert caught.value.field == "variant"
    assert "observation 0 ('e1')" in str(caught.value)


def test_a_failed_write_keeps_the_exposures_buffered_in_order(
    engine: ABTestingEngine, running: str
) -> None:
    log = ExposureLog(engine)
    log.record("no-such-experiment", exposure("r0", "zed", "control"))
    log.record(running, exposure("r1", "alice", "control"))
    with pytest.raises(Exception, match="no-such-experiment"):
        log.flush()
    # The good batch was written, the failed one stays for the next attempt.
    assert exposure_counts(engine, running) == {"control": 1}
    assert log.pending == 1


def test_exposures_naming_an_unknown_arm_are_dropped_and_counted(
    engine: ABTestingEngine, running: str
) -> None:
    registry = CollectorRegistry()
    log = ExposureLog(engine, registry=registry)
    log.record(running, exposure("r1", "alice", "no-such-arm"))
    assert log.flush() == 0
    assert log.pending == 0
    assert registry.get_sample_value("synapsenet_exposures_dropped_total") == 1.0


def test_a_full_buffer_drops_the_oldest_exposures(engine: ABTestingEngine, running: str) -> None:
    registry = CollectorRegistry()
    log = ExposureLog(engine, max_pending=2, registry=registry)
    for i in range(3):
        log.record(running, exposure(f"r{i}", f"u{i}", "control"))
    assert log.pending == 2
    assert registry.get_sample_value("synapsenet_exposures_dropped_total") == 1.0
    log.flush()
    resolved = log.attribute(running, [PendingOutcome(outcome("e", "u2"), "r2", resolve=True)])
    assert resolved[0].variant == "control"
    with pytest.raises(InvalidError, match="request 'r0'"):
        log.attribute(running, [PendingOutcome(outcome("e", "u0"), "r0", resolve=True)])


def test_the_background_writer_flushes_and_stop_writes_the_rest(
    engine: ABTestingEngine, running: str
) -> None:
    log = ExposureLog(engine, flush_interval=0.05)
    log.start()
    log.start()  # idempotent
    log.record(running, exposure("r1", "alice", "control"))
    wait_until(lambda: exposure_counts(engine, running) == {"control": 1}, timeout=10)
    log.stop()
    log.record(running, exposure("r2", "bob", "canary"))
    log.stop()  # not running: still writes what is left
    assert exposure_counts(engine, running) == {"control": 1, "canary": 1}


def test_the_background_writer_survives_a_failing_write(
    engine: ABTestingEngine, running: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = ExposureLog(engine, flush_interval=0.05)
    log.record("no-such-experiment", exposure("r0", "zed", "control"))
    log.start()
    wait_until(lambda: "stay buffered" in caplog.text, timeout=10)
    log.record(running, exposure("r1", "alice", "control"))
    wait_until(lambda: exposure_counts(engine, running) == {"control": 1}, timeout=10)
    log.stop()
    assert "left unwritten at shutdown: 1" in caplog.text


def test_concurrent_flushes_count_every_exposure_once(
    engine: ABTestingEngine, running: str, db: Database
) -> None:
    log = ExposureLog(engine)
    for i in range(200):
        log.record(running, exposure(f"r{i}", f"u{i}", "control" if i % 2 else "canary"))
    threads = [threading.Thread(target=log.flush) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert exposure_counts(engine, running) == {"control": 100, "canary": 100}
