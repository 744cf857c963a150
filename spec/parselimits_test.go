package spec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// tenant is a large identity set-up written the way examples/entra is:
// applications with a few quoted versions each, custom roles with block
// lists of permissions, and access assignments for groups and users with
// flow lists of roles and application versions. Each kind is one file, as
// a hand-kept repo or `idrecon export` has it, so the assignments file is
// the largest single file a tenant has.
type tenant struct {
	apps, versions, roles, assignments int
}

// files renders the tenant as spec files by name.
func (tn tenant) files() map[string]string {
	var apps, roles, assigns strings.Builder
	apps.WriteString("# yaml-language-server: $schema=../../schemas/application.schema.json\n# Applications and their versions. Versions are strings: quote them so YAML\n# does not read 1.0 as a number.\n")
	for i := range tn.apps {
		if i > 0 {
			apps.WriteString("---\n")
		}
		fmt.Fprintf(&apps, "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: %s\nspec:\n  versions: [", tn.app(i))
		for v := range tn.versions {
			if v > 0 {
				apps.WriteString(", ")
			}
			fmt.Fprintf(&apps, "%q", tn.version(v))
		}
		apps.WriteString("]\n")
	}
	roles.WriteString("# yaml-language-server: $schema=../../schemas/role.schema.json\n# Custom roles. The builtin roles exist without being declared.\n")
	perms := []string{"version.create", "version.edit", "version.view", "report.view", "issue.audit", "artifact.upload"}
	for i := range tn.roles {
		if i > 0 {
			roles.WriteString("---\n")
		}
		fmt.Fprintf(&roles, "apiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata:\n  name: %s\nspec:\n  description: Creates and edits versions and reads reports, without auditing issues.\n  permissions:\n", tn.role(i))
		for p := range 1 + i%len(perms) {
			fmt.Fprintf(&roles, "    - %s\n", perms[p%len(perms)])
		}
	}
	assigns.WriteString("# yaml-language-server: $schema=../../schemas/accessassignment.schema.json\n# Who may do what. A subject is a SCIM group (by displayName, as Entra\n# provisions it) or a SCIM user (by userName).\n")
	builtin := []string{"Developer", "View Only", "Manager", "Application Security Tester"}
	for i := range tn.assignments {
		if i > 0 {
			assigns.WriteString("---\n")
		}
		subject := fmt.Sprintf("group: %s Developers %d", tn.app(i%tn.apps), i)
		if i%3 != 0 {
			subject = fmt.Sprintf("user: user.%05d@contoso.com", i)
		}
		role := builtin[i%len(builtin)]
		if tn.roles > 0 && i%5 == 0 {
			role = tn.role(i % tn.roles)
		}
		fmt.Fprintf(&assigns, "apiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\nmetadata:\n  name: assignment-%05d\nspec:\n  subject:\n    %s\n  roles: [%s]\n  applicationVersions: [\"%s/*\", \"%s/%s\"]\n",
			i, subject, role, tn.app(i%tn.apps), tn.app((i+1)%tn.apps), tn.version(i%tn.versions))
	}
	return map[string]string{"applications.yaml": apps.String(), "roles.yaml": roles.String(), "assignments.yaml": assigns.String()}
}

func (tenant) app(i int) string     { return fmt.Sprintf("payments-api-%04d", i) }
func (tenant) version(v int) string { return fmt.Sprintf("2025.%d", v+1) }
func (tenant) role(i int) string    { return fmt.Sprintf("Release Manager %02d", i) }

// documents is how many documents the tenant has.
func (tn tenant) documents() int { return tn.apps + tn.roles + tn.assignments }

// peakHeap samples the bytes of live and not yet swept heap objects until
// stop is called, and returns the highest sample above the heap in use
// (after a collection) when it started. Sampling misses the top of short
// spikes, so it reads low rather than high; the GC cycles of a large load
// are long enough for it.
func peakHeap() (stop func() uint64) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	var peak atomic.Uint64
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(100 * time.Microsecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		if p := peak.Load(); p > base {
			return p - base
		}
		return 0
	}
}

// yamlNodes counts the YAML nodes of every document in data, as yaml.v3
// parses them, independently of the loader.
func yamlNodes(tb testing.TB, data string) int {
	tb.Helper()
	var count func(*yaml.Node) int
	count = func(n *yaml.Node) int {
		c := 1
		for _, k := range n.Content {
			c += count(k)
		}
		return c
	}
	dec := yaml.NewDecoder(strings.NewReader(data))
	total := 0
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return total
		}
		if err != nil {
			tb.Fatal(err)
		}
		total += count(&n)
	}
}

// denseAssignment is an AccessAssignment whose roles list holds items
// copies of "a", written as densely as a flow list allows: one node for
// every two bytes.
func denseAssignment(name string, items int) string {
	var b strings.Builder
	b.Grow(150 + 2*items)
	fmt.Fprintf(&b, "apiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\nmetadata:\n  name: %s\nspec:\n  subject:\n    group: g\n  roles: [", name)
	for i := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('a')
	}
	b.WriteString("]\n")
	return b.String()
}

// denseSpec is a file of dense assignments, each well below
// MaxDocumentBytes, of exactly nodes YAML nodes in all.
func denseSpec(tb testing.TB, nodes int) string {
	tb.Helper()
	perDoc := yamlNodes(tb, denseAssignment("x", 0))
	const itemsPerDoc = MaxDocumentBytes / 4
	var docs []string
	for left := nodes; left > 0; {
		items := min(itemsPerDoc, left-perDoc)
		if items < 0 {
			tb.Fatalf("%d nodes do not make a whole document", left)
		}
		docs = append(docs, denseAssignment("dense-"+strconv.Itoa(len(docs)), items))
		left -= perDoc + items
	}
	return strings.Join(docs, "---\n")
}

// allocated returns the bytes the program has allocated so far.
func allocated() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// The defect this guards: a document is parsed whole before anything can
// be counted, at a cost of about a hundred times its bytes when it is a
// dense flow list. A document larger than MaxDocumentBytes must be refused
// before yaml.v3 sees it, naming the file, line and limit.
func TestLoadRefusesADocumentPastTheByteLimit(t *testing.T) {
	// flowList is a file with a comment and then one document of exactly
	// size bytes, a flow list of roles as in the report of the defect.
	flowList := func(size int) string {
		doc := "---\napiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\nmetadata:\n  name: big\nspec:\n  subject:\n    group: g\n  roles: ["
		doc += strings.Repeat("a, ", (size-len(doc))/3-2) + "a]\n"
		return "# before\n" + doc + "#" + strings.Repeat(" ", size-len(doc)-2) + "\n"
	}
	for _, size := range []int{MaxDocumentBytes + 1, 8 << 20} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			data := flowList(size)
			root := writeTree(t, map[string]string{
				"apps.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\nspec:\n  versions: [\"1.0\"]\n",
				"big.yaml":  data,
			})
			before, start := allocated(), time.Now()
			_, err := Load(context.Background(), root, LoadOptions{Getenv: getenvFrom(nil), Now: testNow})
			took, alloc := time.Since(start), allocated()-before
			if largest, _ := largestDocument([]byte(data)); largest != size {
				t.Fatalf("the document has %d bytes, want %d", largest, size)
			}
			t.Logf("a document of %d bytes refused in %v, %d bytes allocated", size, took, alloc)
			want := fmt.Sprintf("the YAML document at big.yaml:2 is larger than %d bytes, the limit for one document", MaxDocumentBytes)
			var le *LimitError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %.300v\nwant a *LimitError %q", err, want)
			}
			if !le.Document || le.Line != 2 || !errors.Is(err, ErrInvalid) {
				t.Errorf("LimitError %+v, errors.Is(ErrInvalid) = %v", le, errors.Is(err, ErrInvalid))
			}
			// Reading the file is all the load may cost (a few times its
			// size, more under the race detector): parsing it would
			// allocate over a hundred times its size.
			if limit := uint64(16 * len(data)); alloc > limit {
				t.Errorf("the refused load allocated %d bytes, more than %d: the document was parsed", alloc, limit)
			}
		})
	}
}

func TestLoadAcceptsADocumentAtTheByteLimit(t *testing.T) {
	head := "# yaml-language-server: $schema=../../schemas/role.schema.json\n---\napiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata:\n  name: Long\nspec:\n  permissions: [report.view]\n  description: "
	doc := head + strings.Repeat("x", MaxDocumentBytes-len(head)+len("# yaml-language-server: $schema=../../schemas/role.schema.json\n")-1) + "\n"
	if size, line := largestDocument([]byte(doc)); size != MaxDocumentBytes || line != 2 {
		t.Fatalf("largest document %d bytes at line %d, want %d at line 2", size, line, MaxDocumentBytes)
	}
	if _, err := Load(context.Background(), writeTree(t, map[string]string{"role.yaml": doc}), LoadOptions{Getenv: getenvFrom(nil), Now: testNow}); err != nil {
		t.Fatalf("a document of exactly MaxDocumentBytes: %.300v", err)
	}
}

// A spec of documents each well within MaxDocumentBytes but, together, one
// node past DefaultMaxNodes is refused with the limit, the file and the
// line of the document that crossed it, before any document is converted
// or validated.
func TestLoadRefusesDenseYAMLPastTheNodeLimit(t *testing.T) {
	data := denseSpec(t, DefaultMaxNodes+1)
	root := writeTree(t, map[string]string{"dense.yaml": data})
	before, start := allocated(), time.Now()
	_, err := Load(context.Background(), root, LoadOptions{Getenv: getenvFrom(nil), Now: testNow})
	took, alloc := time.Since(start), allocated()-before
	t.Logf("%d nodes in %d bytes refused in %v, %d bytes allocated", DefaultMaxNodes+1, len(data), took, alloc)
	want := fmt.Sprintf("the spec has more than %d YAML nodes; ", DefaultMaxNodes)
	var le *LimitError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %.300v\nwant a *LimitError %q", err, want)
	}
	if le.Unit != "nodes" || !errors.Is(err, ErrInvalid) {
		t.Errorf("LimitError %+v, errors.Is(ErrInvalid) = %v", le, errors.Is(err, ErrInvalid))
	}
	// Each item would be an error ("no Role named") if the documents were
	// validated; the allocations of the parse alone stay well below that.
	if limit := uint64(DefaultMaxNodes+MaxDocumentBytes) * 400; alloc > limit {
		t.Errorf("the refused load allocated %d bytes, more than %d", alloc, limit)
	}
}

// A large tenant written like the examples loads with the default limits,
// and is far enough below each that it can grow several times over.
func TestLoadAcceptsARealisticLargeTenant(t *testing.T) {
	tn := tenant{apps: 1000, versions: 5, roles: 20, assignments: 10000}
	files := tn.files()
	var bytes, nodes, largestDoc int
	for _, data := range files {
		bytes += len(data)
		nodes += yamlNodes(t, data)
		largestDoc = max(largestDoc, func() int { s, _ := largestDocument([]byte(data)); return s }())
	}
	t.Logf("%d documents, %d bytes, %d YAML nodes, largest document %d bytes", tn.documents(), bytes, nodes, largestDoc)
	set, err := Load(context.Background(), writeTree(t, files), LoadOptions{Getenv: getenvFrom(nil), Now: testNow})
	if err != nil {
		t.Fatalf("%.500v", err)
	}
	if got, want := len(set.Docs), tn.documents()+len(BuiltinRoles); got != want {
		t.Errorf("%d documents, want %d", got, want)
	}
	const headroom = 4
	if nodes*headroom > DefaultMaxNodes || bytes*headroom > DefaultMaxBytes || tn.documents()*headroom > DefaultMaxDocuments || largestDoc*headroom > MaxDocumentBytes {
		t.Errorf("the tenant cannot grow %d times within the default limits", headroom)
	}
}

// The node limit counts exactly: a spec of n nodes loads with MaxNodes n
// and is refused with n-1, at the file and line of the document that
// crossed it.
func TestLoadNodeLimitIsExact(t *testing.T) {
	files := tenant{apps: 3, versions: 2, roles: 2, assignments: 4}.files()
	nodes := 0
	for _, data := range files {
		nodes += yamlNodes(t, data)
	}
	root := writeTree(t, files)
	opts := LoadOptions{Getenv: getenvFrom(nil), Now: testNow, MaxNodes: nodes}
	if _, err := Load(context.Background(), root, opts); err != nil {
		t.Fatalf("a spec of exactly MaxNodes nodes: %v", err)
	}
	opts.MaxNodes = nodes - 1
	_, err := Load(context.Background(), root, opts)
	var le *LimitError
	if !errors.As(err, &le) || le.Unit != "nodes" || le.Limit != int64(nodes-1) {
		t.Fatalf("err = %v, want a *LimitError of %d nodes", err, nodes-1)
	}
	if want := fmt.Sprintf("the spec has more than %d YAML nodes; ", nodes-1); !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestParseAppliesTheDocumentLimit(t *testing.T) {
	data := "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\nspec:\n  versions: [\"1.0\"]\n---\n" +
		denseAssignment("big", MaxDocumentBytes/2)
	docs, err := Parse("big.yaml", []byte(data))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 || list[0].Pos.Line != 7 || !strings.Contains(list[0].Msg, "larger than "+strconv.Itoa(MaxDocumentBytes)+" bytes") {
		t.Fatalf("err = %.300v, want one error at big.yaml:7 naming the limit", err)
	}
	if len(docs) != 0 {
		t.Errorf("%d documents decoded from a file refused whole", len(docs))
	}
}

func TestLargestDocument(t *testing.T) {
	for _, tt := range []struct {
		data       string
		size, line int
	}{
		{"", 0, 1},
		{"a: 1\n", 5, 1},
		{"a: 1\n---\nb: 22\n", 10, 2},
		{"# c\n--- \nb: 22\n---\t\nc: 1\n", 11, 2},
		{"a: 1\r\n---\r\nbb: 22\r\n", 13, 2},
		{"a: 1\n...\n---\nlonger: 1\n", 14, 3},
		{"a: |\n  x\n---\n  y\n", 9, 1},                          // a marker ends a block scalar
		{"---\n---a\n  ---\n ...\n", 20, 1},                      // not markers
		{"a: b\n---", 5, 1},                                      // a marker at the end
		{"\xff\xfea\x00:\x00\n\x00-\x00-\x00-\x00\n\x00", 16, 1}, // UTF-16
	} {
		if size, line := largestDocument([]byte(tt.data)); size != tt.size || line != tt.line {
			t.Errorf("largestDocument(%q) = %d bytes at line %d, want %d at line %d", tt.data, size, line, tt.size, tt.line)
		}
	}
}

// BenchmarkLoadNearLimits measures the peak heap of loads at and past the
// parse limits, so that what DefaultMaxNodes and MaxDocumentBytes bound is
// measured rather than assumed:
//
//	go test ./spec -run '^$' -bench LoadNearLimits -benchtime 1x
//
// peak-heap-MiB is the highest heap sampled during the load above the heap
// before it; heap-B/node divides it by the spec's YAML nodes.
func BenchmarkLoadNearLimits(b *testing.B) {
	flowList := "apiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\nmetadata:\n  name: big\nspec:\n  subject:\n    group: g\n  roles: [" + strings.Repeat("a, ", 8<<20/3) + "a]\n"
	for _, bc := range []struct {
		name  string
		files func(testing.TB) map[string]string
		// want is "" for a load that succeeds, else a part of its error
		want string
	}{
		{"tenant-10k-assignments", func(testing.TB) map[string]string {
			return tenant{apps: 1000, versions: 5, roles: 20, assignments: 10000}.files()
		}, ""},
		{"tenant-at-node-limit", func(testing.TB) map[string]string {
			return tenant{apps: 4000, versions: 5, roles: 50, assignments: 40000}.files()
		}, ""},
		{"dense-at-node-limit", func(tb testing.TB) map[string]string {
			return map[string]string{"dense.yaml": denseSpec(tb, DefaultMaxNodes)}
		}, "no Role named"},
		{"dense-past-node-limit", func(tb testing.TB) map[string]string {
			return map[string]string{"dense.yaml": denseSpec(tb, DefaultMaxNodes+1)}
		}, "YAML nodes"},
		// The worst a refused load can cost: the spec one node short of the
		// limit, then a document just within MaxDocumentBytes of a flow
		// mapping of bare keys, one node for every byte, which is parsed
		// whole before its nodes can be counted.
		{"densest-past-node-limit", func(tb testing.TB) map[string]string {
			head := "apiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\nmetadata:\n  name: densest\nspec:\n  subject:\n    group: g\n  roles: {a"
			densest := head + strings.Repeat(",a", (MaxDocumentBytes-len(head)-len("---\n}\n"))/2) + "}\n"
			return map[string]string{"dense.yaml": denseSpec(tb, DefaultMaxNodes-1) + "---\n" + densest}
		}, "YAML nodes"},
		{"flow-list-8MiB", func(testing.TB) map[string]string {
			return map[string]string{"big.yaml": flowList}
		}, "the limit for one document"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			files := bc.files(b)
			var bytes, nodes int
			for _, data := range files {
				bytes += len(data)
				if largest, _ := largestDocument([]byte(data)); largest <= MaxDocumentBytes {
					nodes += yamlNodes(b, data)
				}
			}
			root := b.TempDir()
			for name, data := range files {
				writeFile(b, filepath.Join(root, name), []byte(data))
			}
			files = nil
			opts := LoadOptions{Getenv: getenvFrom(nil), Now: testNow}
			var peak uint64
			cpu := processCPU()
			n := 0
			for b.Loop() {
				stop := peakHeap()
				set, err := Load(context.Background(), root, opts)
				peak = max(peak, stop())
				switch {
				case bc.want == "" && err != nil:
					b.Fatalf("%.300v", err)
				case bc.want != "" && (err == nil || !strings.Contains(err.Error(), bc.want)):
					b.Fatalf("err = %.300v, want %q", err, bc.want)
				}
				runtime.KeepAlive(set)
				n++
			}
			b.ReportMetric(float64(bytes), "spec-bytes")
			b.ReportMetric(float64(nodes), "nodes")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			if nodes > 0 {
				b.ReportMetric(float64(peak)/float64(nodes), "heap-B/node")
			}
			if used := processCPU() - cpu; used > 0 {
				b.ReportMetric(float64(used.Milliseconds())/float64(n), "cpu-ms/op")
			}
		})
	}
}

func TestGateWaitsForRoom(t *testing.T) {
	g := newGate(10)
	g.acquire(6)
	acquired := make(chan struct{})
	go func() {
		g.acquire(5)
		close(acquired)
	}()
	select {
	case <-acquired:
		t.Fatal("acquired 5 of a gate of 10 with 6 held")
	case <-time.After(20 * time.Millisecond):
	}
	g.release(6)
	<-acquired
	g.acquire(5)
	g.release(5)
	g.release(5)
	var nilGate *gate
	nilGate.acquire(1 << 40)
	nilGate.release(1 << 40)
}
