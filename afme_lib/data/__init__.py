"""Data layer: benchmark files, registry and download, synthetic generator, feature store."""
