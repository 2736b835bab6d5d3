import pytest
import torch

from lowres_sdk import InputError
from lowres_sdk.training.backbones import ARCHS, build_model, count_mflops, count_params


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("size", [8, 16, 32])
def test_shapes_and_head_split(arch, size):
    torch.manual_seed(0)
    m = build_model(arch, 7, input_size=size, width=0.5 if arch == "resnet18" else 1.0).eval()
    x = torch.randn(3, 3, size, size)
    f = m.forward_features(x)
    assert f.shape == (3, m.num_features)
    logits = m(x)
    assert logits.shape == (3, 7)
    assert torch.allclose(logits, m.forward_head(f))


def test_native_variants_cost_fewer_flops_than_upsampling():
    full = count_mflops(build_model("resnet20", 10, 32), 32)
    assert 80 < full < 83  # ResNet-20 is 41 M multiply-adds
    assert count_mflops(build_model("resnet20", 10, 16), 16) == pytest.approx(full / 4, rel=0.02)
    # At 8 px the last stage keeps stride 1 (4x4 map), so it saves 8x, not 16x.
    assert count_mflops(build_model("resnet20", 10, 8), 8) < full / 7
    # ResNet-18 (paper 002) is 0.56 G multiply-adds at 32 px; ResNet-20 is under 1/10 of it.
    r18 = count_mflops(build_model("resnet18", 10, 32), 32)
    assert 1100 < r18 < 1120 and full < r18 / 10


def test_params_and_width():
    assert count_params(build_model("resnet20", 10)) == 272_474
    assert count_params(build_model("resnet20", 10, width=2.0)) > 3.5 * 272_474


def test_bad_arch_and_size():
    with pytest.raises(InputError, match="unknown arch"):
        build_model("vgg", 10)
    with pytest.raises(InputError, match="6n\\+2"):
        from lowres_sdk.training.backbones import cifar_resnet
        cifar_resnet(21, 10)
    with pytest.raises(InputError, match="input_size"):
        build_model("resnet20", 10, input_size=2)


def test_airnet_fits_the_student_budget_and_keeps_a_4x4_map():
    # issue 13's budget: <= 1/10 of ResNet-18's FLOPs at 32 px (111 MFLOPs); airnet at native 16 px is under it
    r18 = count_mflops(build_model("resnet18", 10, 32), 32)
    assert count_mflops(build_model("airnet", 10, 16), 16) < r18 / 10
    half = build_model("airnet", 12, 16, 0.5)
    assert [b.conv2.out_channels for b in half.blocks] == [32, 64, 128]
    assert count_params(half) < 350_000  # the shipped default stays under 2 MB (FP32 + INT8)
    # 16 px: two pools (16 -> 8 -> 4), the last block keeps 4x4; 32 px pools three times
    assert [isinstance(b.pool, torch.nn.MaxPool2d) for b in half.blocks] == [True, True, False]
    assert all(isinstance(b.pool, torch.nn.MaxPool2d) for b in build_model("airnet", 10, 32).blocks)


def test_airbench_is_airbench94s_net_within_the_budget():
    r18 = count_mflops(build_model("resnet18", 10, 32), 32)
    m = build_model("airbench", 10, 16)
    assert count_mflops(m, 16) < r18 / 10
    assert [b.conv2.out_channels for b in m.blocks] == [64, 256, 256]
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    assert frozen and all(n.endswith("weight") and ("bn" in n or n.startswith("stem.1")) for n in frozen)  # BN scales only
    conv = m.blocks[1].conv1.weight  # 64 -> 256: its first 64 filters start as the identity
    assert torch.equal(conv[:64, :, 1, 1], torch.eye(64)) and conv[:64, :, 0].abs().sum() == 0
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(m.eval()(x), m.fc(m.forward_features(x)) / 9)
    assert isinstance(m.stem[2], torch.nn.GELU)


def test_recipe_offers_exactly_the_built_archs():
    import dataclasses

    from lowres_sdk.training.recipe import Recipe

    arch = next(f for f in dataclasses.fields(Recipe) if f.name == "arch")
    assert tuple(arch.metadata["choices"]) == tuple(ARCHS)


@pytest.mark.parametrize("arch, first_conv_sides, mflops", [("airnet-prepool", [16, 8, 4], (25, 26)),
                                                             ("airnet-prepool1", [16, 16, 8], (39, 41))])
def test_pool_first_airnets_take_airnets_weights_and_pool_before_their_blocks_first_convolution(arch, first_conv_sides, mflops):
    air, pre = build_model("airnet", 12, 32, 0.5), build_model(arch, 12, 32, 0.5)
    pre.load_state_dict(air.state_dict())  # strict: the same tensors, so an airnet run can start it
    assert mflops[0] < count_mflops(pre, 32) < mflops[1] and 53 < count_mflops(air, 32) < 55
    seen = {}
    for name, m in (("airnet", air), (arch, pre)):
        for i, block in enumerate(m.blocks):
            block.conv1.register_forward_pre_hook(lambda mod, inp, key=(name, i): seen.update({key: inp[0].shape[-1]}))
        assert m.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 12)
    assert [seen["airnet", i] for i in range(3)] == [32, 16, 8]
    assert [seen[arch, i] for i in range(3)] == first_conv_sides
