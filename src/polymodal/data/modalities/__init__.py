"""Per-modality readers + transforms: each turns one table cell into one example tensor."""
