"""Built-in real datasets. Each loader reads a local copy and returns a :class:`~polymodal.data.table.Table`."""
