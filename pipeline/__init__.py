"""The layer above objectives and searchers: the search loop, the shared memo, a search's
configuration and the wiring of model + objective + searcher + run (`depthprune prune`, studies, the TUI's child)."""
