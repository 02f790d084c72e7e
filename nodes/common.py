"""Names shared by every node of the pack."""

CATEGORY = "StereoCrafter 3D"
# Node type names carry this prefix so they cannot collide with other packs.
PREFIX = "SC3D_"
