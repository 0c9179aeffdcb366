"""The Dagster layer: assets wire core functions to storage, config, resources and metadata."""
