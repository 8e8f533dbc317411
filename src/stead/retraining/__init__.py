"""The closed loop: gates, triggers, the pipeline and the controller (layer: retraining)."""

from __future__ import annotations
