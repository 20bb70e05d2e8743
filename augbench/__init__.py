"""augbench: which augmentation matters, for which method, on which data."""
__version__ = "0.1.0"


def __getattr__(name: str):
    # lazy: `import augbench` stays light (the CLI imports it before torch is needed)
    if name == "load_backbone":
        from augbench.export import load_backbone

        return load_backbone
    raise AttributeError(f"module 'augbench' has no attribute {name!r}")
