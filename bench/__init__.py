"""`hearth bench`: side-by-side measurements of what Hearth gains over a naive local bot."""
