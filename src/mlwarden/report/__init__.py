"""Self-contained HTML reports: one file with its plots, readable offline."""
