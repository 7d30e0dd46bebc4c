"""The commands besides training: `videogn infer` (`infer`, with `infer.annotate` drawing its predictions; also
`videogn-infer`), `videogn export` (`export`), `videogn convert` (`convert`; also `videogn-convert`), `videogn compare`
(`compare`). No command imports another; the network they load comes from `videogn.train.loading`. Each command
parses its options without torch (`--help` answers at once) and imports what its work needs when it runs."""
