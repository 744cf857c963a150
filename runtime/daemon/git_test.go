package daemon

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/idrecon/idrecon/reconcile/source"
)

// gitSpecRepo makes a git repository whose "entra" folder holds the example
// spec, and returns a function that commits a new file into it.
func gitSpecRepo(t testing.TB) (url string, commit func(name, body string)) {
	t.Helper()
	dir := copyDir(t, "../../examples")
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	commit = func(name, body string) {
		t.Helper()
		if name != "" {
			if err := os.WriteFile(filepath.Join(dir, "entra", name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := wt.AddGlob("."); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Commit("change "+name, &git.CommitOptions{
			Author: &object.Signature{Name: "t", Email: "t@example.com", When: time.Now()},
		}); err != nil {
			t.Fatal(err)
		}
	}
	commit("", "")
	return "file://" + dir, commit
}

func hook(t testing.TB, d *running, secret, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", d.base+"/hooks/git", strings.NewReader(body))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	req.Header.Set("X-GitHub-Event", "push")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

const appDoc = "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: %s\nspec:\n  versions: [\"1.0\"]\n"

// TestGitSourceWithWebhook follows a git repository: a push announced by a
// webhook is applied without waiting for the poll, a webhook with a wrong
// HMAC is refused, and a bad commit is refused while the last good one serves.
func TestGitSourceWithWebhook(t *testing.T) {
	url, commit := gitSpecRepo(t)
	const secret = "webhook-secret"
	d := start(t, Config{
		Git:           &source.GitOptions{URL: url, Branch: "master", Path: "entra"},
		DataDir:       t.TempDir(),
		WebhookSecret: []byte(secret),
	})
	// Applied and seen are named alike, as Flux names them, so they
	// compare; the content hash is its own field.
	st := d.status(t)
	first := st.AppliedRevision
	if st.LastResult != "ok" || !regexp.MustCompile(`^master@sha1:[0-9a-f]{40}$`).MatchString(st.SeenRevision) ||
		st.AppliedRevision != st.SeenRevision || len(st.AppliedContent) != 64 {
		t.Fatalf("first revision not applied, or named otherwise: %+v", st)
	}

	commit("new.yaml", fmt.Sprintf(appDoc, "from-git"))
	if code := hook(t, d, "wrong-secret", `{"ref":"refs/heads/master"}`); code != http.StatusUnauthorized {
		t.Fatalf("wrong HMAC: %d, want 401", code)
	}
	if code := hook(t, d, secret, `{"ref":"refs/heads/master"}`); code/100 != 2 {
		t.Fatalf("webhook: %d", code)
	}
	eventually(t, "pushed commit applied", func() bool {
		code, _ := d.call(t, "GET", d.admin+"/v1/resources/Application/from-git", adminTok, nil)
		return code == 200
	})

	// The pushed commit's apply recorded (not the first commit's).
	var good string
	eventually(t, "the pushed commit's apply recorded", func() bool {
		st := d.status(t)
		good = st.AppliedRevision
		return st.LastResult == "ok" && good == st.SeenRevision && good != first
	})
	commit("bad.yaml", "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: bad\nspec:\n  verions: []\n")
	hook(t, d, secret, `{}`)
	eventually(t, "bad commit refused", func() bool {
		st := d.status(t)
		return st.LastResult == "refused" && strings.Contains(st.LastError, "bad.yaml:6")
	})
	if st := d.status(t); st.AppliedRevision != good || st.SeenRevision == good || !strings.HasPrefix(st.SeenRevision, "master@sha1:") {
		t.Fatalf("after a refused commit: applied %s (want %s), seen %s", st.AppliedRevision, good, st.SeenRevision)
	}
	_, metrics := d.call(t, "GET", d.admin+"/metrics", "", nil)
	if !strings.Contains(string(metrics), `idrecon_revision_info{revision="`+good+`",state="applied"} 1`) {
		t.Errorf("/metrics does not name the applied revision %s", good)
	}
}

// BenchmarkGitPushToConverged measures commit → webhook → fetch → apply.
func BenchmarkGitPushToConverged(b *testing.B) {
	url, commit := gitSpecRepo(b)
	const secret = "s"
	d := start(b, Config{Git: &source.GitOptions{URL: url, Branch: "master", Path: "entra"}, DataDir: b.TempDir(), WebhookSecret: []byte(secret)})
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("bench-%d", i)
		commit("bench.yaml", fmt.Sprintf(appDoc, name))
		hook(b, d, secret, "{}")
		deadline := time.Now().Add(10 * time.Second)
		for {
			if code, _ := d.call(b, "GET", d.admin+"/v1/resources/Application/"+name, adminTok, nil); code == 200 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s not applied", name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestNoDataDirLeavesNoFiles: without a data dir the git cache and the
// pushed spec go to temporary folders, which no later start reuses.
// Before, each start left them behind for good: a clone of the spec repo,
// or the last spec pushed.
func TestNoDataDirLeavesNoFiles(t *testing.T) {
	url, _ := gitSpecRepo(t)
	for name, cfg := range map[string]Config{
		"git":  {Git: &source.GitOptions{URL: url, Branch: "master", Path: "entra"}},
		"push": {},
	} {
		t.Run(name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			d := start(t, cfg)
			if cfg.Git == nil {
				if code, b := push(t, d, "../../examples/entra"); code != 200 {
					t.Fatalf("push: %d %s", code, b)
				}
			}
			if st := d.status(t); st.LastResult != "ok" {
				t.Fatalf("spec not applied: %+v", st)
			}
			if err := d.stop(); err != nil {
				t.Fatal(err)
			}
			left, err := os.ReadDir(tmp)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range left {
				t.Errorf("left behind in the temporary folder: %s", e.Name())
			}
		})
	}
}
