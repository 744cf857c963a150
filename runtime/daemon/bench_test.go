package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkFolderChangeToConverged measures the time from writing a spec file
// to the change being served: fsnotify, debounce, load, plan and apply.
func BenchmarkFolderChangeToConverged(b *testing.B) {
	specDir := copyDir(b, "../../examples/entra")
	d := start(b, Config{SpecDir: specDir, DataDir: b.TempDir()})
	file := filepath.Join(specDir, "bench.yaml")
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("bench-%d", i)
		doc := fmt.Sprintf("apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: %s\nspec:\n  versions: [\"1.0\"]\n", name)
		if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, _ := d.call(b, "GET", d.admin+"/v1/resources/Application/"+name, adminTok, nil)
			if code == 200 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s not applied within 10s", name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
