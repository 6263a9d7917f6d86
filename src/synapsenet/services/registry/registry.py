"""ModelRegistry: registered models, versions with verified artifacts, and their stages.

Artifacts go to the platform object store under their BLAKE3 address before the version row
is written; the row and its event commit together. Every stage change locks the model row
(``SELECT ... FOR UPDATE`` on PostgreSQL, an immediate write transaction on SQLite), archives
the previous production version when it promotes, and writes its event to the outbox in the
same transaction, so concurrent promotions leave exactly one production version.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import datetime
from typing import BinaryIO

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from synapsenet.core.db import Database, utcnow
from synapsenet.core.events import Event
from synapsenet.core.outbox import record_event
from synapsenet.core.storage import ObjectStore
from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.services.registry.artifacts import (
    CorruptArtifactError,
    artifact_key,
    background_key,
    background_npy,
    content_hash,
    verify,
)
from synapsenet.services.registry.flavors import deserialize, detect_flavor, load_npy, serialize
from synapsenet.services.registry.models import (
    ModelFlavor,
    ModelSignature,
    ModelStage,
    ModelVersion,
    RegisteredModel,
    check_dataset_refs,
    check_metrics,
    check_model_name,
    parse_version,
)
from synapsenet.services.registry.signatures import infer_signature, model_feature_count
from synapsenet.services.registry.stages import StageChange, TransitionKind, plan_transition
from synapsenet.services.registry.store import (
    ModelRecord,
    ModelVersionRecord,
    model_from_record,
    version_from_record,
)

__all__ = ["EVENT_SOURCE", "ModelRegistry"]

EVENT_SOURCE = "/registry"


class ModelRegistry:
    """Models, their versions and stages, on the platform database and object store.

    Args:
        db: The platform database (migrated).
        store: Where artifacts and background rows are stored.
        clock: Source of the current time (aware UTC).
    """

    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.clock = clock or utcnow

    # ------------------------------------------------------------------ models

    def create_model(self, name: str, *, description: str = "") -> RegisteredModel:
        """Register a new model name.

        Raises:
            InvalidError: The name is not usable.
            ConflictError: A model with that name exists.
        """
        check_model_name(name)
        try:
            with self.db.transaction() as session:
                record = self._add_model(session, name, description)
        except IntegrityError:
            raise ConflictError(f"a model named {name!r} exists already") from None
        return model_from_record(record, None)

    def _add_model(self, session: Session, name: str, description: str) -> ModelRecord:
        now = self.clock()
        record = ModelRecord(
            name=name, description=description, latest_version=0, created_at=now, updated_at=now
        )
        session.add(record)
        session.flush()
        record_event(
            session,
            Event(
                type="registry.model.created",
                source=EVENT_SOURCE,
                subject=name,
                data={"model_name": name, "description": description},
            ),
        )
        return record

    def get_model(self, name: str) -> RegisteredModel:
        """The model named ``name``.

        Raises:
            NotFoundError: There is none.
        """
        with self.db.transaction() as session:
            record = session.get(ModelRecord, name)
            if record is None:
                raise NotFoundError(f"no model named {name!r}")
            return model_from_record(record, self._production_of(session, name))

    def list_models(self) -> list[RegisteredModel]:
        """Every model, by name."""
        with self.db.transaction() as session:
            rows = session.execute(
                select(ModelVersionRecord.model_name, ModelVersionRecord.number).where(
                    ModelVersionRecord.stage == ModelStage.PRODUCTION.value
                )
            ).all()
            production = dict(rows)
            records = session.scalars(select(ModelRecord).order_by(ModelRecord.name))
            return [
                model_from_record(r, str(production[r.name]) if r.name in production else None)
                for r in records
            ]

    @staticmethod
    def _production_of(session: Session, name: str) -> str | None:
        number = session.scalars(
            select(ModelVersionRecord.number).where(
                ModelVersionRecord.model_name == name,
                ModelVersionRecord.stage == ModelStage.PRODUCTION.value,
            )
        ).first()
        return None if number is None else str(number)

    # ------------------------------------------------------------------ versions

    def log_model(
        self,
        name: str,
        model: object,
        *,
        signature: ModelSignature | None = None,
        feature_names: Sequence[str] | None = None,
        metrics: Mapping[str, float] | None = None,
        training_datasets: Sequence[str] = (),
        run_id: str | None = None,
        background: np.ndarray | None = None,
        description: str = "",
        trusted: bool = False,
    ) -> ModelVersion:
        """Save a fitted model as a new version, creating the model if it is new.

        The flavour is detected from the object (scikit-learn via skops, XGBoost and
        LightGBM native); anything else is stored as a pickle only with ``trusted=True``.
        The signature is inferred from the model unless given.

        Raises:
            InvalidError: The model cannot be saved safely and is not trusted, the signature
                cannot be inferred, or metadata is malformed (naming the field).
        """
        check_model_name(name)
        try:
            flavor = detect_flavor(model)
        except InvalidError:
            if not trusted:
                raise
            flavor = ModelFlavor.PICKLE
        if signature is None:
            signature = infer_signature(model, flavor, feature_names)
        data = serialize(model, flavor)
        return self._register(
            name,
            data,
            flavor=flavor,
            signature=signature,
            metrics=metrics,
            training_datasets=training_datasets,
            run_id=run_id,
            background=background,
            description=description,
            trusted=trusted,
            create_model=True,
            model=model,
        )

    def register_version(
        self,
        name: str,
        artifact: bytes | BinaryIO,
        *,
        flavor: ModelFlavor,
        signature: ModelSignature,
        metrics: Mapping[str, float] | None = None,
        training_datasets: Sequence[str] = (),
        run_id: str | None = None,
        background: np.ndarray | None = None,
        description: str = "",
        trusted: bool = False,
        expected_hash: str | None = None,
    ) -> ModelVersion:
        """Register an uploaded artifact as a new version of an existing model.

        The artifact is read back as its flavour before anything is stored, so a version
        always holds a loadable model. Pickle is refused unless ``trusted=True``.

        Args:
            name: The model (create it first).
            artifact: The serialised model, as bytes or a binary file.
            flavor: How it is serialised.
            signature: What it takes and returns.
            metrics: Evaluation metrics.
            training_datasets: Dataset versions (``name@vN``) it was trained on.
            run_id: The training run that produced it.
            background: Reference rows ``(n, features)`` for explanations.
            description: Free text.
            trusted: The uploader vouches for the artifact (required for pickle).
            expected_hash: BLAKE3 the uploader computed; a different artifact is refused.

        Raises:
            NotFoundError: No such model.
            InvalidError: Pickle without ``trusted`` (naming ``trusted``), an artifact that
                is not a model of its flavour, a hash mismatch, or malformed metadata.
        """
        try:
            flavor = ModelFlavor(flavor)
        except ValueError:
            raise InvalidError(
                f"flavor must be one of {', '.join(f.value for f in ModelFlavor)}. "
                f"Got {flavor!r} instead.",
                field="flavor",
            ) from None
        if flavor is ModelFlavor.PICKLE and not trusted:
            raise InvalidError(
                "pickle artifacts run code when loaded; they are accepted only when the upload "
                "is marked trusted (trusted=True)",
                field="trusted",
            )
        data = artifact if isinstance(artifact, bytes | bytearray) else artifact.read()
        data = bytes(data)
        if expected_hash is not None and content_hash(data) != expected_hash.lower():
            raise InvalidError(
                f"the artifact's BLAKE3 digest is {content_hash(data)}, not the declared "
                f"{expected_hash}; nothing was registered",
                field="artifact_blake3",
            )
        return self._register(
            name,
            data,
            flavor=flavor,
            signature=signature,
            metrics=metrics,
            training_datasets=training_datasets,
            run_id=run_id,
            background=background,
            description=description,
            trusted=trusted,
            create_model=False,
            model=None,
        )

    def _register(
        self,
        name: str,
        data: bytes,
        *,
        flavor: ModelFlavor,
        signature: ModelSignature,
        metrics: Mapping[str, float] | None,
        training_datasets: Sequence[str],
        run_id: str | None,
        background: np.ndarray | None,
        description: str,
        trusted: bool,
        create_model: bool,
        model: object | None,
    ) -> ModelVersion:
        check_model_name(name)
        if not isinstance(signature, ModelSignature):
            raise InvalidError("signature must be a ModelSignature", field="signature")
        checked_metrics = check_metrics(metrics)
        datasets = check_dataset_refs(training_datasets)
        if not data:
            raise InvalidError("the artifact is empty", field="artifact")
        if model is None:
            model = deserialize(data, flavor)
        count = model_feature_count(model)
        if count is not None and count != len(signature.feature_names):
            raise InvalidError(
                f"the signature names {len(signature.feature_names)} features, but the model "
                f"takes {count}",
                field="signature.feature_names",
            )
        background_bytes = background_npy(background, len(signature.feature_names))
        digest = content_hash(data)
        if not self.store.exists(artifact_key(digest)):
            self.store.put(artifact_key(digest), data)
        background_digest = None
        if background_bytes is not None:
            background_digest = content_hash(background_bytes)
            self.store.put(background_key(background_digest), background_bytes)
        if create_model:
            # Its own transaction, so concurrent first registrations race on the insert only.
            with suppress(ConflictError):
                self.create_model(name)
        now = self.clock()
        with self.db.transaction(write=True) as session:
            owner = self._lock_model(session, name)
            owner.latest_version += 1
            owner.updated_at = now
            record = ModelVersionRecord(
                model_name=name,
                number=owner.latest_version,
                flavor=flavor.value,
                stage=ModelStage.NONE.value,
                signature=json.dumps(signature.to_dict(), sort_keys=True),
                artifact_hash=digest,
                artifact_size=len(data),
                background_hash=background_digest,
                metrics=json.dumps(checked_metrics, sort_keys=True),
                training_datasets=json.dumps(list(datasets)),
                run_id=run_id,
                description=description,
                trusted=trusted,
                created_at=now,
                stage_changed_at=now,
            )
            session.add(record)
            session.flush()
            version = version_from_record(record)
            record_event(
                session,
                Event(
                    type="registry.model_version.registered",
                    source=EVENT_SOURCE,
                    subject=version.ref,
                    data={
                        "model_name": name,
                        "version": version.version,
                        "flavor": flavor.value,
                        "artifact_hash": digest,
                        "run_id": run_id,
                        "training_datasets": list(datasets),
                    },
                ),
            )
        return version

    def get_version(self, name: str, version: str) -> ModelVersion:
        """One version of a model.

        Raises:
            NotFoundError: No such model or version.
        """
        with self.db.transaction() as session:
            return version_from_record(self._version_record(session, name, version))

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first.

        Raises:
            NotFoundError: No such model.
        """
        with self.db.transaction() as session:
            if session.get(ModelRecord, name) is None:
                raise NotFoundError(f"no model named {name!r}")
            records = session.scalars(
                select(ModelVersionRecord)
                .where(ModelVersionRecord.model_name == name)
                .order_by(ModelVersionRecord.number)
            )
            return [version_from_record(r) for r in records]

    def production_version(self, name: str) -> ModelVersion:
        """The model's production version.

        Raises:
            NotFoundError: No such model, or it has no production version.
        """
        with self.db.transaction() as session:
            record = session.scalars(
                select(ModelVersionRecord).where(
                    ModelVersionRecord.model_name == name,
                    ModelVersionRecord.stage == ModelStage.PRODUCTION.value,
                )
            ).first()
            if record is None:
                if session.get(ModelRecord, name) is None:
                    raise NotFoundError(f"no model named {name!r}")
                raise NotFoundError(f"model {name!r} has no production version")
            return version_from_record(record)

    # ------------------------------------------------------------------ stages

    def transition(
        self, name: str, version: str, stage: ModelStage, *, reason: str = ""
    ) -> ModelVersion:
        """Move a version to ``stage``; to production, the previous one is archived.

        Idempotent: a version already in ``stage`` is returned unchanged, without an event.

        Raises:
            NotFoundError: No such model or version.
            ConflictError: The stage is ``none`` (no version goes back to it).
        """
        try:
            target = ModelStage(stage)
        except ValueError:
            raise InvalidError(
                f"stage must be one of {', '.join(s.value for s in ModelStage)}. "
                f"Got {stage!r} instead.",
                field="stage",
            ) from None
        with self.db.transaction(write=True) as session:
            updated, _ = self.apply_transition(session, name, version, target, reason=reason)
        return updated

    def promote(self, model_name: str, model_version: str, *, reason: str) -> None:
        """Make ``model_version`` the production version; the previous one is archived."""
        self.transition(model_name, model_version, ModelStage.PRODUCTION, reason=reason)

    def demote(self, model_name: str, model_version: str, *, reason: str) -> None:
        """Take ``model_version`` out of service: it is archived."""
        self.transition(model_name, model_version, ModelStage.ARCHIVED, reason=reason)

    def apply_transition(
        self, session: Session, name: str, version: str, target: ModelStage, *, reason: str
    ) -> tuple[ModelVersion, StageChange]:
        """Move a version within the caller's write transaction (event consumers use this).

        Returns:
            The version after the move, and the plan that was carried out.
        """
        owner = self._lock_model(session, name)
        record = self._version_record(session, name, version)
        production = tuple(
            str(n)
            for n in session.scalars(
                select(ModelVersionRecord.number).where(
                    ModelVersionRecord.model_name == name,
                    ModelVersionRecord.stage == ModelStage.PRODUCTION.value,
                )
            )
        )
        change = plan_transition(
            str(record.number), ModelStage(record.stage), target, production=production
        )
        if change.kind is TransitionKind.UNCHANGED:
            return version_from_record(record), change
        now = self.clock()
        for archived in change.archive:
            previous = self._version_record(session, name, archived)
            previous.stage = ModelStage.ARCHIVED.value
            previous.stage_changed_at = now
        # Archive first: the unique index on production rows is checked per statement.
        session.flush()
        record.stage = target.value
        record.stage_changed_at = now
        owner.updated_at = now
        session.flush()
        moved = version_from_record(record)
        record_event(
            session,
            Event(
                type=f"registry.model_version.{change.kind.value}",
                source=EVENT_SOURCE,
                subject=moved.ref,
                data={
                    "model_name": name,
                    "version": moved.version,
                    "from_stage": change.source.value,
                    "to_stage": change.target.value,
                    "archived_versions": list(change.archive),
                    "reason": reason,
                },
            ),
        )
        return moved, change

    # ------------------------------------------------------------------ artifacts

    def load_artifact(self, name: str, version: str) -> bytes:
        """The version's artifact, checked against its recorded BLAKE3 digest.

        Raises:
            NotFoundError: No such model or version.
            CorruptArtifactError: The stored bytes are missing or hash differently.
        """
        found = self.get_version(name, version)
        return self._read_verified(
            artifact_key(found.artifact_hash), found.artifact_hash, f"artifact of {found.ref}"
        )

    def load_background(self, found: ModelVersion) -> np.ndarray | None:
        """The version's background rows (read without pickle), checked, or None.

        Raises:
            CorruptArtifactError: The stored rows are missing or hash differently.
        """
        if found.background_hash is None:
            return None
        data = self._read_verified(
            background_key(found.background_hash),
            found.background_hash,
            f"background of {found.ref}",
        )
        array: np.ndarray = load_npy(data)
        return array

    def _read_verified(self, key: str, expected: str, subject: str) -> bytes:
        try:
            data = self.store.get(key)
        except NotFoundError:
            raise CorruptArtifactError(subject, expected, "none: the object is missing") from None
        return verify(data, expected, subject)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _lock_model(session: Session, name: str) -> ModelRecord:
        record = session.scalars(
            select(ModelRecord).where(ModelRecord.name == name).with_for_update()
        ).first()
        if record is None:
            raise NotFoundError(f"no model named {name!r}")
        return record

    @staticmethod
    def _version_record(session: Session, name: str, version: str) -> ModelVersionRecord:
        number = parse_version(version)
        record = session.get(ModelVersionRecord, (name, number))
        if record is None:
            if session.get(ModelRecord, name) is None:
                raise NotFoundError(f"no model named {name!r}")
            raise NotFoundError(f"model {name!r} has no version {version!r}")
        return record
