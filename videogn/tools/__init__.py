"""The commands besides training: `videogn-infer` (`infer`), `videogn convert` (`convert`), `videogn compare`
(`compare`). Nothing is imported here: each command loads only what it needs."""
