"""Entry point of the ganframe-images plugin: configs and lazy registrations only.

Imported whenever ganframe lists or validates plugins, so it stays cheap: pydantic, the
standard library and :data:`ganframe.hookimpl`. Factories are ``"module:attr"`` strings the
host resolves when a recipe uses them; that is when torch, numpy and Pillow get imported.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ganframe import hookimpl

GANFRAME_PLUGIN_API = 2


class ImageFolderConfig(BaseModel):
    """Options of the ``image-folder`` dataset."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(
        description="folder of PNG/JPEG/WebP/BMP images; sub-folders that hold images are "
        "classes (labels, in name order), a folder without them is unconditional. A relative "
        "path is looked up in $GANFRAME_DATA, the recipe's folder, then the working directory"
    )
    size: int = Field(32, ge=4, le=1024,
                      description="square side in pixels: centre-crop, then resize")
    channels: Literal[1, 3] = Field(3, description="1 = grey, 3 = RGB")
    hflip: bool = Field(False, description="flip each training image left-right at random")
    skip_bad: bool = Field(
        False, description="skip unreadable, corrupt or too-small files and class folders "
        "without images (counted in the log) instead of stopping with an error")
    background: Literal["black", "white"] = Field(
        "black", description="colour that transparent pixels are composited over")
    min_size: int = Field(8, ge=1, description="images smaller than this on a side are bad")
    limit: int | None = Field(None, gt=0, description="use at most this many images")
    cache: bool = Field(
        True, description="keep the decoded images in one safetensors file in "
        "$GANFRAME_CACHE/images (~/.cache/ganframe/images), so a restart does not decode again")
    memory_mb: float = Field(
        4096, gt=0, description="decoded sets larger than this (N x channels x size^2 bytes) "
        "are not held in memory: each batch is decoded from the files when it is needed")
    workers: int = Field(0, ge=0, description="decoding threads; 0 = up to 8, one per CPU")


class CifarConfig(BaseModel):
    """Options of the ``cifar10`` and ``cifar100`` datasets."""

    model_config = ConfigDict(extra="forbid")

    split: Literal["train", "test"] = Field("train", description="50,000 train or 10,000 test")
    root: Path | None = Field(
        None, description="folder with the binary archive or its extracted files (searched "
        "first; downloads go here); default $GANFRAME_DATA/cifar10 (cifar100), then the "
        "download cache")
    download: bool = Field(True, description="download the binary archive when missing")
    hflip: bool = Field(False, description="flip each training image left-right at random")
    limit: int | None = Field(None, gt=0, description="use at most this many images")


class Cifar100Config(CifarConfig):
    """Options of the ``cifar100`` dataset."""

    labels: Literal["fine", "coarse"] = Field(
        "fine", description="the 100 fine classes or the 20 coarse superclasses")


ImageSize = Literal[8, 16, 32, 64, 128]  # 8 and 16: toy sizes for tests


class ResnetGeneratorConfig(BaseModel):
    """Options of the ``resnet`` generator."""

    model_config = ConfigDict(extra="forbid")

    latent_dim: int = Field(128, gt=0, description="size of the standard-normal latent vector")
    base_width: int = Field(
        64, gt=0, description="channel unit: 32 px blocks have 4x this (SNGAN: 256), 64/128 px "
        "follow BigGAN (16x at the 4x4 grid down to 1x or 2x)")
    conditional: bool = Field(
        False, description="class-conditional batch norm in every block (needs labelled data)")
    attention: int = Field(0, ge=0, description="resolution of a self-attention block, e.g. "
                           "16; 0 = none")
    spectral_norm: bool = Field(False, description="spectral norm on the generator's weights "
                                "too (BigGAN); SNGAN uses it in the critic only")
    image_size: ImageSize | None = Field(None, description="default: the dataset's")
    channels: Literal[1, 3] | None = Field(None, description="default: the dataset's")


class ResnetCriticConfig(BaseModel):
    """Options of the ``resnet`` critic."""

    model_config = ConfigDict(extra="forbid")

    base_width: int = Field(
        32, gt=0, description="channel unit: 32 px blocks have 4x this (SNGAN: 128), 64/128 px "
        "double from 1x per block (BigGAN)")
    conditional: bool = Field(
        False, description="add the projection term of Miyato & Koyama 2018 (needs labels)")
    attention: int = Field(0, ge=0, description="resolution of a self-attention block, e.g. "
                           "16; 0 = none")
    image_size: ImageSize | None = Field(None, description="default: the dataset's")
    channels: Literal[1, 3] | None = Field(None, description="default: the dataset's")


@hookimpl
def register_datasets(register):  # type: ignore[no-untyped-def]
    register("image-folder", "ganframe_images.folder:build_image_folder",
             config=ImageFolderConfig,
             summary="a folder of PNG/JPEG/WebP/BMP images (class sub-folders = labels), "
             "decoded once and cached")
    register("cifar10", "ganframe_images.cifar:build_cifar10", config=CifarConfig,
             summary="CIFAR-10, 3x32x32 in [-1, 1], 10 classes (binary archive, downloaded "
             "when missing)")
    register("cifar100", "ganframe_images.cifar:build_cifar100", config=Cifar100Config,
             summary="CIFAR-100, 3x32x32 in [-1, 1], 100 fine or 20 coarse classes (binary "
             "archive, downloaded when missing)")


@hookimpl
def register_generators(register):  # type: ignore[no-untyped-def]
    register("resnet", "ganframe_images.resnet:build_generator", config=ResnetGeneratorConfig,
             summary="ResNet generator (SNGAN/BigGAN blocks), 32/64/128 px, optional "
             "conditional batch norm and self-attention")


@hookimpl
def register_critics(register):  # type: ignore[no-untyped-def]
    register("resnet", "ganframe_images.resnet:build_critic", config=ResnetCriticConfig,
             summary="ResNet critic with spectral norm, 32/64/128 px, optional projection "
             "and self-attention")


RECIPES = {
    "sngan-cifar10": "SNGAN on CIFAR-10 (Miyato et al. 2018): ResNet, hinge loss, n_critic 5",
    "sngan-cifar10-cond": "conditional SNGAN on CIFAR-10: conditional batch norm + projection",
}


@hookimpl
def register_recipes(register):  # type: ignore[no-untyped-def]
    folder = files("ganframe_images") / "recipes"
    for name, summary in RECIPES.items():
        register(name, folder / f"{name}.toml", summary=summary)
