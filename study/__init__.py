"""Studies: the paper's experiment grid (models × objectives × searchers × k × seeds), its
evaluation suite and its analyses."""
