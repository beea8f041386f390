"""Model registry: immutable model versions, one active, activate/rollback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event, inspect, select, update

from core.accounts import require
from core.accounts.audit import add_audit
from core.labels.catalog import MAX_RECORD_ID, is_record_id, parse_record_id
from core.workspace import Workspace
from db.models import ModelVersion

# The one column a version may change after it is stored: which version is active.
MUTABLE_COLUMNS = frozenset({"is_active"})


class ImmutableVersionError(ValueError):
    """A stored model version was about to be changed."""


@event.listens_for(ModelVersion, "before_update")
def _refuse_changes(_mapper, _connection, target: ModelVersion) -> None:
    """Versions are records of what was trained: train a new one instead of editing one."""
    state = inspect(target)
    changed = sorted(
        attr.key
        for attr in state.attrs
        if attr.key not in MUTABLE_COLUMNS and attr.history.has_changes()
    )
    if changed:
        raise ImmutableVersionError(
            f"model version {target.id} is immutable (tried to change {', '.join(changed)}); "
            "train a new version instead"
        )


@dataclass(frozen=True)
class VersionInfo:
    id: int
    label: str
    arch: str
    encoder: str
    image_size: int
    settings: dict
    data_snapshot: dict
    history: list
    metrics: dict
    checkpoint_path: str
    parent_version_id: int | None
    device: str
    duration_s: float
    is_active: bool
    created_by: str | None
    created_at: datetime

    @property
    def val_dice(self) -> float | None:
        return self.metrics.get("dice")

    def summary(self) -> dict:
        return {
            "id": self.id,
            "label": self.label,
            "arch": self.arch,
            "encoder": self.encoder,
            "size": self.image_size,
            "active": self.is_active,
            "val_dice": self.metrics.get("dice"),
            "val_iou": self.metrics.get("iou"),
            "n_train": self.data_snapshot.get("n_train"),
            "n_val": self.data_snapshot.get("n_val"),
            "device": self.device,
            "duration_s": round(self.duration_s, 1),
            "created_at": self.created_at.isoformat(),
            "parent_version_id": self.parent_version_id,
        }


def _info(v: ModelVersion) -> VersionInfo:
    return VersionInfo(
        id=v.id,
        label=v.label,
        arch=v.arch,
        encoder=v.encoder,
        image_size=v.image_size,
        settings=dict(v.settings),
        data_snapshot=dict(v.data_snapshot),
        history=list(v.history),
        metrics=dict(v.metrics),
        checkpoint_path=v.checkpoint_path,
        parent_version_id=v.parent_version_id,
        device=v.device,
        duration_s=v.duration_s,
        is_active=v.is_active,
        created_by=v.created_by,
        created_at=v.created_at,
    )


def list_versions(ws: Workspace) -> list[VersionInfo]:
    with ws.sessions() as s:
        return [_info(v) for v in s.scalars(select(ModelVersion).order_by(ModelVersion.id.desc()))]


def _version_id(ref: int | str) -> int:
    """The version id a reference names; LookupError with the valid form when it names none
    (text that is not ASCII digits, a negative number, or one no database id can hold)."""
    vid = ref if is_record_id(ref) else None
    if isinstance(ref, str):
        vid = parse_record_id(ref)
    if vid is None:
        raise LookupError(
            f"model {str(ref)[:40]!r} is neither a version id nor 'active' (version ids are "
            f"whole numbers from 1 to {MAX_RECORD_ID:,}; `pneumolab models` lists them)"
        )
    return vid


def get_version(ws: Workspace, ref: int | str) -> VersionInfo:
    """A version by id (an int or its digits), or "active". Raises LookupError with what to
    do."""
    vid = None if ref == "active" else _version_id(ref)
    with ws.sessions() as s:
        if vid is None:
            v = s.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))
            if v is None:
                raise LookupError("no model version is active; train one or activate a version")
            return _info(v)
        v = s.get(ModelVersion, vid)
        if v is None:
            raise LookupError(f"model version {vid} does not exist; `pneumolab models` lists them")
        return _info(v)


def active_version(ws: Workspace) -> VersionInfo | None:
    try:
        return get_version(ws, "active")
    except LookupError:
        return None


def activate(ws: Workspace, version_id: int, *, actor: str | None = None) -> VersionInfo:
    """Make one version active (rollback is activating an older one). `actor` is the account
    doing it: PermissionDenied unless it may activate; an audit row "activate"."""
    version_id = _version_id(version_id)
    require(ws, actor, "activate")
    with ws.sessions.begin() as s:
        v = s.get(ModelVersion, version_id)
        if v is None:
            raise LookupError(f"model version {version_id} does not exist")
        s.execute(update(ModelVersion).values(is_active=False))
        v.is_active = True
        s.flush()
        add_audit(s, actor, "activate", f"model version {version_id}")
        return _info(v)


def register_version(ws: Workspace, version: ModelVersion, activate_rule: str) -> VersionInfo:
    """Store a finished run; activate it per rule: never | always | if_better.

    if_better: a better validation Dice than the active version's. A fine-tune of the active
    version that measured its parent on its own validation images (metrics["parent_dice"])
    is compared with that: the same images, the same labels. Otherwise the active version's
    stored Dice is the bar. With no active version at all, the new one becomes active (there
    is nothing to protect).
    """
    with ws.sessions.begin() as s:
        current = s.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))
        new_dice = version.metrics.get("dice", 0.0)
        bar = current.metrics.get("dice", 0.0) if current is not None else 0.0
        if current is not None and version.parent_version_id == current.id:
            bar = version.metrics.get("parent_dice", bar)
        make_active = (
            current is None
            or activate_rule == "always"
            or (activate_rule == "if_better" and current.label == version.label and new_dice > bar)
        )
        if make_active:
            s.execute(update(ModelVersion).values(is_active=False))
        version.is_active = make_active
        s.add(version)
        s.flush()
        return _info(version)
