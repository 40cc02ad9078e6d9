"""Datasets, normalisation, resampling, patch sampling, augmentation and the phantom."""
