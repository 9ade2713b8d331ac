"""Encore core: configuration, data contracts, synthetic data, adapters and the warehouse."""
