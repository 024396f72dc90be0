"""Shared helpers with no model code: errors, progress, checkpoints, seeding, distributed utilities."""
