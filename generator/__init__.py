"""Image-fleet generator for GPU training images on Databricks AI Runtime.

`matrix.yaml` is expanded into cells, each cell is checked against the facts in `knowledge/`, and
rendered into one Dockerfile directory under `images/`. Run `python -m generator --help`.
"""

__version__ = "0.1.0"
