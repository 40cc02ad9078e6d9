"""The 3D U-Net with deep supervision and the two-branch network."""
