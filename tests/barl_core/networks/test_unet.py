"""UNet3D / BiBranchNet: shapes per scale, independent branches, size checks, AMP, EMA."""

from __future__ import annotations

import pytest
import torch

from barl_core.errors import BarlError
from barl_core.networks.unet import (
    BiBranchNet,
    InputSizeError,
    NetworkConfig,
    NetworkConfigError,
    UNet3D,
    count_parameters,
    ema_update,
    required_divisor,
)

TINY = NetworkConfig(in_channels=1, num_classes=3, base_channels=4, depth=4, proj_dim=8)


@pytest.fixture
def x() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(2, 1, 16, 16, 16)


@pytest.mark.parametrize(
    ("depth", "proj_dim", "feature_scale", "shape"),
    [(4, 8, 2, (16, 16, 16)), (3, 0, 2, (8, 16, 12)), (2, 5, 1, (4, 6, 8))],
)
def test_output_shapes_per_scale_and_features(depth, proj_dim, feature_scale, shape):
    cfg = NetworkConfig(
        num_classes=3, base_channels=4, depth=depth, proj_dim=proj_dim, feature_scale=feature_scale
    )
    out = UNet3D(cfg)(torch.randn(2, 1, *shape))
    assert len(out.logits) == depth
    for logits in out.logits:
        assert logits.shape == (2, 3, *shape)
    feat_channels = proj_dim if proj_dim else 4
    assert cfg.feature_channels == feat_channels
    assert out.features.shape == (2, feat_channels, *(s // feature_scale for s in shape))
    assert out.features.dtype == torch.float32


def test_features_are_unit_norm_per_voxel_at_any_scale(x):
    for scale in (1, 2):
        cfg = NetworkConfig(num_classes=2, base_channels=4, depth=3, proj_dim=6, feature_scale=scale)
        feats = UNet3D(cfg)(x).features.detach()
        # pooled before the projection, normalised last: unit vectors at feature resolution too
        torch.testing.assert_close(feats.norm(dim=1), torch.ones_like(feats[:, 0]))


def test_coarse_heads_differ_and_cheap_path_matches_finest(x):
    net = UNet3D(TINY).eval()
    with torch.no_grad():
        full = net(x)
        finest = net.forward_logits(x)
        lean = net(x, deep_supervision=False, return_features=False)
    assert lean.features is None and len(lean.logits) == 1
    torch.testing.assert_close(finest, full.logits[-1])
    torch.testing.assert_close(lean.logits[0], full.logits[-1])
    # Each scale has its own head: the coarse predictions are not copies of the finest.
    assert not torch.allclose(full.logits[0], full.logits[-1])

    # Coarse logits are smooth upsamplings: the 1/8 map varies less between neighbours.
    def roughness(t):
        return (t[..., 1:] - t[..., :-1]).abs().mean()

    assert roughness(full.logits[0]) < roughness(full.logits[-1])


def test_branches_are_independently_initialised(x):
    torch.manual_seed(1)
    net = BiBranchNet(TINY)
    pa = dict(net.branch_a.named_parameters())
    pb = dict(net.branch_b.named_parameters())
    assert pa.keys() == pb.keys()
    conv_names = [n for n, p in pa.items() if p.ndim == 5]
    assert all(not torch.equal(pa[n], pb[n]) for n in conv_names)
    out_a, out_b = net(x)
    assert not torch.allclose(out_a.logits[-1], out_b.logits[-1])

    shared = BiBranchNet(TINY, shared_init=True)
    sa, sb = shared.branch_a.state_dict(), shared.branch_b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_second_view_goes_to_branch_b_only(x):
    net = BiBranchNet(TINY, shared_init=True).eval()
    with torch.no_grad():
        a1, b1 = net(x)
        a2, b2 = net(x, x.flip(-1))
    torch.testing.assert_close(a1.logits[-1], a2.logits[-1])
    assert not torch.allclose(b1.logits[-1], b2.logits[-1])


@pytest.mark.parametrize("shape", [(12, 16, 16), (16, 16, 20), (16, 16, 4)])
def test_indivisible_size_raises_clear_error(shape):
    net = UNet3D(TINY)
    assert required_divisor(TINY) == 8
    with pytest.raises(InputSizeError, match="not divisible by 8") as info:
        net(torch.zeros(1, 1, *shape))
    assert isinstance(info.value, ValueError) and isinstance(info.value, BarlError)


def test_feature_scale_enters_required_divisor():
    cfg = NetworkConfig(base_channels=2, depth=1, proj_dim=0, feature_scale=4)
    assert required_divisor(cfg) == 4
    with pytest.raises(ValueError, match="divisible"):
        UNet3D(cfg)(torch.zeros(1, 1, 6, 8, 8))


def test_wrong_channels_or_rank_raise():
    net = UNet3D(TINY)
    with pytest.raises(InputSizeError, match="channel"):
        net(torch.zeros(1, 2, 8, 8, 8))
    with pytest.raises(InputSizeError, match="batch, channels"):
        net(torch.zeros(1, 8, 8, 8))


@pytest.mark.parametrize(
    "kwargs", [{"norm": "layer"}, {"depth": 0}, {"num_classes": 1}, {"dropout": 1.0}]
)
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(NetworkConfigError):
        NetworkConfig(**kwargs)


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_other_norms_and_dropout_run(norm, x):
    cfg = NetworkConfig(num_classes=2, base_channels=4, depth=3, proj_dim=4, norm=norm, dropout=0.1)
    out = UNet3D(cfg)(x)
    assert all(torch.isfinite(t).all() for t in out.logits)


def test_autocast_keeps_features_float32(x):
    net = BiBranchNet(TINY)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_a, _ = net(x)
    assert out_a.logits[-1].dtype == torch.bfloat16
    assert out_a.features.dtype == torch.float32
    assert torch.isfinite(out_a.features).all()


def test_count_parameters_and_ema_branch():
    single = count_parameters(UNet3D(TINY))
    net = BiBranchNet(TINY, ema_branch_a=True)
    assert count_parameters(net) == 2 * single
    assert count_parameters(net, trainable_only=True) == single
    sa, sb = net.branch_a.state_dict(), net.branch_b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_ema_update_interpolates():
    torch.manual_seed(0)
    student, teacher = UNet3D(TINY), UNet3D(TINY)
    before = [p.clone() for p in teacher.parameters()]
    ema_update(teacher, student, decay=0.75)
    for p_t, p_0, p_s in zip(teacher.parameters(), before, student.parameters(), strict=True):
        torch.testing.assert_close(p_t, 0.75 * p_0 + 0.25 * p_s)
    ema_update(teacher, student, decay=0.0)
    for p_t, p_s in zip(teacher.parameters(), student.parameters(), strict=True):
        torch.testing.assert_close(p_t, p_s)
