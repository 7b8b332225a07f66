"""The metrics ``fid``, ``kid``, ``inception-score`` and ``precision-recall``: generated images
against a reference set, through the FID Inception-v3 (:mod:`ganframe.builtin.inception`),
with torchmetrics' statistics (:mod:`ganframe.builtin.image_scores`).

One class serves the four names; ``also`` adds the others' values computed from the same
Inception pass (a recipe wanting FID and KID lists ``fid`` with ``also = ["kid"]`` and pays for
one pass, not two). The reference is the recipe's own data (or another ``split`` of it) or a
``folder`` of images; its statistics are cached (:mod:`ganframe.builtin.image_features`).
The weights are located when the metric is built, so a run without them stops before it
trains (or, with ``optional = true``, warns and trains on without the metric).
See docs/metrics.md for the protocol and how to compare with published numbers.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ganframe.errors import MetricUnavailable, UserError

METRICS_INSTALL = "pip install 'ganframe[metrics]'"
Stat = Literal["fid", "kid", "inception-score", "precision-recall"]
#: The statistics that compare with a reference set (the Inception Score does not).
NEEDS_REFERENCE = ("fid", "kid", "precision-recall")


class InceptionMetricConfig(BaseModel):
    """Options shared by ``fid``, ``kid``, ``inception-score`` and ``precision-recall``."""

    model_config = ConfigDict(extra="forbid")

    n_samples: int = Field(10_000, ge=2, le=1_000_000, description="Generated images per "
                           "evaluation: 10,000 for tracking a run, 50,000 to compare with "
                           "papers (FID is biased upwards at small counts).")
    split: str | None = Field(None, max_length=64, description="The reference: this split "
                              "of the recipe's dataset (e.g. 'test'); default the data the "
                              "run trains on.")
    folder: str | None = Field(None, max_length=4096, description="The reference: a folder "
                               "of image files instead of a dataset split.")
    reference_samples: int | None = Field(None, ge=2, le=10_000_000, description="Use the "
                                          "first N reference images only (default all).")
    batch_size: int = Field(50, ge=1, le=4096, description="Images per Inception batch.")
    device: str | None = Field(None, max_length=32, description="Where Inception runs "
                               "('cpu', 'cuda', 'cuda:1'); default the run's device.")
    weights: str | None = Field(None, max_length=4096, description="The FID Inception "
                                "weights file; default $GANFRAME_DATA/inception/, the user "
                                "cache, else downloaded once.")
    download: bool = Field(True, description="Download the weights when no copy is found.")
    cache: bool = Field(True, description="Cache the reference statistics in the user cache.")
    optional: bool = Field(False, description="Without the weights (offline): warn and train "
                           "on without this metric instead of stopping.")
    also: list[Stat] = Field(default_factory=list, description="Other statistics to report "
                             "from the same Inception pass (e.g. ['kid', 'precision-recall']).")
    kid_subsets: int = Field(100, ge=1, le=10_000, description="KID: random subsets.")
    kid_subset_size: int = Field(1000, ge=2, le=100_000, description="KID: images per "
                                 "subset (fewer when a side has fewer).")
    is_splits: int = Field(10, ge=1, le=100, description="Inception Score: parts.")
    k: int = Field(3, ge=1, le=100, description="Precision/recall: the k of the k-NN balls.")
    resize: int = Field(299, ge=75, le=1024, description="Inception's input size. 299 is the "
                        "protocol of every published number; smaller only for quick tests.")

    @model_validator(mode="after")
    def _valid(self) -> InceptionMetricConfig:
        # checked when the recipe is validated; find_spec imports nothing
        if importlib.util.find_spec("torchmetrics") is None:
            raise ValueError(f"the Inception metrics need the torchmetrics package, which is "
                             f"not installed: {METRICS_INSTALL}")
        if self.split is not None and self.folder is not None:
            raise ValueError("give the reference as a split or as a folder, not both")
        return self


class InceptionMetric:
    """Scores a generator's images with the statistics ``stats`` (see the module)."""

    def __init__(self, name: str, config: InceptionMetricConfig, ctx: Any = None) -> None:
        self.name = name
        self.config = config
        self.stats: list[str] = list(dict.fromkeys([name, *config.also]))
        self.ctx = ctx
        self.device = config.device or str(getattr(ctx, "device", "cpu"))
        self.unavailable: UserError | None = None
        self.weights: Path | None = None
        self._net: Any = None
        self._reference: Any = None
        try:
            from ganframe.builtin.inception import locate_weights

            self.weights = locate_weights(config.weights,
                                          data_root=getattr(ctx, "data_root", None),
                                          download=config.download)
        except UserError as exc:
            if not config.optional:
                raise
            self.unavailable = exc
            warnings.warn(f"metric {name!r} cannot run: {exc} It is optional: a training "
                          "run goes on without it.", MetricWarning, stacklevel=2)

    # -- parts built on first use ----------------------------------------------------------
    def network(self) -> Any:
        if self._net is None:
            from ganframe.builtin.inception import load_inception

            assert self.weights is not None
            self._net = load_inception(self.weights, self.device, self.config.resize)
        return self._net

    def reference(self) -> Any:
        """The reference statistics (cached on disk and for this object's life)."""
        if self._reference is None:
            from ganframe.builtin import image_features as feats
            from ganframe.builtin.inception import weights_id

            key, batches = reference_source(self.config, self.ctx)
            key.update(n=self.config.reference_samples, input=self.config.resize,
                       weights=weights_id(self.weights))
            self._reference = feats.reference(
                key, lambda: feats.embed(self.network(), batches(self.config.batch_size),
                                         self.device, self.config.reference_samples)[0],
                use_cache=self.config.cache)
        return self._reference

    # -- scoring -----------------------------------------------------------------------------
    def score(self, features: Any, logits: Any, seed: int = 0) -> dict[str, Any]:
        """Every value of ``self.stats`` for the generated features and logits."""
        from ganframe.builtin import image_scores as sc

        c, out = self.config, {}
        ref = self.reference() if any(s in NEEDS_REFERENCE for s in self.stats) else None
        for stat in self.stats:
            if stat == "fid":
                small = features.shape[0] <= features.shape[1]  # no square root needed
                out["fid"] = sc.fid(ref.mu, ref.sigma, ref.n, features,
                                    None if small else ref.sigma_sqrt())
            elif stat == "kid":
                out["kid"], out["kid_std"] = sc.kid(ref.features, features, c.kid_subsets,
                                                    c.kid_subset_size, seed)
            elif stat == "inception-score":
                out["is"], out["is_std"] = sc.inception_score(logits, c.is_splits, seed)
            else:
                out.update(sc.precision_recall(ref.features, features, c.k))
        out["n_samples"] = int(features.shape[0])
        if ref is not None:
            out["n_reference"] = ref.n
        return out

    def score_images(self, batches: Any, seed: int = 0) -> dict[str, Any]:
        """Score the images ``batches`` yields (uint8 or [-1, 1] floats)."""
        from ganframe.builtin.image_features import embed

        self._check()
        features, logits = embed(self.network(), batches, self.device)
        return self.score(features, logits, seed)

    def evaluate(self, generator: Any, dataset: Any, ctx: Any) -> dict[str, Any]:
        """Draw ``n_samples`` images (seeded, eval mode) and score them."""
        import torch

        from ganframe.builtin.image_features import generated_batches

        self._check()
        n = getattr(ctx, "n_samples", None) or self.config.n_samples
        with torch.no_grad():
            batches = generated_batches(generator, n, self.config.batch_size, ctx.device,
                                        ctx.seed)
            return self.score_images(batches, ctx.seed)

    def _check(self) -> None:
        if self.unavailable is not None:
            raise MetricUnavailable(f"metric {self.name!r}: {self.unavailable}")


class MetricWarning(UserWarning):
    """An optional metric cannot run (its weights are missing); training goes on."""


def reference_source(config: InceptionMetricConfig, ctx: Any) -> tuple[dict[str, Any], Any]:
    """(cache key naming the reference, ``batches(batch_size)`` of its images)."""
    from ganframe.builtin import image_features as feats
    from ganframe.components import resolve_data_path

    if config.folder is not None:
        folder = resolve_data_path(config.folder, ctx, "metrics.folder", must_exist=True)
        files = feats.folder_files(folder)
        key = {"source": f"folder:{folder}", "files": feats.folder_key(files)}
        return key, lambda b: feats.folder_batches(files, b)
    data_config = getattr(ctx, "data_config", None)
    build = getattr(ctx, "build_data", None)
    if data_config is None or build is None:
        raise UserError("the Inception metric's reference is the recipe's dataset, but no "
                        "dataset is known here; give a reference folder (folder = ...).")
    if config.split is not None:
        if "split" not in type(data_config).model_fields:
            raise UserError(f"metric option split = {config.split!r}: the recipe's dataset "
                            "has no splits; give a reference folder instead.")
        data_config = type(data_config).model_validate(
            {**data_config.model_dump(), "split": config.split})
    kind = f"{type(data_config).__module__}.{type(data_config).__qualname__}"
    key = {"source": f"dataset:{kind}", "config": data_config.model_dump(mode="json")}
    return key, lambda b: feats.dataset_batches(build(data_config), b)


def factory(name: str) -> Any:
    """The factory of metric ``name`` (``register_metrics`` takes one per name)."""

    def build(config: InceptionMetricConfig, ctx: Any) -> InceptionMetric:
        return InceptionMetric(name, config, ctx)

    build.__name__ = f"build_{name.replace('-', '_')}"
    return build


build_fid = factory("fid")
build_kid = factory("kid")
build_inception_score = factory("inception-score")
build_precision_recall = factory("precision-recall")
