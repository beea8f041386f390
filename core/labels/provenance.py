"""Where a revision came from, decided once when it is saved and stored with it.

drawn           a reader drew it (or edited their own drawing)
imported        read from a LabelMe / COCO file
accepted        a reader accepted model vN's prediction as it was
pre_annotation  model vN's prediction opened in the annotator, not yet corrected
corrected       a reader's save based on a model revision: the prediction, corrected

Model-made labels (accepted, pre_annotation) are not human truth until a reviewer adjudicates
them: the reference standard (core.labels.reference) leaves them out by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.vocab import MODEL_ORIGINS


@dataclass(frozen=True)
class Origin:
    origin: str  # a name of core.vocab.REVISION_ORIGINS
    model_version_id: int | None = None

    @property
    def from_model(self) -> bool:
        return self.origin in MODEL_ORIGINS

    def describe(self) -> str:
        """Plain words for the review and annotate pages ("accepted from model v3")."""
        v = f"model v{self.model_version_id}" if self.model_version_id is not None else "a model"
        return {
            "drawn": "drawn",
            "imported": "imported",
            "accepted": f"accepted from {v}",
            "pre_annotation": f"prediction of {v}, not yet corrected",
            "corrected": f"corrected from {v}",
        }[self.origin]


def origin_of_save(
    source: str,
    tool: str,
    model_version_id: int | None,
    base: Origin | None,
    claimed: str | None = None,
) -> Origin:
    """The origin of a new revision, from how it is saved and the revision it is based on
    (the same reader's revision the editor opened, None for a first save). `claimed` is the
    origin an imported file says its shapes had (our own export's "pneumolab" key): model
    output stays model output, so an export imported again cannot turn an accepted
    prediction into human truth (the model version is another workspace's: not kept)."""
    if source == "import":
        return Origin(claimed) if claimed in MODEL_ORIGINS else Origin("imported")
    if source == "model":
        return Origin(
            "pre_annotation" if tool == "pre-annotation" else "accepted", model_version_id
        )
    if base is not None and base.origin in (*MODEL_ORIGINS, "corrected"):
        return Origin("corrected", base.model_version_id)
    return Origin("drawn")
