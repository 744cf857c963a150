package main

import (
	"strings"
	"testing"
)

func TestRunInProcess(t *testing.T) {
	var out strings.Builder
	err := run([]string{"-inprocess", "-users", "60", "-groups", "3", "-members-per-group", "20", "-concurrency", "4"}, func(string) string { return "" }, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, kind := range []string{"user.lookup", "user.create", "group.members", "user.delete", "verify.groups"} {
		if !strings.Contains(out.String(), kind) {
			t.Errorf("report lacks %s:\n%s", kind, out.String())
		}
	}
}

func TestRunRejectsRemoteTarget(t *testing.T) {
	var out strings.Builder
	err := run([]string{"-url", "http://192.0.2.1/api/scim/v2", "-users", "1"}, func(k string) string { return map[string]string{"IDRECON_SCIM_TOKEN": "x"}[k] }, &out)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("err = %v, want a loopback refusal", err)
	}
}
