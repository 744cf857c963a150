package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestContainerImage builds the Dockerfile with podman, starts the image on
// the example spec and checks that it serves SCIM, runs as uid 65532, keeps
// its state on the /data volume, and that the CLI inside finds the admin
// token there without flags. Skipped without podman, or with -short.
//
// The builder stage needs a Go image. IDRECON_TEST_GO_IMAGE names one
// (golang:1.26-bookworm where a registry is reachable); otherwise the test
// makes one from this machine's Go toolchain, a static busybox for the
// shell steps and the CA certificates, with the module cache mounted
// read-only and the proxy off, so nothing is downloaded.
func TestContainerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman is not installed")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	p := &podman{t: t, ctx: ctx}
	tag := fmt.Sprintf("localhost/idrecon-test:%d", os.Getpid())

	goImage := os.Getenv("IDRECON_TEST_GO_IMAGE")
	var mounts []string
	if goImage == "" {
		goImage, mounts = p.localGoImage()
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	build := []string{"build", "--layers=false", "-f", filepath.Join(root, "Dockerfile"), "-t", tag,
		"--build-arg", "GO_IMAGE=" + goImage, "--build-arg", "VERSION=v0.0.0-containertest"}
	for _, m := range mounts {
		build = append(build, "-v", m)
	}
	p.run(append(build, root)...)
	t.Cleanup(func() { p.try("rmi", "-f", tag) })

	if user := p.run("image", "inspect", "--format", "{{.Config.User}}", tag); user != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532", user)
	}
	name := fmt.Sprintf("idrecon-test-%d", os.Getpid())
	spec, err := filepath.Abs("../../examples/entra")
	if err != nil {
		t.Fatal(err)
	}
	p.run("run", "-d", "--name", name, "-p", "127.0.0.1::8080", "-v", spec+":/spec:ro", tag,
		"serve", "--spec", "/spec", "--data-dir", "/data", "--insecure-http")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("container log:\n%s", p.try("logs", name))
		}
		p.try("rm", "-f", "-v", name)
	})

	addr := p.run("port", name, "8080/tcp")
	url := "http://" + strings.TrimSpace(strings.Split(addr, "\n")[0]) + "/api/scim/v2/Users?filter=userName+eq+%22nobody%22"
	deadline := time.Now().Add(2 * time.Minute)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		// The demo token whose hash examples/entra commits.
		req.Header.Set("Authorization", "Bearer idrecon-demo-token-for-make-run-only-0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("SCIM on %s not answering 200: %v %v", url, resp, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The CLI inside reads /data/admin-token, which the daemon generated.
	if out := p.run("exec", name, "idrecon", "status"); !strings.Contains(out, "READY") || !strings.Contains(out, "True") {
		t.Errorf("idrecon status in the container:\n%s", out)
	}
	if out := p.run("exec", name, "idrecon", "version"); out != "idrecon v0.0.0-containertest" {
		t.Errorf("version %q", out)
	}
	if vols := p.run("inspect", "--format", "{{range .Mounts}}{{.Destination}} {{end}}", name); !strings.Contains(vols, "/data") {
		t.Errorf("no volume on /data: %q", vols)
	}
}

type podman struct {
	t   *testing.T
	ctx context.Context
}

// args adds what every podman call here needs. runc, when installed, is
// used instead of the default crun, which refuses hosts with cgroups in
// hybrid mode. The limits are set low because podman's defaults may exceed
// what an unprivileged host lets a process raise them to.
func (p *podman) args(args []string) []string {
	var global []string
	if _, err := exec.LookPath("runc"); err == nil {
		global = []string{"--runtime", "runc"}
	}
	if len(args) > 0 && (args[0] == "build" || args[0] == "run") {
		args = append([]string{args[0], "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"}, args[1:]...)
	}
	return append(global, args...)
}

// try runs podman for a clean-up, also after the test's context ended.
func (p *podman) try(args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "podman", p.args(args)...).CombinedOutput()
	return string(out)
}

func (p *podman) run(args ...string) string {
	p.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(p.ctx, "podman", p.args(args)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		p.t.Fatalf("podman %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), tail(stderr.String(), 4000))
	}
	return strings.TrimSpace(stdout.String())
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// localGoImage makes a builder image from this machine's Go toolchain and
// returns its name and the cache mounts its builds need.
func (p *podman) localGoImage() (string, []string) {
	p.t.Helper()
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		p.t.Skip("no registry image given (IDRECON_TEST_GO_IMAGE) and no busybox to make one")
	}
	if out, _ := exec.Command("file", "-L", busybox).Output(); !bytes.Contains(out, []byte("statically linked")) {
		p.t.Skipf("%s is not statically linked (Debian's busybox-static is)", busybox)
	}
	goEnv := func(name string) string {
		out, err := exec.Command("go", "env", name).Output()
		if err != nil {
			p.t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	goroot, modcache, cache := goEnv("GOROOT"), goEnv("GOMODCACHE"), goEnv("GOCACHE")

	name := "localhost/idrecon-test-go:" + runtime.Version()
	if exec.CommandContext(p.ctx, "podman", "image", "exists", name).Run() == nil {
		return name, p.goMounts(modcache, cache)
	}
	dir := p.t.TempDir()
	for _, f := range []struct{ src, dst string }{
		{busybox, "busybox"},
		{"/etc/ssl/certs/ca-certificates.crt", "ca-certificates.crt"},
	} {
		b, err := os.ReadFile(f.src)
		if err != nil {
			p.t.Skipf("making a Go image: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.dst), b, 0o755); err != nil {
			p.t.Fatal(err)
		}
	}
	// The toolchain is its own build context, so it is not copied twice.
	base := name + "-toolchain"
	p.run("build", "-t", base, "-f", p.write("Containerfile.go", "FROM scratch\nCOPY . /usr/local/go\n"), goroot)
	p.run("build", "-t", name, "-f", p.write("Containerfile", `FROM `+base+`
COPY busybox /bin/busybox
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && mkdir -m 1777 /tmp"]
ENV PATH=/usr/local/go/bin:/bin GOROOT=/usr/local/go GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOMODCACHE=/gomodcache GOCACHE=/gocache HOME=/tmp
`), dir)
	p.try("rmi", base)
	return name, p.goMounts(modcache, cache)
}

func (p *podman) goMounts(modcache, cache string) []string {
	return []string{modcache + ":/gomodcache:ro", cache + ":/gocache"}
}

func (p *podman) write(name, body string) string {
	p.t.Helper()
	f := filepath.Join(p.t.TempDir(), name)
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		p.t.Fatal(err)
	}
	return f
}
