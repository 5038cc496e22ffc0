"""Read models: queries that show what is stored (register, overdue, themes, workload, weighting).
Nothing here changes a row."""
