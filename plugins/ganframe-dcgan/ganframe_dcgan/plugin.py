"""Entry point of the ganframe-dcgan plugin: configs and lazy registrations only.

This module is imported whenever ganframe lists or validates plugins, so it must stay cheap:
it imports pydantic, the standard library and :data:`ganframe.hookimpl`, nothing else. Each
factory is a ``"module:attr"`` string that the host resolves only when a recipe uses it, and
that is the first moment torch gets imported.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ganframe import hookimpl
from ganframe.cards import register_cards

GANFRAME_PLUGIN_API = 3  # 3: register_pretrained

ImageSize = Literal[28, 32, 64]
Channels = Literal[1, 3]


class MnistConfig(BaseModel):
    """Options of the ``mnist`` dataset."""

    model_config = ConfigDict(extra="forbid")

    split: Literal["train", "test"] = Field("train", description="60,000 train or 10,000 test")
    root: Path | None = Field(
        None,
        description="folder holding the four IDX files (searched first; downloads go here); "
        "a relative folder is looked up in $GANFRAME_DATA, the recipe's folder, then the "
        "working directory (a shipped recipe's run records it resolved)",
    )
    classes: list[int] | None = Field(
        None, description="keep only these digits, e.g. [0, 1]; default all ten"
    )
    limit: int | None = Field(None, gt=0, description="keep at most this many images")
    download: bool = Field(True, description="download missing files from the public mirrors")

    @field_validator("classes")
    @classmethod
    def _digits(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("classes must list at least one digit (or be left out for all)")
        bad = [c for c in value if not 0 <= c <= 9]
        if bad:
            raise ValueError(f"classes must be digits 0-9, got {bad}")
        if len(set(value)) != len(value):
            raise ValueError(f"classes lists a digit twice: {value}")
        return sorted(value)


class DcganGeneratorConfig(BaseModel):
    """Options of the ``dcgan`` generator."""

    model_config = ConfigDict(extra="forbid")

    latent_dim: int = Field(100, gt=0, description="size of the standard-normal latent vector")
    base_width: int = Field(
        64, gt=0, description="channels of the last hidden layer; doubles towards the input"
    )
    image_size: ImageSize | None = Field(
        None, description="output height = width; default: the dataset's (28 for MNIST)"
    )
    channels: Channels | None = Field(
        None, description="output channels; default: the dataset's (1 for MNIST)"
    )
    conditional: bool = Field(
        False,
        description="class-conditional: conditional batch norm (per-class scale and shift) "
        "in every layer; needs labelled data (its num_classes)",
    )


class DcganCriticConfig(BaseModel):
    """Options of the ``dcgan`` critic."""

    model_config = ConfigDict(extra="forbid")

    base_width: int = Field(64, gt=0, description="channels of the first conv; doubles after")
    norm: Literal["none", "batch", "spectral"] = Field(
        "batch",
        description="normalisation of the hidden convs; use 'none' or 'spectral' with "
        "gradient penalties (batch norm mixes samples)",
    )
    image_size: ImageSize | None = Field(None, description="input size; default: the dataset's")
    channels: Channels | None = Field(None, description="input channels; default: the dataset's")
    conditional: bool = Field(
        False,
        description="projection critic (Miyato & Koyama 2018): adds <embed(label), features> "
        "to the score; needs labelled data",
    )
    aux_classifier: bool = Field(
        False,
        description="add a linear class head on the features, for the AC-GAN loss option "
        "([loss] aux_classifier = weight); needs labelled data",
    )


class MnistFidConfig(BaseModel):
    """Options of the ``mnist-fid`` metric."""

    model_config = ConfigDict(extra="forbid")

    n_samples: int = Field(2000, gt=1, description="generated images to score")
    batch_size: int = Field(500, gt=0, description="images per generator/classifier call")
    kid_subsets: int = Field(10, gt=0, description="random subsets averaged for KID")
    kid_subset_size: int = Field(
        1000, gt=1, description="images per KID subset (capped at the sample counts)"
    )
    coverage_share: float = Field(
        0.25,
        gt=0,
        le=1,
        description="a class counts as covered when it receives at least this fraction of "
        "its fair share (n_samples / 10) of predictions",
    )
    root: Path | None = Field(
        None, description="folder with the MNIST test files; default: the usual search order"
    )
    download: bool = Field(True, description="download the test split if it is missing")


@hookimpl
def register_datasets(register):  # type: ignore[no-untyped-def]
    register(
        "mnist",
        "ganframe_dcgan.mnist:build_mnist",
        config=MnistConfig,
        summary="MNIST handwritten digits, 1x28x28 in [-1, 1] (downloaded when missing)",
    )


@hookimpl
def register_generators(register):  # type: ignore[no-untyped-def]
    register(
        "dcgan",
        "ganframe_dcgan.models:build_generator",
        config=DcganGeneratorConfig,
        summary="DCGAN generator: latent -> projection -> transposed convs, 28/32/64 px",
    )


@hookimpl
def register_critics(register):  # type: ignore[no-untyped-def]
    register(
        "dcgan",
        "ganframe_dcgan.models:build_critic",
        config=DcganCriticConfig,
        summary="DCGAN critic: strided convs + LeakyReLU(0.2), optional batch/spectral norm",
    )


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    register(
        "mnist-fid",
        "ganframe_dcgan.metric:build_metric",
        config=MnistFidConfig,
        summary="FID/KID/IS/class coverage in the features of a shipped MNIST classifier",
    )


# Fallback text only: `ganframe recipes` shows each recipe's own `description` and the length
# read from the file (ganframe.recipe_facts), so no step count is written here to go stale.
RECIPES = {
    "dcgan-mnist": "DCGAN on MNIST, non-saturating loss",
    "wgan-gp-mnist": "WGAN-GP on MNIST, n_critic 5",
    "dcgan-mnist-cond": "Class-conditional DCGAN on MNIST (conditional batch norm, projection "
    "critic)",
}


@hookimpl
def register_recipes(register):  # type: ignore[no-untyped-def]
    folder = files("ganframe_dcgan") / "recipes"
    for name, summary in RECIPES.items():
        register(name, folder / f"{name}.toml", summary=summary)


@hookimpl
def register_pretrained(register):  # type: ignore[no-untyped-def]
    """The trained generators in ``pretrained/`` (see ``pretrained/cards.json`` and the
    model cards in the README): ``ganframe sample NAME`` right after installing."""
    register_cards(register, files("ganframe_dcgan") / "pretrained")
