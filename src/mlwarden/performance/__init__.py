"""Model performance per window: realized once labels arrive, estimated while they do not."""
