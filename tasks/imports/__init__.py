"""CSV lead imports: the file checks made before anything is stored (scan), the checks of one
row (rows), the batches a worker writes (batches) and what the caller reads back (report)."""
