"""Review: one image under a model version (view), Grad-CAM on demand (explain), the review
worklist and its ordering strategies (worklist), the actions that append decisions (actions),
a version's image-level report (report) and the red-over-blue drawing (overlay)."""

from core.review.actions import (
    ReviewInfo,
    accept_prediction,
    adjudicate,
    prediction_shapes,
    reject_prediction,
    review_history,
    sign_off,
    start_correction,
)
from core.review.explain import gradcam_heatmap
from core.review.view import (
    ImageReview,
    load_review,
    read_probability,
    review_stamp,
    versions_with_predictions,
)
from core.review.worklist import ORDERINGS, ORDERS, Ordering, ReviewRow, order_rows, review_rows

__all__ = [
    "ORDERINGS",
    "ORDERS",
    "ImageReview",
    "Ordering",
    "ReviewInfo",
    "ReviewRow",
    "accept_prediction",
    "adjudicate",
    "gradcam_heatmap",
    "load_review",
    "order_rows",
    "prediction_shapes",
    "read_probability",
    "reject_prediction",
    "review_history",
    "review_rows",
    "review_stamp",
    "sign_off",
    "start_correction",
    "versions_with_predictions",
]
