"""The learned local triage model (ticket type and priority from hashed TF-IDF + a linear model).

Public API, used by the local analyzer, `ticketing model train` and the learning side
(corrections, model registry, retraining): see `model` for the details.
"""

from ticketing.errors import ModelLoadError
from ticketing.triage.learned.features import VectoriserParams
from ticketing.triage.learned.model import (
    Example,
    Prediction,
    TrainedModel,
    default_files,
    default_model,
    evaluate,
    load,
    load_files,
    read_csv,
    save_files,
    train,
)

__all__ = [
    "Example",
    "ModelLoadError",
    "Prediction",
    "TrainedModel",
    "VectoriserParams",
    "default_files",
    "default_model",
    "evaluate",
    "load",
    "load_files",
    "read_csv",
    "save_files",
    "train",
]
