"""LeReS, the monocular depth estimator the 3DGP authors ran on every dataset (3DGP ref §7.3).

Our own implementation of the LeReS depth network (Yin et al., CVPR'21; AdelaiDepth ``RelDepthModel``): a
torchvision-layout ResNet-50 (or ResNeXt-101 32x8d) encoder returning four feature maps at strides 4..32 and a
decoder of feature-transfer blocks (FTB), feature-fusion modules (FFM) and an adaptive output head (AO). Module and
parameter names follow the official checkpoint layout (``res50.pth``/``res101.pth``: a dict whose ``depth_model``
entry holds ``[module.]depth_model.encoder_modules.encoder.*`` and ``...decoder_modules.*`` tensors), so the
official weights load strictly. Inference follows the LeReS demo: 448x448 RGB, ImageNet mean/std, output
``d - min(d) + 0.01`` (relative depth, larger = farther), resized back to the input size.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stages.common.errors import BadFileError
from stages.prep.depth.base import describe_mismatch, read_state_dict, sha256_file, shift_positive, strip_prefix

logger = logging.getLogger(__name__)

LERES_INPUT_SIZE = 448
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONES = {  # name -> (blocks per stage, groups, width per group)
    "resnet50": ((3, 4, 6, 3), 1, 64),
    "resnext101": ((3, 4, 23, 3), 32, 8),
}


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv), torchvision parameter names."""

    def __init__(
        self,
        in_channels: int,         # channels entering the block
        planes: int,              # bottleneck base width; the block outputs 4 * planes
        stride: int = 1,          # spatial stride of the 3x3 conv
        groups: int = 1,          # grouped 3x3 conv (ResNeXt)
        width_per_group: int = 64,  # ResNeXt width per group (64 = plain ResNet)
    ):
        super().__init__()
        width = int(planes * width_per_group / 64) * groups
        out_channels = planes * 4
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNetFeatures(nn.Module):
    """ResNet trunk without pooling/classifier returning the outputs of layer1..layer4 (strides 4, 8, 16, 32)."""

    def __init__(
        self,
        blocks: tuple[int, int, int, int] = (3, 4, 6, 3),  # bottlenecks per stage (ResNet-50)
        groups: int = 1,                                   # 32 for ResNeXt-101 32x8d
        width_per_group: int = 64,                         # 8 for ResNeXt-101 32x8d
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for index, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=False)):
            stride = 1 if index == 0 else 2
            layer = []
            for block in range(count):
                layer.append(Bottleneck(in_channels, planes, stride if block == 0 else 1, groups, width_per_group))
                in_channels = planes * 4
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))  # [B, 64, H/4, W/4]
        features = []
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            features.append(x)  # [B, 256|512|1024|2048, H/4 .. H/32, ...]
        return features


class FeatureTransferBlock(nn.Module):
    """FTB: conv3x3, then a residual conv-BN-conv branch. Key names ``conv1``, ``conv_branch.{1,2,4}``."""

    def __init__(
        self,
        in_channels: int,   # input channels
        mid_channels: int,  # output (and branch) channels
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 3, padding=1)
        self.conv_branch = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(mid_channels, mid_channels, 3, padding=1),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(),
            nn.Conv2d(mid_channels, mid_channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The official block applies its first ReLU in place, so the skip path carries relu(conv1(x)), not conv1(x);
        # we reproduce that behaviour explicitly so the official weights give the official output.
        x = F.relu(self.conv1(x))
        return F.relu(x + self.conv_branch[1:](x))


class FeatureFusionModule(nn.Module):
    """FFM: FTB on the lateral feature, add the coarser decoder feature, FTB, 2x bilinear upsampling."""

    def __init__(
        self,
        in_channels: int,   # lateral (encoder) channels
        mid_channels: int,  # decoder channels
        out_channels: int,  # output channels
    ):
        super().__init__()
        self.ftb1 = FeatureTransferBlock(in_channels, mid_channels)
        self.ftb2 = FeatureTransferBlock(mid_channels, out_channels)

    def forward(self, lateral: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        x = self.ftb2(self.ftb1(lateral) + coarse)
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class AdaptiveOutput(nn.Module):
    """AO head: conv-BN-ReLU-conv to one channel, 2x bilinear upsampling (``adapt_conv.{0,1,3}``)."""

    def __init__(
        self,
        in_channels: int,  # decoder channels at stride 2
    ):
        super().__init__()
        self.adapt_conv = nn.Sequential(
            nn.Conv2d(in_channels, in_channels // 2, 3, padding=1),
            nn.BatchNorm2d(in_channels // 2),
            nn.ReLU(),
            nn.Conv2d(in_channels // 2, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.adapt_conv(x), scale_factor=2, mode="bilinear", align_corners=True)


class LeReSDecoder(nn.Module):
    """The LeReS decoder: strides 32 -> 16 -> 8 -> 4 -> 2 -> 1, one output channel."""

    def __init__(self):
        super().__init__()
        in_channels, mid_channels = (256, 512, 1024, 2048), (256, 256, 256, 512)
        self.conv = FeatureTransferBlock(in_channels[3], mid_channels[3])
        self.conv1 = nn.Conv2d(mid_channels[3], mid_channels[2], 3, padding=1)
        self.ffm2 = FeatureFusionModule(in_channels[2], mid_channels[2], mid_channels[2])
        self.ffm1 = FeatureFusionModule(in_channels[1], mid_channels[1], mid_channels[1])
        self.ffm0 = FeatureFusionModule(in_channels[0], mid_channels[0], mid_channels[0])
        self.outconv = AdaptiveOutput(mid_channels[0])

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.conv1(self.conv(features[3]))  # [B, 256, H/32, W/32]
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)  # [B, 256, H/16, W/16]
        x = self.ffm2(features[2], x)  # [B, 256, H/8, W/8]
        x = self.ffm1(features[1], x)  # [B, 256, H/4, W/4]
        x = self.ffm0(features[0], x)  # [B, 256, H/2, W/2]
        return self.outconv(x)  # [B, 1, H, W]


class LeReSEncoder(nn.Module):
    """Holds the trunk under the name ``encoder`` (official key path ``encoder_modules.encoder.*``)."""

    def __init__(
        self,
        backbone: str = "resnet50",  # "resnet50" or "resnext101"
    ):
        super().__init__()
        blocks, groups, width_per_group = BACKBONES[backbone]
        self.encoder = ResNetFeatures(blocks, groups, width_per_group)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(x)


class LeReSDepthNet(nn.Module):
    """The LeReS depth network (``DepthModel``): normalised RGB [B, 3, H, W] -> raw depth logits [B, 1, H, W]."""

    def __init__(
        self,
        backbone: str = "resnet50",  # "resnet50" (res50.pth) or "resnext101" (res101.pth)
    ):
        super().__init__()
        self.backbone = backbone
        self.encoder_modules = LeReSEncoder(backbone)
        self.decoder_modules = LeReSDecoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder_modules(self.encoder_modules(x))


def _detect_backbone(state_dict: dict) -> str:
    """ResNet-50 and ResNeXt-101 differ in the first 3x3 conv: 64 input channels per group against 8."""
    weight = state_dict.get("encoder_modules.encoder.layer1.0.conv2.weight")
    if weight is not None and tuple(weight.shape[1:]) == (8, 3, 3):
        return "resnext101"
    return "resnet50"


def leres_from_checkpoint(checkpoint: dict, path: str | os.PathLike = "<memory>") -> LeReSDepthNet:
    """Build :class:`LeReSDepthNet` from an official LeReS checkpoint dict and load it strictly (3DGP ref §7.3).

    Accepts the official layout (``{"depth_model": {[module.]depth_model.encoder_modules..., ...}, ...}``; other
    entries such as ``shift_model``/``focal_model`` are ignored) or a bare state dict of the depth model. The
    backbone (ResNet-50 / ResNeXt-101) is read from the tensor shapes. Raises BadFileError (naming ``path``) with
    one line saying what mismatched when the tensors do not fit the architecture.
    """
    state_dict = checkpoint.get("depth_model", checkpoint)
    if not isinstance(state_dict, dict) or not all(torch.is_tensor(v) for v in state_dict.values()):
        raise BadFileError(path, "--depth-weights: no 'depth_model' state dict in this file (expected LeReS res50.pth)")
    state_dict = dict(strip_prefix(strip_prefix(state_dict, "module."), "depth_model."))
    backbone = _detect_backbone(state_dict)
    net = LeReSDepthNet(backbone)
    expected = net.state_dict()
    for key, value in expected.items():  # checkpoints from before PyTorch 0.4.1 carry no BN step counters
        if key.endswith("num_batches_tracked") and key not in state_dict:
            state_dict[key] = value
    what = f"LeReS {backbone} (depth_model.encoder_modules/decoder_modules)"
    mismatch = describe_mismatch(expected, state_dict, what)
    if mismatch:
        raise BadFileError(path, f"--depth-weights: {mismatch}")
    net.load_state_dict(state_dict, strict=True)
    return net.eval()


def load_leres_network(path: str | os.PathLike, device: str = "cpu") -> LeReSDepthNet:
    """Read an official LeReS checkpoint file (``res50.pth``/``res101.pth``) into a network on ``device``."""
    return leres_from_checkpoint(read_state_dict(path, "--depth-weights"), path).to(device)


class LeReSEstimator:
    """:class:`~stages.prep.depth.base.DepthEstimator` running LeReS as in the AdelaiDepth demo (3DGP ref §7.3)."""

    name = "leres"
    output_kind = "depth"

    def __init__(
        self,
        net: LeReSDepthNet,                 # loaded network (eval mode)
        weights_sha256: str | None = None,  # sha256 of the checkpoint the network came from
        device: str = "cpu",                # where to run
        batch_size: int = 8,                # images per forward pass
        input_size: int = LERES_INPUT_SIZE,  # square network input; 448 as in the LeReS demo
    ):
        assert input_size % 32 == 0, "the decoder needs a multiple of 32"
        self.net = net.eval().to(device)
        self.input_size = input_size
        self.device = device
        self.batch_size = batch_size
        self.weights_sha256 = weights_sha256
        self.version = f"leres-{net.backbone} {input_size}px (3dgp reimplementation)"

    @torch.inference_mode()
    def predict(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] RGB -> float32 [N, H, W] relative depth, positive, larger = farther."""
        images = np.asarray(images)
        assert images.ndim == 4 and images.shape[-1] == 3, f"expected [N, H, W, 3], got {images.shape}"
        height, width = images.shape[1:3]
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        outputs = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + self.batch_size])).to(self.device)
            x = batch.permute(0, 3, 1, 2).float() / 255.0  # [B, 3, H, W] in [0, 1]
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
            depth = self.net((x - mean) / std)  # [B, 1, S, S]
            depth = torch.from_numpy(shift_positive(depth[:, 0].float().cpu().numpy()))[:, None]
            depth = F.interpolate(depth, size=(height, width), mode="bilinear", align_corners=False)
            outputs.append(depth[:, 0].numpy())  # [B, H, W]
        return np.concatenate(outputs).astype(np.float32)


def load_leres(weights: str | None, device: str = "cpu") -> LeReSEstimator:
    """The ``leres`` registry entry: an official LeReS checkpoint path -> a ready estimator."""
    from stages.common.errors import BadOptionError

    if weights is None:
        raise BadOptionError(
            "--depth-weights",
            "leres needs the official LeReS checkpoint (AdelaiDepth res50.pth or res101.pth); pass its path",
        )
    net = load_leres_network(weights, device)
    return LeReSEstimator(net, weights_sha256=sha256_file(weights), device=device)
