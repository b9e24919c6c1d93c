"""The screens: Setup, Live run, Runs, Compare, Help and the confirmation modal."""
