package spec

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// writeLargeSpec writes a spec tree of 1,000 applications with 10 versions
// each and 20,000 access assignments (5,000 for groups, 15,000 for users),
// 1,000 documents per file.
func writeLargeSpec(tb testing.TB, dir string) int {
	tb.Helper()
	const (
		apps        = 1000
		versions    = 10
		groupAssign = 5000
		userAssign  = 15000
		perFile     = 1000
	)
	var files []string
	var b strings.Builder
	flush := func(prefix string) {
		if b.Len() == 0 {
			return
		}
		name := filepath.Join(dir, fmt.Sprintf("%s-%03d.yaml", prefix, len(files)))
		writeFile(tb, name, []byte(b.String()))
		files = append(files, name)
		b.Reset()
	}
	b.WriteString(`apiVersion: idrecon.io/v1alpha1
kind: ScimProvisioning
metadata:
  name: entra
spec:
  enabled: true
  tokens:
    - name: entra
      sha256: cefbcfe77053847ab41cda3dcb6b5e063774f1f0a53e51d018c92b58f35caec9
---
apiVersion: idrecon.io/v1alpha1
kind: Role
metadata:
  name: Release Manager
spec:
  permissions: [version.create, version.edit]
`)
	flush("base")
	for i := range apps {
		fmt.Fprintf(&b, "---\napiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: app-%d\nspec:\n  versions: [", i)
		for v := range versions {
			if v > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "\"%d.%d\"", i%7, v)
		}
		b.WriteString("]\n")
		if (i+1)%perFile == 0 {
			flush("apps")
		}
	}
	flush("apps")
	docs := 2 + apps
	for i := range groupAssign + userAssign {
		subject := fmt.Sprintf("group: group-%d", i)
		if i >= groupAssign {
			subject = fmt.Sprintf("user: user-%d@contoso.com", i)
		}
		app := i % apps
		fmt.Fprintf(&b, "---\napiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\nmetadata:\n  name: assignment-%d\nspec:\n  subject:\n    %s\n  roles: [Developer, Release Manager]\n  applicationVersions: [\"app-%d/%d.%d\", \"app-%d/*\"]\n",
			i, subject, app, app%7, i%versions, (app+1)%apps)
		docs++
		if (i+1)%perFile == 0 {
			flush("assignments")
		}
	}
	flush("assignments")
	return docs
}

func BenchmarkLoad(b *testing.B) {
	dir := b.TempDir()
	docs := writeLargeSpec(b, dir)
	ctx := context.Background()
	opts := LoadOptions{Getenv: getenvFrom(nil), Now: testNow}
	b.ReportAllocs()
	cpu := processCPU()
	n := 0
	for b.Loop() {
		set, err := Load(ctx, dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		if len(set.Docs) != docs+len(BuiltinRoles) {
			b.Fatalf("%d documents, want %d", len(set.Docs), docs+len(BuiltinRoles))
		}
		n++
	}
	if used := processCPU() - cpu; used > 0 {
		b.ReportMetric(float64(used.Milliseconds())/float64(n), "cpu-ms/op")
	}
}

// BenchmarkLoadUnchanged is the daemon's steady state: the same large spec
// loaded again through a Cache, which re-reads and hashes the inputs but
// parses nothing.
func BenchmarkLoadUnchanged(b *testing.B) {
	dir := b.TempDir()
	writeLargeSpec(b, dir)
	ctx := context.Background()
	opts := LoadOptions{Getenv: getenvFrom(nil), Now: testNow, Cache: &Cache{}}
	first, err := Load(ctx, dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		set, err := Load(ctx, dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		if set != first {
			b.Fatal("unchanged spec parsed again")
		}
	}
}
