"""What upstream has released that the matrix and the knowledge do not use yet (`python -m generator outdated`)."""
