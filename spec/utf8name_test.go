package spec

import (
	"strings"
	"testing"
)

// TestNameNotUTF8: a document built in code (an admin API edit, a resource
// read back) may carry a name no YAML file can: refused, since shown with
// each bad byte replaced it names another resource.
func TestNameNotUTF8(t *testing.T) {
	doc := &Document{APIVersion: APIVersion, Kind: KindApplication, Metadata: Metadata{Name: "web\xffgoat"},
		Spec: &Application{Versions: []string{"1.0"}}}
	_, err := Validate([]*Document{doc}, LoadOptions{Now: testNow})
	if err == nil || !strings.Contains(err.Error(), "metadata.name: must be valid UTF-8") {
		t.Fatalf("Validate: %v; want the name refused", err)
	}
}
