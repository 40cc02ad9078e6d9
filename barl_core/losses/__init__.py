"""Supervised loss and the BARL terms (DPR, PCBC, region and instance alignment)."""
