"""The commands besides training: `videogn-infer` (`infer`, with `infer.annotate` drawing its predictions),
`videogn export` (`export`), `videogn convert` (`convert`), `videogn compare` (`compare`). No command imports
another; the network they load comes from `videogn.train.loading`. Nothing is imported here: each command loads
only what it needs."""
