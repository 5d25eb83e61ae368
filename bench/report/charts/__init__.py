"""Charts of a results folder by family: DataFrames in, a matplotlib Figure out; nothing saved."""
