"""Segmentation metrics (Dice, Jaccard, HD95, ASD) and folder evaluation."""
