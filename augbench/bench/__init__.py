"""Benchmarks of the machine, not of the methods: ``augment`` (``augbench bench-aug``: views/s of each
augmentation backend) and ``train`` (``augbench bench-train``: seconds per epoch and of an evaluation)."""
