// Package schemas holds the JSON Schema of every spec kind, for editors
// (yaml-language-server) and for `idrecon init`, which copies them into a
// new spec repository so its files' $schema lines resolve there.
package schemas

import "embed"

// FS holds the *.schema.json files.
//
//go:embed *.schema.json
var FS embed.FS
