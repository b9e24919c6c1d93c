"""depthprune: study which Transformer blocks of a causal LM can be removed, and why."""

__version__ = "0.1.0"
