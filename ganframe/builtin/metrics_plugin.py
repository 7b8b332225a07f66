"""Registers the core's Inception metrics (``fid``, ``kid``, ``inception-score``,
``precision-recall``) and the ``ganframe fid`` command, lazily (strings only: nothing here
imports torch or torchmetrics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ganframe.hookspecs import hookimpl

_CONFIG = "ganframe.builtin.image_metrics:InceptionMetricConfig"
_EXTRA = " (pip install 'ganframe[metrics]')"


@hookimpl
def register_metrics(register: Callable[..., Any]) -> None:
    register("fid", "ganframe.builtin.image_metrics:build_fid", config=_CONFIG,
             summary="Fréchet Inception Distance to the recipe's data, a split or a folder, "
             "standard FID Inception-v3, torchmetrics' statistics" + _EXTRA + ".")
    register("kid", "ganframe.builtin.image_metrics:build_kid", config=_CONFIG,
             summary="Kernel Inception Distance (unbiased at small sample counts), mean and "
             "std over subsets" + _EXTRA + ".")
    register("inception-score", "ganframe.builtin.image_metrics:build_inception_score",
             config=_CONFIG, summary="Inception Score of the generated images, mean and std "
             "over splits" + _EXTRA + ".")
    register("precision-recall", "ganframe.builtin.image_metrics:build_precision_recall",
             config=_CONFIG, summary="Improved precision/recall (k-NN manifolds in Inception "
             "features), with density and coverage" + _EXTRA + ".")


@hookimpl
def register_commands(register: Callable[..., Any]) -> None:
    register("fid", "ganframe.builtin.fid_command:fid",
             summary="FID, KID, IS and precision/recall between two image sets: folders, "
             "dataset splits or a checkpoint's samples" + _EXTRA + ".")
