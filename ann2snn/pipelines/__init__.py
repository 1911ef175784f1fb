"""Pipelines: whole runs built from the layers below (a sweep, an ANN training run, a direct-training
run, the ablation grid). Each writes its run folder or tables and records its provenance."""
