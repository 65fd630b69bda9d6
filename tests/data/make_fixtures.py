#!/usr/bin/env python3
"""Writes the model fixtures of tests/test_models_{cnn,vit}.cpp into tests/data/models/.

torchvision, timm and open_clip are not needed: the reference modules below are plain PyTorch with
the exact state_dict names and forward semantics of torchvision's AlexNet/VGG/ResNet/ViT, OpenAI
CLIP's visual tower (torch.nn.MultiheadAttention, QuickGELU) and timm's VisionTransformer (DINOv2
with layer scale and register tokens, MAE), at reduced widths and depths.

For each model NAME it writes
  NAME.safetensors      seeded weights (float32; num_batches_tracked int64), as state_dict() names them
  NAME.json             the config the engine needs (what the shapes cannot say)
  NAME_io.safetensors   "input" (a seeded batch), one tensor per tapped module output by its name,
                        "<block>:grid" token grids, and "output"
Run: python3 tests/data/make_fixtures.py   (torch 2.x, safetensors; CPU, float32; deterministic)
"""
import json
import math
import os
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


# ------------------------------------------------------------------ torchvision CNNs
class AlexNet(nn.Module):
    def __init__(self, c=(64, 192, 384, 256, 256), h1=4096, h2=4096, classes=1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, c[0], 11, 4, 2), nn.ReLU(inplace=False), nn.MaxPool2d(3, 2),
            nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(),
            nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(),
            nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(c[4] * 36, h1), nn.ReLU(), nn.Dropout(0.5), nn.Linear(h1, h2), nn.ReLU(),
            nn.Linear(h2, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class VGG(nn.Module):
    def __init__(self, cfg, bn, h1, h2, classes):
        super().__init__()
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(nn.Conv2d(c, v, 3, padding=1))
                if bn:
                    layers.append(nn.BatchNorm2d(v))
                layers.append(nn.ReLU())
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(nn.Linear(c * 49, h1), nn.ReLU(), nn.Dropout(), nn.Linear(h1, h2), nn.ReLU(),
                                        nn.Dropout(), nn.Linear(h2, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inp, planes, stride, downsample, groups=1, wpg=64):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        idt = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            idt = self.downsample(x)
        return self.relu(out + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inp, planes, stride, downsample, groups=1, wpg=64):
        super().__init__()
        width = int(planes * (wpg / 64.0)) * groups
        self.conv1 = nn.Conv2d(inp, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        idt = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            idt = self.downsample(x)
        return self.relu(out + idt)


class ResNet(nn.Module):
    def __init__(self, block, blocks, planes, stem, classes, groups=1, wpg=64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inp = stem
        for i, (n, p) in enumerate(zip(blocks, planes)):
            stride = 1 if i == 0 else 2
            ds = None
            if stride != 1 or inp != p * block.expansion:
                ds = nn.Sequential(nn.Conv2d(inp, p * block.expansion, 1, stride, bias=False),
                                   nn.BatchNorm2d(p * block.expansion))
            layers = [block(inp, p, stride, ds, groups, wpg)]
            inp = p * block.expansion
            layers += [block(inp, p, 1, None, groups, wpg) for _ in range(1, n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.nstages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inp, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.nstages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ------------------------------------------------------------------ ViTs
class MLPBlock(nn.Sequential):  # torchvision: 0 Linear, 1 GELU, 2 Dropout, 3 Linear, 4 Dropout
    def __init__(self, d, h):
        super().__init__(nn.Linear(d, h), nn.GELU(), nn.Dropout(0.0), nn.Linear(h, d), nn.Dropout(0.0))


class MHA(nn.MultiheadAttention):
    """torch.nn.MultiheadAttention returning only the attention output (what a tap records)."""

    def forward(self, x):
        return super().forward(x, x, x, need_weights=False)[0]


class EncoderBlock(nn.Module):  # torchvision.models.vision_transformer.EncoderBlock
    def __init__(self, d, heads, h):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=1e-6)
        self.self_attention = MHA(d, heads, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = MLPBlock(d, h)

    def forward(self, x):
        y = self.dropout(self.self_attention(self.ln_1(x))) + x
        return y + self.mlp(self.ln_2(y))


class Encoder(nn.Module):
    def __init__(self, L, depth, d, heads, h):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, L, d).normal_(std=0.02))
        self.dropout = nn.Dropout(0.0)
        self.layers = nn.Sequential(OrderedDict((f"encoder_layer_{i}", EncoderBlock(d, heads, h)) for i in range(depth)))
        self.ln = nn.LayerNorm(d, eps=1e-6)

    def forward(self, x):
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class TorchvisionViT(nn.Module):
    def __init__(self, image, patch, depth, d, heads, h, classes):
        super().__init__()
        self.patch = patch
        self.conv_proj = nn.Conv2d(3, d, patch, patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, d))
        self.encoder = Encoder((image // patch) ** 2 + 1, depth, d, heads, h)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(d, classes)))

    def forward(self, x):
        n = x.shape[0]
        x = self.conv_proj(x).reshape(n, self.class_token.shape[2], -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        return self.heads(self.encoder(x)[:, 0])


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):  # OpenAI CLIP
    def __init__(self, d, heads):
        super().__init__()
        self.attn = MHA(d, heads, batch_first=True)  # CLIP runs (L, N, D); batch-first is the same math
        self.ln_1 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(d, 4 * d)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(4 * d, d))]))
        self.ln_2 = nn.LayerNorm(d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, d, depth, heads):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(d, heads) for _ in range(depth)])

    def forward(self, x):
        return self.resblocks(x)


class CLIPVisual(nn.Module):  # OpenAI CLIP VisionTransformer
    def __init__(self, image, patch, d, depth, heads, out):
        super().__init__()
        self.conv1 = nn.Conv2d(3, d, patch, patch, bias=False)
        s = d ** -0.5
        self.class_embedding = nn.Parameter(s * torch.randn(d))
        self.positional_embedding = nn.Parameter(s * torch.randn((image // patch) ** 2 + 1, d))
        self.ln_pre = nn.LayerNorm(d)
        self.transformer = Transformer(d, depth, heads)
        self.ln_post = nn.LayerNorm(d)
        self.proj = nn.Parameter(s * torch.randn(d, out))

    def forward(self, x):
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1])
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0, :]) @ self.proj


class PatchEmbed(nn.Module):  # timm
    def __init__(self, patch, d):
        super().__init__()
        self.proj = nn.Conv2d(3, d, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):  # timm
    def __init__(self, d, heads):
        super().__init__()
        self.num_heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class LayerScale(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.gamma = nn.Parameter(1e-1 * torch.ones(d))

    def forward(self, x):
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.fc1 = nn.Linear(d, h)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(h, d)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):  # timm
    def __init__(self, d, heads, h, ls):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = Attention(d, heads)
        self.ls1 = LayerScale(d) if ls else nn.Identity()
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = Mlp(d, h)
        self.ls2 = LayerScale(d) if ls else nn.Identity()

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


def resample_abs_pos_embed(pos, new_size, num_prefix):  # timm.layers.pos_embed (bicubic, antialias)
    prefix, pos = pos[:, :num_prefix], pos[:, num_prefix:]
    g = int(math.sqrt(pos.shape[1]))
    pos = pos.reshape(1, g, g, -1).permute(0, 3, 1, 2)
    pos = F.interpolate(pos, size=new_size, mode="bicubic", antialias=True)
    pos = pos.permute(0, 2, 3, 1).reshape(1, -1, pos.shape[1])
    return torch.cat([prefix, pos], dim=1)


class TimmViT(nn.Module):
    def __init__(self, image, patch, d, depth, heads, h, ls, reg, no_embed_class):
        super().__init__()
        self.patch, self.reg, self.no_embed_class = patch, reg, no_embed_class
        self.patch_embed = PatchEmbed(patch, d)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.5)
        if reg:
            self.reg_token = nn.Parameter(torch.randn(1, reg, d) * 0.5)
        g = (image // patch) ** 2
        self.pos_embed = nn.Parameter(torch.randn(1, g + (0 if no_embed_class else 1 + reg), d) * 0.5)
        self.blocks = nn.Sequential(*[Block(d, heads, h, ls) for _ in range(depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)

    def forward(self, x):
        B, _, H, W = x.shape
        x = self.patch_embed(x)
        nprefix = 1 + self.reg
        pos = resample_abs_pos_embed(self.pos_embed, (H // self.patch, W // self.patch),
                                     0 if self.no_embed_class else nprefix)
        to_cat = [self.cls_token.expand(B, -1, -1)] + ([self.reg_token.expand(B, -1, -1)] if self.reg else [])
        if self.no_embed_class:
            x = torch.cat(to_cat + [x + pos], dim=1)
        else:
            x = torch.cat(to_cat + [x], dim=1) + pos
        x = self.norm(self.blocks(x))
        return x[:, 0]


class DinoV2Hub(nn.Module):
    """facebookresearch/dinov2 (torch.hub) DinoVisionTransformer (patch 4 here): register_tokens and
    mask_token; the position embedding covers the class token only, the registers are inserted after
    it is added, and other sizes resample it with interpolate_offset 0.1, no antialias."""

    def __init__(self, image, patch, d, depth, heads, h, reg):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, d)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, d) * 0.5)
        self.register_tokens = nn.Parameter(torch.randn(1, reg, d) * 0.5)
        self.mask_token = nn.Parameter(torch.zeros(1, d))
        self.blocks = nn.Sequential(*[Block(d, heads, h, True) for _ in range(depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)

    def interpolate_pos_encoding(self, npatch, w0, h0):  # dinov2/models/vision_transformer.py
        N = self.pos_embed.shape[1] - 1
        if npatch == N and w0 == h0:
            return self.pos_embed
        M = int(math.sqrt(N))
        sx, sy = float(w0 + 0.1) / M, float(h0 + 0.1) / M  # interpolate_offset = 0.1
        patch = F.interpolate(self.pos_embed[:, 1:].reshape(1, M, M, -1).permute(0, 3, 1, 2), scale_factor=(sx, sy),
                              mode="bicubic", antialias=False)
        assert (w0, h0) == patch.shape[-2:]
        return torch.cat((self.pos_embed[:, :1], patch.permute(0, 2, 3, 1).reshape(1, -1, patch.shape[1])), dim=1)

    def forward(self, x):
        B, _, H, W = x.shape
        x = self.patch_embed(x)
        pos = self.interpolate_pos_encoding(x.shape[1], H // 4, W // 4)
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1) + pos
        x = torch.cat((x[:, :1], self.register_tokens.expand(B, -1, -1), x[:, 1:]), dim=1)
        return self.norm(self.blocks(x))[:, 0]


class TimmViTAvg(nn.Module):
    """timm VisionTransformer with global_pool="avg" (MAE fine-tuned checkpoints): norm is Identity,
    fc_norm normalises the mean of the patch tokens, then the classifier head."""

    def __init__(self, image, patch, d, depth, heads, h, classes):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, d)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, d) * 0.5)
        self.blocks = nn.Sequential(*[Block(d, heads, h, False) for _ in range(depth)])
        self.norm = nn.Identity()
        self.fc_norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(self.fc_norm(x[:, 1:].mean(dim=1)))


# ------------------------------------------------------------------ fixtures
def perturb(model, seed):
    """Seeded values for every tensor, so that biases, norms and BN statistics are all exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("running_mean") or t.dim() == 1:
                t.add_(0.1 * torch.randn(t.shape, generator=g))
            else:
                t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(max(1, t[0].numel())))


def grid(tokens, nprefix, gh, gw):
    return tokens[:, nprefix:].reshape(tokens.shape[0], gh, gw, -1).permute(0, 3, 1, 2)


def write(name, model, x, config, grid_taps=(), nprefix=1, patch=1, extra_weights=None):
    model.eval()
    taps = {}
    hooks = []
    for mname, mod in model.named_modules():
        if mname:
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, n=mname: taps.__setitem__(n, o.detach().clone())))
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    io = {"input": x.contiguous(), "output": out.contiguous()}
    # A tap equal to one already kept (dropout at inference, a container and its last child) is
    # left out to keep the fixtures small; the test taps every module anyway.
    for k, v in taps.items():
        if not any(u.shape == v.shape and torch.equal(u, v) for u in io.values()):
            io[k] = v.contiguous()
    gh, gw = x.shape[2] // patch, x.shape[3] // patch
    for t in grid_taps:
        io[t + ":grid"] = grid(taps[t], nprefix, gh, gw).contiguous()
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    if extra_weights:
        weights.update(extra_weights)
    save_file(weights, os.path.join(OUT, name + ".safetensors"))
    save_file(io, os.path.join(OUT, name + "_io.safetensors"))
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)

    def batch(n, s):
        return torch.randn(n, 3, s, s, generator=gen)

    m = AlexNet((8, 12, 16, 12, 12), 16, 16, 10)
    perturb(m, 10)
    write("alexnet", m, batch(1, 63), {"arch": "alexnet"})

    M = "M"
    m = VGG([4, M, 8, M, 8, 8, M, 12, 12, M, 12, 12, M], False, 8, 8, 10)  # vgg11 pattern
    perturb(m, 11)
    write("vgg11", m, batch(1, 32), {"arch": "vgg"})
    m = VGG([2, 2, M, 4, 4, M, 8, 8, 8, M, 8, 8, 8, M, 12, 12, 12, M], True, 8, 8, 10)  # vgg16_bn pattern
    perturb(m, 12)
    write("vgg16_bn", m, batch(1, 32), {"arch": "vgg"})

    m = ResNet(BasicBlock, [2, 1, 1, 1], [8, 8, 12, 16], 8, 10)
    perturb(m, 13)
    write("resnet_basic", m, batch(2, 24), {"arch": "resnet"})
    m = ResNet(Bottleneck, [1, 2, 1, 1], [8, 8, 16, 16], 8, 10, groups=2, wpg=16)
    perturb(m, 14)
    write("resnet_bottleneck", m, batch(2, 24), {"arch": "resnet"})

    m = TorchvisionViT(32, 8, 2, 16, 2, 32, 5)
    perturb(m, 15)
    write("vit_torchvision", m, batch(2, 32), {"arch": "vit", "layout": "torchvision", "heads": 2},
          grid_taps=["encoder.layers.encoder_layer_1"], patch=8)

    m = CLIPVisual(32, 8, 16, 2, 2, 8)
    perturb(m, 16)
    # A whole CLIP checkpoint: the visual tower under "visual.", plus a text-side key to ignore.
    vis = {"visual." + k: v.contiguous() for k, v in m.state_dict().items()}
    vis["token_embedding.weight"] = torch.randn(4, 16, generator=gen)
    m.eval()
    write("clip", m, batch(2, 32), {"arch": "vit", "layout": "clip", "heads": 2, "activation": "quick_gelu",
                                    "prefix": "visual."}, grid_taps=["transformer.resblocks.1"], patch=8)
    save_file(vis, os.path.join(OUT, "clip.safetensors"))

    m = TimmViT(16, 4, 16, 2, 2, 32, ls=True, reg=2, no_embed_class=True)
    perturb(m, 17)
    # Run at 20 px: the 4x4 position grid is resampled to 5x5 as timm's dynamic_img_size does.
    write("dinov2_reg", m, batch(2, 20), {"arch": "vit", "layout": "dinov2", "heads": 2, "image_size": 16,
                                          "num_register_tokens": 2}, grid_taps=["blocks.1"], nprefix=3, patch=4)
    m = TimmViT(16, 4, 16, 2, 2, 32, ls=True, reg=0, no_embed_class=False)
    perturb(m, 18)
    write("dinov2", m, batch(2, 16), {"arch": "vit", "layout": "dinov2", "heads": 2}, grid_taps=["blocks.0"],
          patch=4)

    m = DinoV2Hub(16, 4, 16, 2, 2, 32, reg=2)
    perturb(m, 20)
    # At 20 px: the hub code's own resampling of the 4x4 grid to 5x5 (scale factor with offset 0.1).
    write("dinov2_hub", m, batch(1, 20), {"arch": "vit", "layout": "dinov2", "heads": 2}, grid_taps=["blocks.1"],
          nprefix=3, patch=4)

    m = TimmViT(32, 8, 16, 2, 2, 32, ls=False, reg=0, no_embed_class=False)
    perturb(m, 19)
    # MAE pretraining checkpoints also hold the decoder and mask token: the loader skips them.
    extra = {"mask_token": torch.randn(1, 1, 8, generator=gen), "decoder_embed.weight": torch.randn(8, 16, generator=gen)}
    write("mae", m, batch(2, 32), {"arch": "vit", "layout": "mae", "heads": 2}, grid_taps=["blocks.1"], patch=8,
          extra_weights=extra)

    m = TimmViTAvg(32, 8, 16, 1, 2, 32, 5)
    perturb(m, 21)
    write("mae_avgpool", m, batch(2, 32), {"arch": "vit", "layout": "mae", "heads": 2})


if __name__ == "__main__":
    main()
