"""DiffAugment (ganframe.augment, ``train.augment``): the policies keep shapes, let gradients
through, draw per sample from torch's seeded generator, and reach every critic input, real
and fake, through StepContext.score; bad policy names are clear errors. Exact resume with
augmentation on is checked on images in the dcgan plugin's tests (test_dcgan_cond.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganframe import api
from ganframe.augment import POLICIES, DiffAugment, build_augment, check_policy
from ganframe.builtin.losses import Hinge, NonSaturating
from ganframe.components import LatentGenerator, StepContext
from ganframe.errors import UserError

ALL = "color,translation,cutout"


def test_policy_names_are_checked():
    assert check_policy(" Color , cutout") == ("color", "cutout")
    assert check_policy("none") == check_policy("") == ()
    assert build_augment(None) is None and build_augment("none") is None
    with pytest.raises(ValueError, match="unknown DiffAugment policy 'colour'.*color, "
                       "translation, cutout"):
        check_policy("colour,cutout")
    with pytest.raises(ValueError, match="twice"):
        check_policy("cutout,cutout")


def test_a_recipe_with_a_bad_policy_is_a_user_error():
    with pytest.raises(UserError, match="colour"):
        api.load_recipe("gaussian-ring", overrides=['train.augment="colour"'])
    recipe = api.load_recipe("gaussian-ring", overrides=['train.augment="Cutout, color"'])
    assert recipe.recipe.train.augment == "cutout,color"


@pytest.mark.parametrize("policy", [*POLICIES, ALL])
@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (3, 3, 32, 32)])
def test_shapes_gradients_and_seeding(policy, shape):
    aug = DiffAugment(policy)
    torch.manual_seed(0)
    x = torch.rand(shape, requires_grad=True)
    torch.manual_seed(1)
    y = aug(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert not torch.equal(y, x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    torch.manual_seed(1)
    assert torch.equal(aug(x), y)  # the global seed decides everything


def test_each_sample_draws_its_own_parameters():
    x = torch.rand(1, 1, 16, 16).expand(8, 1, 16, 16).contiguous()
    for policy in POLICIES:
        torch.manual_seed(0)
        y = DiffAugment(policy)(x).flatten(1)
        assert len({tuple(row.tolist()) for row in y}) > 1, policy


def test_translation_and_cutout_do_what_they_say():
    ones = torch.ones(64, 1, 16, 16)
    torch.manual_seed(0)
    moved = DiffAugment("translation")(ones)
    zero_rows = (moved == 0).all(dim=3).sum(dim=(1, 2))  # rows shifted in at the edges
    assert zero_rows.max() <= 2 and zero_rows.max() >= 1  # at most 1/8 of 16 = 2 rows
    cut = DiffAugment("cutout")(ones)
    zeros = (cut == 0).sum(dim=(1, 2, 3))
    assert zeros.max() == 64 and zeros.min() > 0  # an 8x8 square, clipped at the border


def test_non_images_are_refused():
    with pytest.raises(UserError, match="augments images"):
        DiffAugment("cutout")(torch.randn(4, 2))


class _Gen(LatentGenerator):
    def __init__(self) -> None:
        super().__init__()
        self.latent_dim = 4
        self.net = nn.Linear(4, 16)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(z)).view(-1, 1, 4, 4)


class _RecordingCritic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 1)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.lin(x.flatten(1)).view(-1)


@pytest.mark.parametrize("objective", [NonSaturating, Hinge])
def test_the_critic_sees_augmented_real_and_fake(objective):
    calls: list[torch.Tensor] = []

    def spy(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.detach().clone())
        return DiffAugment("translation,cutout")(x)

    torch.manual_seed(0)
    gen, critic = _Gen(), _RecordingCritic()
    ctx = StepContext(gen, critic, torch.device("cpu"), augment=spy)
    real = torch.rand(6, 1, 4, 4) * 2 - 1
    obj = objective(None)
    obj.critic_loss(ctx, real)
    assert len(calls) == len(critic.seen) == 2  # real and fake, each augmented
    assert torch.equal(calls[0], real)
    assert all(not torch.equal(c, s) for c, s in zip(calls, critic.seen, strict=True))
    calls.clear()
    out = obj.generator_loss(ctx, real)
    assert len(calls) == 1
    out.loss.backward()  # the generator's gradient passes through the augmentation
    assert gen.net.weight.grad is not None and gen.net.weight.grad.abs().sum() > 0


def test_augment_on_point_data_is_refused(tmp_path):
    recipe = api.load_recipe("gaussian-ring", overrides=[
        'train.augment="color"', "train.steps=2", "train.sample_every=0", "metrics=[]"])
    with pytest.raises(UserError, match="augments images"):
        api.train(recipe, out=tmp_path / "r", progress=False)
