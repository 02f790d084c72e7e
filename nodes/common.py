"""Names shared by every node of the pack."""

CATEGORY = "StereoCrafter 3D"
# Node type names carry this prefix so they cannot collide with other packs.
PREFIX = "SC3D_"
# What every depth node outputs: the depth as an IMAGE that any image node (and Forward Warp Stereo) takes.
DEPTH_IMAGE_TOOLTIP = "Depth clip, same frames and size as the input, 3 equal channels, white = near."


def depth_as_image(depth):
    """Depth [B, H, W] (1 = near) as a ComfyUI IMAGE [B, H, W, 3]."""
    return depth.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()
