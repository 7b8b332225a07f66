"""The built-in toy problem: a ring of Gaussians and small MLPs.

It exists so the core can be tried and tested end to end without any first-party plugin,
and it registers through the same hooks as every other plugin.
"""

from __future__ import annotations

from importlib.resources import files

from pydantic import BaseModel, ConfigDict, Field

from ganframe.hookspecs import hookimpl

#: Bounds that keep a valid config buildable: the points are drawn in memory at once (16
#: bytes each with their mode), widths and depths far beyond any toy model are refused by
#: validation rather than failing in an allocation, and seeds fit torch's generators.
MAX_POINTS = 10_000_000
MAX_MODES = 100_000
MAX_WIDTH = 65_536
MAX_LAYERS = 256
MAX_EVAL_SAMPLES = 1_000_000
MAX_SEED = 2**63 - 1


class RingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    modes: int = Field(8, ge=2, le=MAX_MODES, description="Number of Gaussians on the circle.")
    radius: float = Field(2.0, gt=0, le=1e6, description="Radius of the circle.")
    std: float = Field(0.05, gt=0, le=1e6, description="Standard deviation of each Gaussian.")
    size: int = Field(10_000, gt=0, le=MAX_POINTS,
                      description="Number of points drawn (fixed per seed).")
    seed: int = Field(0, ge=0, le=MAX_SEED,
                      description="Seed of the drawn points (independent of the run).")
    labels: bool = Field(
        False,
        description="Label each point with its mode (0 .. modes-1), for conditional models.",
    )


class MLPConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: int = Field(128, gt=0, le=MAX_WIDTH, description="Width of each hidden layer.")
    layers: int = Field(3, gt=0, le=MAX_LAYERS, description="Number of hidden layers.")
    latent_dim: int = Field(
        8, gt=0, le=MAX_WIDTH,
        description="Noise dimension (generator only; ignored by the critic).",
    )
    conditional: bool = Field(
        False,
        description="Generate a given class: a class embedding is concatenated to the noise "
        "(needs labelled data).",
    )


class CriticMLPConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: int = Field(128, gt=0, le=MAX_WIDTH, description="Width of each hidden layer.")
    layers: int = Field(3, gt=0, le=MAX_LAYERS, description="Number of hidden layers.")
    conditional: bool = Field(
        False,
        description="Score (sample, class) pairs: a class embedding is concatenated to the "
        "input (needs labelled data).",
    )


class RingMetricConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    n_samples: int = Field(2000, gt=0, le=MAX_EVAL_SAMPLES,
                           description="Generated points evaluated.")
    sigmas: float = Field(
        3.0, gt=0, description="A point is high-quality within this many std of a mode."
    )
    min_share: float = Field(
        0.2,
        gt=0,
        le=1,
        description="A mode is covered when it holds this share of its expected points.",
    )


class RingLabelMetricConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_samples: int = Field(
        2000, gt=0, le=MAX_EVAL_SAMPLES,
        description="Generated points evaluated, split evenly over the labels.",
    )


@hookimpl
def register_datasets(register):
    register(
        "gaussian-ring",
        "ganframe.builtin.toy:GaussianRing",
        config=RingConfig,
        summary="2-D mixture of Gaussians on a circle (toy problem)",
    )


@hookimpl
def register_generators(register):
    register(
        "mlp",
        "ganframe.builtin.toy:build_generator",
        config=MLPConfig,
        summary="Small MLP generator for vector data",
    )


@hookimpl
def register_critics(register):
    register(
        "mlp",
        "ganframe.builtin.toy:build_critic",
        config=CriticMLPConfig,
        summary="Small MLP critic for vector data",
    )


@hookimpl
def register_metrics(register):
    register(
        "ring-modes",
        "ganframe.builtin.toy:RingModes",
        config=RingMetricConfig,
        summary="Modes covered, high-quality share and sliced W1 distance on gaussian-ring",
    )
    register(
        "ring-label-accuracy",
        "ganframe.builtin.toy:RingLabelAccuracy",
        config=RingLabelMetricConfig,
        summary="Share of points drawn for label k nearest mode k (conditional gaussian-ring)",
    )


@hookimpl
def register_recipes(register):
    register(
        "gaussian-ring",
        files("ganframe.builtin") / "recipes" / "gaussian-ring.toml",
        summary="Toy GAN on 8 Gaussians on a ring (about a minute on a CPU)",
    )
    register(
        "gaussian-ring-cond",
        files("ganframe.builtin") / "recipes" / "gaussian-ring-cond.toml",
        summary="Class-conditional toy GAN: the label picks the mode of the ring",
    )
